import type { CgroupDirs } from './cgroups.js';
import { fileHandles, ProcessList, tmpUsage } from './procfs.js';
import type { EffectiveMonitoring } from './rules.js';
import type { WatchedLimits } from './types.js';
import type { WatchState } from './watch-state.js';

/** A /tmp with less than this free is full: the next page written fails. */
const TMP_FULL_SLACK = 64 * 1024;

/** Slow polls skipped in a row at most (the cgroup used no CPU): a bound should the CPU figure ever miss a short run. */
const MAX_SKIPPED = 10;

/**
 * One plugin's open files and /tmp, read from /proc at its watch's slow polls (the list of
 * its processes read again only when it may have changed: procfs.ts ProcessList) (every
 * `pollMs × slowEvery`, 1.5 s by default): no kernel notification covers either. The kernel
 * enforces both limits itself (RLIMIT_NOFILE, the tmpfs size); these reads only report a
 * process at its limit, a full /tmp and the alerts below them, within one slow poll of the
 * moment the figure is reached and still held. A process that reaches its limit and lets go
 * between two polls is not seen here, but by the kernel audit rules' EMFILE record
 * (docs/security.md#kernel-audit-rules).
 *
 * A poll is skipped when the cgroup used no CPU since the last one read: a file opened or
 * closed, a page written to /tmp, a process started or ended are all system calls (or page
 * faults) of the container's own processes, and the kernel charges each one's time to its
 * cgroup (in nanoseconds, at the switch away from the task), so with the CPU figure unmoved
 * nothing these reads report can have changed. An idle plugin runs only to answer its
 * health ping (every 5 s by default), so most of its slow polls at idle are one read of a
 * file kept open instead of a stat per process and a statfs (docs/performance.md#scale).
 */
export class ProcfsCheck {
  private readonly procs: ProcessList;
  /** The cgroup's CPU time when the last poll read /proc, and the polls skipped since. */
  private cpuAtRead: number | undefined;
  private skipped = 0;
  /** The limits the last read compared with: a live change (enforceLimit) needs a read under the new ones. */
  private limitsAtRead: WatchedLimits | undefined;

  constructor(
    dirs: CgroupDirs,
    private readonly state: WatchState,
    private readonly proc: string,
    /** The cgroup's task count now (pids.current). */
    private readonly tasks: () => number,
    /** The CPU time the cgroup used so far (ns; undefined: not known, and no poll is skipped). */
    private readonly cpuUsage?: () => number | undefined,
  ) {
    this.procs = new ProcessList(dirs.pids ?? dirs.memory ?? dirs.unified ?? '');
  }

  /** Open files of all the container's processes (ResourceUsage.io.fileHandles), from the list read now. */
  openFiles(): number {
    return fileHandles(this.procs.fresh(this.tasks()), this.proc).total;
  }

  /** Did the cgroup use no CPU since the last poll that read? Then this one need not read. */
  private unchanged(limits: WatchedLimits): boolean {
    const cpu = this.cpuUsage?.();
    if (cpu !== undefined && cpu === this.cpuAtRead && limits === this.limitsAtRead && this.skipped < MAX_SKIPPED) {
      this.skipped++;
      return true;
    }
    // Read before /proc: a run of the processes during the reads moves it for the next poll.
    this.cpuAtRead = cpu;
    this.limitsAtRead = limits;
    this.skipped = 0;
    return false;
  }

  check(limits: WatchedLimits, rules: EffectiveMonitoring): void {
    if (this.unchanged(limits)) return;
    const s = this.state;
    const h = rules.alerts.hysteresisPercent / 100;
    let pids = this.procs.pids(this.tasks());
    let fh = fileHandles(pids, this.proc);
    if (fh.gone > 0) {
      // A listed process is gone: another may have taken its place.
      pids = this.procs.fresh(this.tasks());
      fh = fileHandles(pids, this.proc);
    }
    const fl = limits.fileHandles;
    if (s.threshold('file-handles', fh.most, fl, Math.max(1, h * fl))) {
      s.violation('file-handles', 'none', 'poll', fh.most, fl, 'count', `process ${fh.pid} holds ${fh.most} open files, its maxFileHandles`);
    }
    const fp = rules.alerts.fileHandlesPercent;
    if (fp !== undefined && s.threshold('file-handles-alert', fh.most, (fp / 100) * fl, h * fl)) {
      s.violation('file-handles', 'alert', 'poll', fh.most, Math.round((fp / 100) * fl), 'count', `process ${fh.pid} holds ${fh.most} open files, ${fp}% of maxFileHandles`);
    }
    const tmp = pids.length > 0 ? tmpUsage(pids[0]!, this.proc) : undefined;
    if (!tmp || tmp.size === 0) return;
    if (s.threshold('tmp-full', tmp.used, tmp.size - TMP_FULL_SLACK, h * tmp.size)) {
      s.violation('tmp-full', 'none', 'poll', tmp.used, tmp.size, 'bytes', `/tmp is full (${tmp.used} of ${tmp.size} bytes)`);
    }
    const tp = rules.alerts.tmpPercent;
    if (tp !== undefined && s.threshold('tmp-alert', tmp.used, (tp / 100) * tmp.size, h * tmp.size)) {
      s.violation('tmp-full', 'alert', 'poll', tmp.used, Math.round((tp / 100) * tmp.size), 'bytes', `/tmp is ${tp}% full`);
    }
  }

}
