import { readdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * What the cgroup files do not say, read from /proc: the open files of each process of a
 * container, and how full its /tmp is. `proc` is a parameter so tests can point it at a
 * fixture.
 */

function parsePids(text: string): number[] {
  const out: number[] = [];
  for (const l of text.split('\n')) if (l !== '') out.push(Number(l));
  return out;
}

/** The processes of a cgroup (its cgroup.procs). Empty once the cgroup is gone. */
export function cgroupPids(cgroupDir: string): number[] {
  try {
    return parsePids(readFileSync(path.join(cgroupDir, 'cgroup.procs'), 'latin1'));
  } catch {
    return [];
  }
}

/** Slow polls after which the process list is read again whatever else says. */
const REFRESH_EVERY = 10;

/**
 * A cgroup's processes for its watch's polls, read from cgroup.procs (an open, a read and a
 * close: about 80 µs on this host) only when they may have changed: the cgroup's task count
 * (pids.current, a read of a file kept open: 5-9 µs) is not what it was at the last read, a
 * listed process is gone, or REFRESH_EVERY polls went by (a process replaced by another
 * between two polls, with the same count of tasks). Kept open, cgroup v1's cgroup.procs
 * would not do: the kernel keeps serving the list it made while the file is read again
 * within a second.
 */
export class ProcessList {
  private cached: number[] = [];
  private tasks = -1;
  private polls = 0;

  constructor(private readonly cgroupDir: string) {}

  /** Read the list now. */
  fresh(tasks: number): number[] {
    this.cached = cgroupPids(this.cgroupDir);
    this.tasks = tasks;
    this.polls = 0;
    return this.cached;
  }

  /** The processes, given the cgroup's task count now. */
  pids(tasks: number): number[] {
    if (tasks !== this.tasks || ++this.polls >= REFRESH_EVERY) return this.fresh(tasks);
    return this.cached;
  }
}

/**
 * Is this process Docker's container init (docker-init: every plugin container runs with
 * `Init: true`)? Read once per watch. A plugin cannot rename it: a process may rename only
 * itself and its own threads.
 */
export function isContainerInit(pid: number, proc = '/proc'): boolean {
  try {
    return readFileSync(`${proc}/${pid}/comm`, 'latin1').trim() === 'docker-init';
  } catch {
    return false;
  }
}

/** procfs's magic number (statfs f_type). */
const PROC_SUPER_MAGIC = 0x9fa0;
const isProcfs = new Map<string, boolean>();

/** Is `proc` a procfs (and not a test's fixture folder, whose folders have sizes of their own)? */
function onProcfs(proc: string): boolean {
  let yes = isProcfs.get(proc);
  if (yes === undefined) {
    try {
      yes = statfsSync(proc).type === PROC_SUPER_MAGIC;
    } catch {
      yes = false;
    }
    isProcfs.set(proc, yes);
  }
  return yes;
}

/**
 * How many files a process has open. Since Linux 6.2 a stat of /proc/<pid>/fd gives the count
 * as its size, a third of the cost of listing the folder (no entry is made per file); an
 * older kernel says 0 there, and the folder is listed. Undefined when the process is gone.
 */
export function openFiles(pid: number, proc = '/proc'): number | undefined {
  // A template, not path.join: made for every process at every slow poll, and `proc` is a plain path.
  const dir = `${proc}/${pid}/fd`;
  try {
    const size = onProcfs(proc) ? statSync(dir).size : 0;
    return size > 0 ? size : readdirSync(dir).length;
  } catch {
    return undefined;
  }
}

/** Open file handles per process, but `skip`'s; a process gone meanwhile counts 0 (and `gone` says how many were). */
export function fileHandles(pids: readonly number[], proc = '/proc', skip?: number): { total: number; most: number; pid?: number; gone: number } {
  let total = 0;
  let most = 0;
  let pid: number | undefined;
  let gone = 0;
  for (const p of pids) {
    if (p === skip) continue;
    const n = openFiles(p, proc);
    if (n === undefined) {
      gone++;
      continue;
    }
    total += n;
    if (n > most) {
      most = n;
      pid = p;
    }
  }
  return pid === undefined ? { total, most, gone } : { total, most, pid, gone };
}

/**
 * How full the container's /tmp is, seen through one of its processes' root
 * (/proc/<pid>/root/tmp: the container's own mount namespace). Undefined when the process is
 * gone or /tmp is not its own filesystem.
 */
export function tmpUsage(pid: number, proc = '/proc'): { used: number; size: number } | undefined {
  try {
    const s = statfsSync(`${proc}/${pid}/root/tmp`);
    const size = s.blocks * s.bsize;
    return { used: (s.blocks - s.bfree) * s.bsize, size };
  } catch {
    return undefined;
  }
}
