/**
 * What the host's scheduler says about a stretch of a benchmark: how idle the CPUs were
 * (`/proc/stat`), and how long a set of processes' threads waited for a CPU once runnable
 * (`/proc/<pid>/task/<tid>/schedstat`: time on a CPU, time waiting on a run queue, and the
 * number of times each ran). The spread calls' tail is the plugins waiting for a CPU: these
 * figures say how much, beside the latencies, in the same run. Linux only; elsewhere empty.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Jiffies of the whole host: idle (with iowait) and all. */
export interface CpuTimes {
  readonly idle: number;
  readonly total: number;
}

export function cpuTimes(): CpuTimes {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { idle: (f[3] ?? 0) + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return { idle: 0, total: 0 };
  }
}

/** The share of the host's CPU time that was idle between two readings, in percent. */
export function idlePercent(a: CpuTimes, b: CpuTimes): number {
  return b.total > a.total ? ((b.idle - a.idle) / (b.total - a.total)) * 100 : NaN;
}

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
