import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { PluginContainer } from '../../src/sandbox/plugin-container.js';
import { copyFixture, docker, report, runCaptured, sleep } from './support.js';

interface Stats {
  read: string;
  cpu_stats: { cpu_usage: { total_usage: number } };
  pids_stats?: { current?: number; limit?: number };
}

async function stats(id: string): Promise<Stats> {
  return (await (await docker()).getContainer(id).stats({ stream: false })) as unknown as Stats;
}

describe('resource limits, enforced by the kernel in a real container', () => {
  it('memory: allocating 4x maxMemoryMB gets the plugin OOM-killed', async () => {
    const r = await runCaptured(copyFixture('memory-hog'));
    expect(r.stdout).not.toContain('ALLOCATED ALL');
    expect(r.oomKilled).toBe(true);
    expect(r.exitCode).toBe(137);
  });

  it('file handles: opening more than maxFileHandles fails with EMFILE inside the plugin', async () => {
    const r = await runCaptured(copyFixture('fd-hog'));
    const { opened, error } = report<{ opened: number; error: string }>(r.stdout);
    expect(error).toBe('EMFILE');
    // 32 handles in all, minus stdin/out/err and what the interpreter holds open.
    expect(opened).toBeLessThanOrEqual(32 - 3);
    expect(opened).toBeGreaterThan(16);
    expect(r.exitCode).toBe(0);
  });

  it('pids: a fork bomb stops at maxProcesses and the host stays responsive', async () => {
    const abort = new AbortController();
    let container: PluginContainer | undefined;
    const run = runCaptured(copyFixture('fork-bomb'), { signal: abort.signal, onCreated: (c) => void (container = c) });
    let peak = 0;
    let limit: number | undefined;
    const hostSpawnMs: number[] = [];
    const deadline = Date.now() + 30_000;
    try {
      while (Date.now() < deadline && peak < 16) {
        await sleep(250);
        if (!container) continue;
        const s = await stats(container.id);
        peak = Math.max(peak, s.pids_stats?.current ?? 0);
        limit = s.pids_stats?.limit;
      }
      // The bomb keeps trying; the host must still start processes promptly.
      for (let i = 0; i < 5; i++) {
        const t = Date.now();
        expect(spawnSync('true').status).toBe(0);
        hostSpawnMs.push(Date.now() - t);
      }
      const s = await stats(container!.id);
      peak = Math.max(peak, s.pids_stats?.current ?? 0);
    } finally {
      abort.abort();
    }
    const r = await run;
    expect(limit).toBe(16);
    expect(peak).toBe(16);
    expect(Math.max(...hostSpawnMs)).toBeLessThan(1_000);
    expect(r.stdout).toContain('fork refused: EAGAIN');
    expect(r.interrupted).toBe(true);
  });

  it('CPU: a busy loop under maxCpuPercent 25 gets at most ~30% of one core over 2 s', async () => {
    const abort = new AbortController();
    let container: PluginContainer | undefined;
    const run = runCaptured(copyFixture('cpu-burner'), { signal: abort.signal, onCreated: (c) => void (container = c) });
    let a: Stats, b: Stats;
    try {
      await sleep(1_500);
      a = await stats(container!.id);
      await sleep(2_000);
      b = await stats(container!.id);
    } finally {
      abort.abort();
    }
    const cpuNs = b.cpu_stats.cpu_usage.total_usage - a.cpu_stats.cpu_usage.total_usage;
    // Wall time between the two samples as the engine stamped them, not as this process saw it.
    const wallNs = (Date.parse(b.read) - Date.parse(a.read)) * 1e6;
    const share = cpuNs / wallNs;
    expect((await run).stdout).toContain('burning');
    expect(wallNs).toBeGreaterThan(1.5e9);
    // Busy, so it used its quota; capped, so it got no more (CFS accounting is per 100 ms).
    expect(share).toBeGreaterThan(0.1);
    expect(share).toBeLessThanOrEqual(0.3);
  });
});
