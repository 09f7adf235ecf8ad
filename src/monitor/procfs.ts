import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import path from 'node:path';

/**
 * What the cgroup files do not say, read from /proc: the open files of each process of a
 * container, and how full its /tmp is. `proc` is a parameter so tests can point it at a
 * fixture.
 */

/** The processes of a cgroup (its cgroup.procs). Empty once the cgroup is gone. */
export function cgroupPids(cgroupDir: string): number[] {
  try {
    return readFileSync(path.join(cgroupDir, 'cgroup.procs'), 'latin1')
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  } catch {
    return [];
  }
}

/** Open file handles per process (entries of /proc/<pid>/fd); a process gone meanwhile counts 0. */
export function fileHandles(pids: readonly number[], proc = '/proc'): { total: number; most: number; pid?: number } {
  let total = 0;
  let most = 0;
  let pid: number | undefined;
  for (const p of pids) {
    let n = 0;
    try {
      n = readdirSync(path.join(proc, String(p), 'fd')).length;
    } catch {
      continue;
    }
    total += n;
    if (n > most) {
      most = n;
      pid = p;
    }
  }
  return pid === undefined ? { total, most } : { total, most, pid };
}

/**
 * How full the container's /tmp is, seen through one of its processes' root
 * (/proc/<pid>/root/tmp: the container's own mount namespace). Undefined when the process is
 * gone or /tmp is not its own filesystem.
 */
export function tmpUsage(pid: number, proc = '/proc'): { used: number; size: number } | undefined {
  try {
    const s = statfsSync(path.join(proc, String(pid), 'root', 'tmp'));
    const size = s.blocks * s.bsize;
    return { used: (s.blocks - s.bfree) * s.bsize, size };
  } catch {
    return undefined;
  }
}
