import type { CgroupDirs } from './cgroups.js';
import { fileHandles, isContainerInit, ProcessList, tmpUsage } from './procfs.js';
import type { EffectiveMonitoring } from './rules.js';
import type { WatchedLimits } from './types.js';
import type { WatchState } from './watch-state.js';

/** A /tmp with less than this free is full: the next page written fails. */
const TMP_FULL_SLACK = 64 * 1024;

/**
 * One plugin's open files and /tmp, read from /proc at its watch's slow reads (the list of
 * its processes read again only when it may have changed: procfs.ts ProcessList) (every
 * `pollMs × slowEvery`, 1.5 s by default, longer past 60 plugins: slow-reads.ts): no kernel
 * notification covers either. The kernel
 * enforces both limits itself (RLIMIT_NOFILE, the tmpfs size); these reads only report a
 * process at its limit, a full /tmp and the alerts below them, within one slow poll of the
 * moment the figure is reached and still held. A process that reaches its limit and lets go
 * between two polls is not seen here, but by the kernel audit rules' EMFILE record
 * (docs/security.md#kernel-audit-rules).
 */
export class ProcfsCheck {
  private readonly procs: ProcessList;

  constructor(
    dirs: CgroupDirs,
    private readonly state: WatchState,
    private readonly proc: string,
    /** The cgroup's task count now (pids.current). */
    private readonly tasks: () => number,
    /** The container's main process (State.Pid). */
    mainPid?: number,
  ) {
    this.procs = new ProcessList(dirs.pids ?? dirs.memory ?? dirs.unified ?? '');
    this.init = mainPid !== undefined && isContainerInit(mainPid, proc) ? mainPid : undefined;
  }

  /**
   * The container's init (docker-init, when the container runs with one), left out of the
   * open-files check: it holds its three standard streams and opens no file, and a plugin
   * cannot make it (its own processes are the init's children, without ptrace). Its stat was
   * a third of the check's /proc reads at idle. Counted in openFiles() (the usage figure).
   */
  private readonly init: number | undefined;

  /** Open files of all the container's processes (ResourceUsage.io.fileHandles), from the list read now. */
  openFiles(): number {
    return fileHandles(this.procs.fresh(this.tasks()), this.proc).total;
  }

  check(limits: WatchedLimits, rules: EffectiveMonitoring): void {
    const s = this.state;
    const h = rules.alerts.hysteresisPercent / 100;
    let pids = this.procs.pids(this.tasks());
    let fh = fileHandles(pids, this.proc, this.init);
    if (fh.gone > 0) {
      // A listed process is gone: another may have taken its place.
      pids = this.procs.fresh(this.tasks());
      fh = fileHandles(pids, this.proc, this.init);
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
