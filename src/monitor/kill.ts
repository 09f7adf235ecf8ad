import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CgroupDirs } from './cgroups.js';
import { cgroupPids } from './procfs.js';

/**
 * Kill every process of a container's cgroup at once: `cgroup.kill` where the kernel has it
 * (cgroup v2, and the unified tree of a hybrid host, Linux >= 5.14), which also stops
 * processes forked meanwhile; else SIGKILL to each process of cgroup.procs, a few rounds so a
 * fork in between is caught. The engine then sees the container exit (137), and the
 * controller's restart policy applies as for any crash. Returns how it was done.
 */
export function killCgroup(dirs: CgroupDirs): 'cgroup.kill' | 'signal' {
  if (dirs.unified) {
    try {
      writeFileSync(path.join(dirs.unified, 'cgroup.kill'), '1');
      return 'cgroup.kill';
    } catch {
      // Older kernel, or a unified tree without it: signals below.
    }
  }
  const dir = dirs.pids ?? dirs.memory ?? dirs.unified;
  for (let round = 0; dir && round < 5; round++) {
    const pids = cgroupPids(dir);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }
  return 'signal';
}
