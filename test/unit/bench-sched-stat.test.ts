import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cpuTimes, idlePercent, processTree, schedDelta, schedTotals } from '../bench/sched-stat.js';

describe.runIf(process.platform === 'linux')("the benchmarks' scheduler figures", () => {
  it("count this process's own CPU time and runs", () => {
    const a = schedTotals([process.pid]);
    const c0 = process.cpuUsage();
    // 30 ms of CPU time (not of the clock: on a busy host the loop may wait for a CPU).
    for (let c = process.cpuUsage(c0); c.user + c.system < 30_000; c = process.cpuUsage(c0));
    const d = schedDelta(a, schedTotals([process.pid]));
    expect(d.runNs).toBeGreaterThanOrEqual(25e6);
    expect(d.slices).toBeGreaterThanOrEqual(1);
    expect(d.waitNs).toBeGreaterThanOrEqual(0);
  });

  it('find a child process under its parent, and skip a process that is gone', async () => {
    const child = spawn('sleep', ['5']);
    try {
      await new Promise((r) => child.once('spawn', r));
      expect(processTree(process.pid)).toContain(child.pid);
    } finally {
      child.kill();
    }
    await new Promise((r) => child.once('exit', r));
    expect(processTree(child.pid!)).toEqual([child.pid]);
    expect(schedTotals([child.pid!])).toEqual({ runNs: 0, waitNs: 0, slices: 0 });
  });

  it("give the host's idle share between two readings", () => {
    expect(idlePercent({ idle: 100, total: 400, steal: 0 }, { idle: 150, total: 600, steal: 0 })).toBe(25);
    expect(idlePercent({ idle: 1, total: 2, steal: 0 }, { idle: 1, total: 2, steal: 0 })).toBeNaN();
    const t = cpuTimes();
    expect(t.total).toBeGreaterThan(0);
    expect(t.idle).toBeLessThanOrEqual(t.total);
    // The hypervisor's share is counted in the total, never above it.
    expect(t.steal).toBeGreaterThanOrEqual(0);
    expect(t.steal).toBeLessThanOrEqual(t.total - t.idle);
  });
});
