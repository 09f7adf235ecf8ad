import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

/**
 * Pure: what a cgroup v2 `cgroup.events` says of its processes: true while the cgroup (or
 * one below it) holds one, false once the last has exited; undefined for a text without the
 * `populated` line (not a cgroup.events).
 */
export function populated(text: string): boolean | undefined {
  const m = /^populated ([01])$/m.exec(text);
  return m ? m[1] === '1' : undefined;
}

/**
 * The end of a container's processes as the kernel sees it: its unified cgroup's
 * `cgroup.events` turning to "populated 0", which the kernel notifies through inotify
 * (kernfs_notify) as the last task leaves the cgroup, tens of milliseconds before the engine
 * has reaped the container's first process and reported the exit (docs/performance.md).
 * Watched from the controller's own event loop (fs.watch: libuv's inotify), not through the
 * cgwatch helper: one hop fewer (no helper wake-up, pipe and line to parse), and it needs
 * neither root nor the resource monitor. Fires `onEmpty` once, then closes itself; a cgroup
 * removed (the container gone) counts as empty. `check` reads the file now, for a prompt that
 * the processes may be gone (the hub connection closing).
 */
export class CgroupEnd {
  private watcher: FSWatcher | undefined;
  private done = false;

  private constructor(
    readonly file: string,
    private readonly onEmpty: () => void,
  ) {}

  /**
   * Watch the cgroup at `unifiedDir` (a cgroup v2 dir, or a hybrid host's unified one).
   * Throws when the file cannot be watched (no such cgroup, no inotify watch left). Fires at
   * once, from here, when the cgroup is already empty.
   */
  static watch(unifiedDir: string, onEmpty: () => void): CgroupEnd {
    const end = new CgroupEnd(path.join(unifiedDir, 'cgroup.events'), onEmpty);
    // Not persistent: a watch never keeps the controller's process alive.
    end.watcher = watch(end.file, { persistent: false }, () => end.check());
    // An inotify error (the watch's file gone with its cgroup): the engine's report remains.
    end.watcher.on('error', () => end.close());
    end.check();
    return end;
  }

  /** Has it fired or been closed? */
  get closed(): boolean {
    return this.done;
  }

  /** Read cgroup.events now; fires (once) when it says no process is left or is gone. Returns whether it fired. */
  check(): boolean {
    if (this.done) return false;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      // ENOENT, or ENODEV from a file whose cgroup was removed under it: the processes are gone.
      text = 'populated 0';
    }
    if (populated(text) !== false) return false;
    this.close();
    this.onEmpty();
    return true;
  }

  /** Stop watching (the inotify watch is removed). Idempotent. */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.watcher?.close();
    this.watcher = undefined;
  }
}
