import path from 'node:path';
import type { WatchSpec } from './cgwatch.js';
import type { CgroupDirs } from './cgroups.js';

/** What a plugin's watch asks cgwatch for, by name; the names come back in its events. */
export interface KernelWatch {
  readonly name: string;
  readonly spec: WatchSpec;
}

export type PressureResource = 'cpu' | 'memory' | 'io';

export interface KernelWatchPlan {
  readonly watches: KernelWatch[];
  /** Memory thresholds the kernel cannot report here (cgroup v2): read at every poll instead. */
  readonly pollMemory: boolean;
}

/**
 * The kernel notifications for one container (docs/monitoring.md#how-each-violation-is-seen):
 * - OOM kill: v1 an eventfd on memory.oom_control; v2 memory.events through inotify;
 * - memory thresholds (bytes): v1 eventfds on memory.usage_in_bytes, which fire on each
 *   crossing up or down; v2 has none (memory.high would throttle), so they are polled;
 * - pids limit: v1 pids.events does not notify, so cgwatch reads it when the kernel logs the
 *   cgroup's first refused fork, then every `pidsPollMs` (or every `pidsPollMs` from the
 *   start when it cannot read the kernel log); v2 pids.events through inotify;
 * - pressure: a PSI trigger per resource where the cgroup has pressure files (v2, and the
 *   unified tree of a hybrid host).
 * Pure.
 */
export function kernelWatches(dirs: CgroupDirs, opts: { thresholds: readonly number[]; pidsPollMs: number; pressure: readonly { resource: PressureResource; trigger: string; name: string }[] }): KernelWatchPlan {
  const watches: KernelWatch[] = [];
  if (dirs.version === 1 && dirs.memory) {
    const control = path.join(dirs.memory, 'cgroup.event_control');
    watches.push({ name: 'oom', spec: { type: 'eventfd', control, file: path.join(dirs.memory, 'memory.oom_control') } });
    for (const bytes of new Set(opts.thresholds)) {
      watches.push({ name: `mem${bytes}`, spec: { type: 'eventfd', control, file: path.join(dirs.memory, 'memory.usage_in_bytes'), args: String(bytes) } });
    }
    if (dirs.pids) watches.push({ name: 'pids', spec: { type: 'poll', file: path.join(dirs.pids, 'pids.events'), intervalMs: opts.pidsPollMs, kernelLog: true } });
  } else if (dirs.unified) {
    watches.push({ name: 'oom', spec: { type: 'notify', file: path.join(dirs.unified, 'memory.events') } });
    watches.push({ name: 'pids', spec: { type: 'notify', file: path.join(dirs.unified, 'pids.events') } });
  }
  if (dirs.unified) {
    for (const p of opts.pressure) watches.push({ name: p.name, spec: { type: 'psi', file: path.join(dirs.unified, `${p.resource}.pressure`), trigger: p.trigger } });
  }
  return { watches, pollMemory: dirs.version === 2 && opts.thresholds.length > 0 };
}
