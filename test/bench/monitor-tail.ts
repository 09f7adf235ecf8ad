/**
 * What the monitor benchmark prints (stderr) beside a kind's runs, to tell a slow run's cause:
 * the host and this process during them (host-trace.ts), and every run of the tail with the
 * same. For the OOM kill, each run is also split at the kernel's kill (kernel-kills.ts) and at
 * cgwatch's wake-up (its own CLOCK_MONOTONIC stamp, at the kernel's OOM notification, which
 * comes before the kill: the kernel sends it, then writes its OOM report, then kills).
 */
import type { HostTrace } from './host-trace.js';
import type { KillSplit } from './kernel-kills.js';
import type { Throttling } from './monitor-probe.js';
import { fmt, pct } from './stats.js';

/** A run is in the tail from half the target (20 ms) up; the slowest three are printed whatever they are. */
const TAIL_MS = 10;

export interface KindRuns {
  readonly kind: string;
  readonly trace: HostTrace;
  /** The driver's stamp to the callback, per run. */
  readonly ms: readonly number[];
  readonly stamps: readonly bigint[];
  readonly seen: readonly { at: bigint }[];
  /** cgwatch's wake-ups for the OOM notification (OOM kind only). */
  readonly woke?: readonly bigint[];
  readonly split?: KillSplit;
  /** The probe's CPU quota before the first run and at each callback. */
  readonly throttled: readonly Throttling[];
}

const line = (s: string) => process.stderr.write(`${s}\n`);
const stats = (xs: readonly number[]) => {
  const ok = xs.filter((x) => !Number.isNaN(x));
  return `p50 ${fmt(pct(ok, 50), 2)} / p99 ${fmt(pct(ok, 99), 2)} / max ${fmt(Math.max(...ok), 2)} ms`;
};

export function explainRuns(r: KindRuns): void {
  const { kind, trace, ms, stamps, seen, woke, split, throttled } = r;
  // Run i's share of the quota: throttled between the callback before it (or the start) and its own.
  const quota = (i: number) => {
    const [a, b] = [throttled[i], throttled[i + 1]];
    return a && b ? { periods: b.periods - a.periods, ms: (b.ns - a.ns) / 1e6 } : undefined;
  };
  const hit = ms.filter((_, i) => (quota(i)?.periods ?? 0) > 0).length;
  // The latest cgwatch wake-up within run i (from its stamp to its callback).
  const wokeAt = (i: number) => woke?.filter((w) => w <= seen[i]!.at && w >= stamps[i]!).at(-1);
  if (split) {
    line(`monitor ${kind} split at the kernel's kill (kernel log record; clock offset moved ${fmt(split.driftUs, 0)} µs over the runs, read to ±${fmt(split.errorUs, 0)} µs; ${split.unmatched} runs without a kill record, ${split.lost} records lost; the OOM report written before ${split.reported} of the kills, the others rate-limited): driver's stamp to the kill ${stats(split.kernelMs)}; the kill to the callback ${stats(split.fromKillMs)}`);
  }
  if (woke) {
    const toWake = seen.map((_, i) => wokeAt(i)).map((t, i) => (t === undefined ? NaN : Number(t - stamps[i]!) / 1e6));
    const fromWake = seen.map((s, i) => wokeAt(i)).map((t, i) => (t === undefined ? NaN : Number(seen[i]!.at - t) / 1e6));
    line(`monitor ${kind} split at cgwatch's wake-up (the OOM notification, before the kill): driver's stamp to cgwatch ${stats(toWake)}; cgwatch to callback ${stats(fromWake)}`);
  }
  const loop = trace.loop();
  line(`monitor ${kind} runs: the probe's CPU quota (50%) throttled ${hit} of ${ms.length} runs; host ${fmt(trace.hostIdlePercent(), 0)}% idle; this process's 100 ms timer up to ${fmt(loop.maxLagMs, 1)} ms late; ${loop.gcCount} GCs, longest ${fmt(loop.gcMaxMs, 2)} ms`);
  const order = ms.map((x, i) => ({ x, i })).sort((a, b) => b.x - a.x);
  const tail = order.filter(({ x, i }, n) => n < 3 || x >= TAIL_MS || (split?.fromKillMs[i] ?? 0) >= TAIL_MS);
  for (const { x, i } of tail) {
    const c = trace.around(stamps[i]!, seen[i]!.at);
    let parts = '';
    if (split) parts += `; stamp to the kill ${fmt(split.kernelMs[i]!, 2)} ms, the kill to the callback ${fmt(split.fromKillMs[i]!, 2)} ms`;
    const q = quota(i);
    if (q) parts += `; the CPU quota throttled the probe ${q.periods} period(s), ${fmt(q.ms, 2)} ms, since the run before`;
    const w = wokeAt(i);
    if (w !== undefined) parts += `; stamp to cgwatch ${fmt(Number(w - stamps[i]!) / 1e6, 2)} ms, cgwatch to callback ${fmt(Number(seen[i]!.at - w) / 1e6, 2)} ms`;
    line(`  run ${i}: ${fmt(x, 2)} ms; host ${fmt(c.hostIdlePercent, 0)}% idle around it, timer up to ${fmt(c.maxLagMs, 1)} ms late, GC ${fmt(c.gcMs, 2)} ms within it${parts}`);
  }
}
