import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CGWATCH_KMSG_ENV } from '../../src/monitor/cgwatch.js';
import { ResourceMonitor, type ResourceViolation } from '../../src/monitor/index.js';
import { startProbe, watchProbe, type Probe } from './monitor-support.js';
import { PIDS_DRIVER } from '../bench/monitor-probe.js';
import { docker, until } from './support.js';

/**
 * A refused fork on cgroup v1, whose pids.events the kernel does not notify: cgwatch learns of
 * a cgroup's first one from the pids controller's line in the kernel log (/dev/kmsg) and polls
 * only that cgroup from then on; without the kernel log it polls every pids.events. Both ways
 * in real containers, each refusal reported once, with its latency from the refused fork (a
 * CLOCK_MONOTONIC stamp written in the container just before it) to the violation here.
 */

/** Forks until one is refused, `rounds` times, a second apart (the bench's driver). */
const FORK_UNTIL_REFUSED = (rounds: number) => PIDS_DRIVER(rounds, 1.0);

interface Run {
  monitor: ResourceMonitor;
  seen: { at: bigint; v: ResourceViolation }[];
  modeLines: { pidsMode?: string; why?: string }[];
}

const monitors: ResourceMonitor[] = [];
afterAll(async () => {
  for (const m of monitors.splice(0)) await m.close();
});

async function start(): Promise<Run> {
  const modeLines: Run['modeLines'] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void modeLines.push(JSON.parse(line) as { pidsMode?: string }) });
  const monitor = await ResourceMonitor.create({ docker: await docker(), log, pollMs: 200, slowEvery: 1 });
  monitors.push(monitor);
  const seen: Run['seen'] = [];
  monitor.on('violation', (v) => seen.push({ at: process.hrtime.bigint(), v }));
  return { monitor, seen, modeLines: modeLines.filter((l) => l.pidsMode !== undefined) };
}

/** Fork until refused in the probe `rounds` times; the latencies (ms) of the violations that follow, in order. */
async function refuse(run: Run, p: Probe, rounds: number): Promise<number[]> {
  const r = await p.python(FORK_UNTIL_REFUSED(rounds));
  const stamps = [...r.output.matchAll(/T (\d+)/g)].map((m) => BigInt(m[1]!));
  expect(stamps).toHaveLength(rounds);
  const mine = () => run.seen.filter((s) => s.v.plugin === p.plugin && s.v.kind === 'pids-limit');
  await until('every refused fork reported', () => (mine().length >= rounds ? true : undefined), 10_000);
  return mine().map((s, i) => Number(s.at - stamps[i]!) / 1e6);
}

describe('resource monitor: refused forks on cgroup v1', () => {
  const saved = process.env[CGWATCH_KMSG_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[CGWATCH_KMSG_ENV];
    else process.env[CGWATCH_KMSG_ENV] = saved;
  });

  it('from the kernel log: the first refusal at once, the later ones by polling that cgroup', async () => {
    delete process.env[CGWATCH_KMSG_ENV];
    const run = await start();
    expect(run.modeLines.map((l) => l.pidsMode)).toEqual(['kernel-log']);
    const p = await startProbe('kmsg-pids', { processes: 12 });
    await watchProbe(run.monitor, p);
    const ms = await refuse(run, p, 3);
    process.stderr.write(`pids-limit via the kernel log: first ${ms[0]!.toFixed(2)} ms, then (polled) ${ms.slice(1).map((x) => x.toFixed(2)).join(', ')} ms\n`);
    expect(ms).toHaveLength(3);
    for (const s of run.seen.filter((x) => x.v.plugin === 'kmsg-pids')) expect(s.v).toMatchObject({ kind: 'pids-limit', limit: 12, source: 'notification' });
    // A safety bound only: the kernel log line reaches cgwatch within milliseconds.
    expect(ms[0]).toBeLessThan(1000);
  });

  it('from the kernel log: a container that hit its limit before it was watched is polled from the start', async () => {
    delete process.env[CGWATCH_KMSG_ENV];
    const run = await start();
    const p = await startProbe('kmsg-pids-before', { processes: 12 });
    // The kernel logs this cgroup's first refusal now, with no watch to wake: the later ones are not logged.
    expect((await p.python(FORK_UNTIL_REFUSED(1))).output).toMatch(/T \d+/);
    await watchProbe(run.monitor, p);
    const ms = await refuse(run, p, 1);
    process.stderr.write(`pids-limit after an unwatched refusal (polled): ${ms[0]!.toFixed(2)} ms\n`);
    expect(ms).toHaveLength(1);
  });

  it('without the kernel log (LOGOMESH_CGWATCH_KMSG=0): every pids.events polled, refusals still seen', async () => {
    process.env[CGWATCH_KMSG_ENV] = '0';
    const run = await start();
    expect(run.modeLines).toEqual([expect.objectContaining({ pidsMode: 'poll', why: expect.stringContaining('-p') })]);
    const p = await startProbe('poll-pids', { processes: 12 });
    await watchProbe(run.monitor, p);
    const ms = await refuse(run, p, 2);
    process.stderr.write(`pids-limit polled: ${ms.map((x) => x.toFixed(2)).join(', ')} ms\n`);
    expect(ms).toHaveLength(2);
    expect(ms[0]).toBeLessThan(1000);
  });
});
