/**
 * The host's CPU as /proc/stat counts it, and a wait for a settled host before a section
 * whose tails the host's other work would set: the teardown of an earlier section (200
 * containers removed: the shims, runc, the engine's unmounts and network teardown go on
 * after the removals have been answered) or another user of the machine.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** The host's CPU counters, in ticks, summed over every CPU. */
export interface CpuTicks {
  readonly idle: number;
  readonly total: number;
  /** Time the hypervisor ran something else while a CPU of this VM had work (0 on bare metal). */
  readonly steal: number;
}

/** The `cpu` line of /proc/stat: idle is idle + iowait (a CPU waiting on io runs nothing). */
export function cpuTicks(stat = readFileSync('/proc/stat', 'utf8')): CpuTicks {
  const line = stat.slice(0, stat.indexOf('\n'));
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest and guest_nice are inside user and nice).
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { idle: (f[3] ?? 0) + (f[4] ?? 0), total, steal: f[7] ?? 0 };
}

/** The share of the host's CPU that was idle between two readings, percent (NaN if no tick passed). */
export function idlePercent(a: CpuTicks, b: CpuTicks): number {
  const total = b.total - a.total;
  return total > 0 ? ((b.idle - a.idle) / total) * 100 : NaN;
}

export interface Settled {
  /** Whether the host reached the idle share before the bound. */
  readonly settled: boolean;
  /** The idle share of the last window, percent. */
  readonly idlePercent: number;
  readonly waitedMs: number;
  /** The 1, 5 and 15 minute load averages when the wait ended. */
  readonly load: readonly [number, number, number];
}

/**
 * Wait, at most `maxMs`, until the host's CPU was at least `idlePercent` idle over one
 * `windowMs`; returns what it saw either way (a host that does not settle is recorded, not
 * waited on for ever: another user of the machine may keep it busy).
 */
export async function settleHost(opts: { idlePercent?: number; windowMs?: number; maxMs?: number } = {}): Promise<Settled> {
  const want = opts.idlePercent ?? 80;
  const windowMs = opts.windowMs ?? 1000;
  const maxMs = opts.maxMs ?? 60_000;
  const t0 = performance.now();
  let idle = NaN;
  for (;;) {
    const a = cpuTicks();
    await new Promise((r) => setTimeout(r, windowMs));
    idle = idlePercent(a, cpuTicks());
    const waitedMs = performance.now() - t0;
    const settled = idle >= want;
    if (settled || waitedMs >= maxMs) return { settled, idlePercent: idle, waitedMs, load: os.loadavg() as [number, number, number] };
  }
}

/** "host 86% idle over 1 s, load 1.20 / 2.31 / 3.05", for a row or a log line. */
export function describeHost(s: Settled): string {
  const load = s.load.map((x) => x.toFixed(2)).join(' / ');
  const waited = s.waitedMs > 1500 ? ` after ${(s.waitedMs / 1000).toFixed(0)} s` : '';
  return `host ${s.idlePercent.toFixed(0)}% idle${s.settled ? '' : ' (not settled)'}${waited}, load ${load}`;
}
