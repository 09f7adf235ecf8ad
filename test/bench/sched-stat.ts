/**
 * What the host's scheduler says about a stretch of a benchmark: how idle the CPUs were
 * (`/proc/stat`), and how long a set of processes' threads waited for a CPU once runnable
 * (`/proc/<pid>/task/<tid>/schedstat`: time on a CPU, time waiting on a run queue, and the
 * number of times each ran). The spread calls' tail is the plugins waiting for a CPU: these
 * figures say how much, beside the latencies, in the same run. Linux only; elsewhere empty.
 */
import { readdirSync, readFileSync } from 'node:fs';

// The host's idle share: one reading of /proc/stat for every section (settle.ts).
export { cpuTicks as cpuTimes, idlePercent, type CpuTicks as CpuTimes } from './settle.js';

/** A process and all its descendants (a container's init and the runtime under it). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const tid of readdirSync(`/proc/${out[i]}/task`)) {
        const children = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim();
        if (children) out.push(...children.split(/\s+/).map(Number));
      }
    } catch {
      // The process is gone: its threads count no more.
    }
  }
  return out;
}

/**
 * The host's processes whose name starts with `prefix` (`/proc/<pid>/comm`): the engine's
 * containerd-shims, the kernel's kdamond, whose work falls on the calls of a row
 * (docs/performance.md#the-engines-shims-in-the-spread-calls-2026-12-06).
 */
export function processesNamed(prefix: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').startsWith(prefix)) out.push(Number(d));
    } catch {
      // Gone since the listing.
    }
  }
  return out;
}

/** Summed over every thread of the processes: ns on a CPU, ns runnable but waiting, times run. */
export interface SchedTotals {
  readonly runNs: number;
  readonly waitNs: number;
  readonly slices: number;
}

export function schedTotals(pids: readonly number[]): SchedTotals {
  let runNs = 0;
  let waitNs = 0;
  let slices = 0;
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const [run, wait, n] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
        runNs += run ?? 0;
        waitNs += wait ?? 0;
        slices += n ?? 0;
      } catch {
        // A thread that ended between the listing and the read.
      }
    }
  }
  return { runNs, waitNs, slices };
}

export function schedDelta(a: SchedTotals, b: SchedTotals): SchedTotals {
  return { runNs: b.runNs - a.runNs, waitNs: b.waitNs - a.waitNs, slices: b.slices - a.slices };
}
