/**
 * The monitor benchmark's rows of the OOM kill (test/bench/monitor.ts), where the kernel log
 * gives each kill's own time (kernel-kills.ts).
 */
import type { KillSplit } from './kernel-kills.js';
import { fmt, pct, type Row } from './stats.js';

export const DOCKER_STATS = '1000 ms (docker stats, cAdvisor: one sample a second)';

/**
 * The OOM kill's rows, its runs split at the kernel's kill: the target on the monitor's part,
 * from the kill to the callback; beside it, from the driver's stamp (the row's measure until
 * 2026-12-06, under its id), which adds the kernel's own work before the kill: reclaim at the
 * limit and the OOM report, run by the allocating task, which waits for a CPU like any other.
 */
export function oomRows(ms: readonly number[], missedRuns: number, split: KillSplit, during: string): Row[] {
  const n = ms.length;
  const fromKill = split.fromKillMs.filter((x) => !Number.isNaN(x));
  const kernel = split.kernelMs.filter((x) => !Number.isNaN(x));
  const p99 = pct(fromKill, 99);
  const unmatched = split.unmatched ? `, ${split.unmatched} without a kill record` : '';
  const missed = missedRuns ? `, ${missedRuns} missed` : '';
  const range = (xs: readonly number[]) => `${fmt(pct(xs, 50), 2)} / ${fmt(pct(xs, 99), 2)} ms (max ${fmt(Math.max(...xs), 2)})`;
  return [
    {
      id: 'Resource monitor.oom-kill-detection-from-the-kill',
      section: 'Resource monitor',
      name: `oom-kill detection from the kernel's kill (its kernel log record) to the violation callback, p50 / p99 (${n} runs${missed}${unmatched})`,
      subject: `${range(fromKill)} (${during})`,
      baseline: DOCKER_STATS,
      value: p99,
      baselineValue: 1000,
      unit: 'ms',
      target: 'p99 <= 20 ms',
      met: p99 <= 20 && missedRuns === 0 && split.unmatched === 0,
    },
    {
      id: `Resource monitor.oom-kill-detection-p50-p99-${n}-runs`,
      section: 'Resource monitor',
      name: `oom-kill from the driver's stamp before its last allocation to the callback: the kernel's reclaim and OOM report, then the detection, p50 / p99 (${n} runs${missed})`,
      subject: `${range(ms)}; of it the stamp to the kill ${range(kernel)}`,
      baseline: DOCKER_STATS,
      value: pct(ms, 99),
      baselineValue: 1000,
      unit: 'ms',
    },
  ];
}

