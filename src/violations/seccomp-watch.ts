import type { Logger } from 'pino';
import { AuditDaemonLog, KernelLog, type KernelLogOptions, type SeccompKill } from './kernel-log.js';

/** Exit status of a container whose plugin process the kernel killed with SIGSYS (128 + 31), as docker-init reports it. */
export const EXIT_SIGSYS = 159;

export interface SeccompWatchOptions {
  readonly log: Logger;
  /** Only kills of this uid can be a plugin's (every plugin runs as it). */
  readonly uid: number;
  /** Which plugin a kill belongs to, by the process's group (each plugin has its own, see pluginGid); undefined: not one of ours. */
  readonly ownerOf: (kill: SeccompKill) => string | undefined;
  /** A process of one of our plugins was killed. */
  readonly onKill?: (plugin: string, kill: SeccompKill) => void;
  /** The kernel log to follow; tests give their own. */
  readonly kernelLog?: Omit<KernelLogOptions, 'onKill'>;
  /** The audit daemon's log to follow as well (default /var/log/audit/audit.log, if readable). */
  readonly auditLog?: string;
}

interface Pending {
  readonly plugin: string;
  readonly kill: SeccompKill;
  readonly seen: number;
}

/** How long a kill is kept for a container exit (by SIGSYS) that asks for it. */
const KEEP_MS = 10_000;

/**
 * Ties the kernel's seccomp kills to plugins, by the killed process's group: exact for any
 * process of a plugin, its main one or a short-lived child, gone or not. Kills of processes
 * that are not ours (another controller's plugins, anything else on the host) are ignored.
 * A kill of the plugin's main process also ends its container (exit 159); the log is read
 * by polling, so the exit may be seen first: `take` waits for the record that explains it.
 */
export class SeccompWatch {
  private pending: Pending[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly sources: { close(): void }[] = [];
  /** Records already taken: the same record may come from the kernel log and the audit daemon's. */
  private readonly seen = new Set<string>();
  /** Why the kernel log is not read, when it is not. */
  readonly unavailable?: string;

  constructor(private readonly opts: SeccompWatchOptions) {
    const common = {
      ...opts.kernelLog,
      onKill: (k: SeccompKill) => this.onKill(k),
      onSuppressed: (n: number) =>
        opts.log.warn({ records: n }, 'the kernel dropped audit records (its printk rate limit, kernel.printk_ratelimit_burst): a plugin whose own process was killed by seccomp meanwhile is still stopped, without the call named; a killed child process is not seen'),
    };
    const kernel = KernelLog.start(common);
    const daemon = AuditDaemonLog.start({ ...common, ...(opts.auditLog ? { file: opts.auditLog } : {}) });
    for (const source of [kernel, daemon]) if (!('unavailable' in source)) this.sources.push(source);
    if (this.sources.length === 0) this.unavailable = 'unavailable' in kernel ? kernel.unavailable : 'no kernel log';
  }

  private onKill(kill: SeccompKill): void {
    if (kill.uid !== this.opts.uid) return;
    const key = `${kill.at}:${kill.serial}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.seen.size > 10_000) this.seen.clear();
    const plugin = this.opts.ownerOf(kill);
    if (plugin === undefined) return;
    const now = Date.now();
    this.pending = this.pending.filter((p) => now - p.seen < KEEP_MS);
    this.pending.push({ plugin, kill, seen: now });
    this.opts.log.warn({ plugin, pid: kill.pid, comm: kill.comm, syscall: kill.name, arch: kill.arch }, 'the kernel killed a plugin process for a forbidden system call');
    this.opts.onKill?.(plugin, kill);
    for (const wake of this.waiters) wake();
  }

  /**
   * The kill that ended `plugin`'s container by SIGSYS, logged since `sinceMs`: waits up
   * to `waitMs` for its record, since the exit can be seen before the log is read.
   * Undefined when the kernel log is not readable, or no record came.
   */
  async take(plugin: string, sinceMs: number, waitMs: number): Promise<SeccompKill | undefined> {
    const find = (): SeccompKill | undefined => {
      const i = this.pending.findLastIndex((p) => p.plugin === plugin && p.seen >= sinceMs);
      return i < 0 ? undefined : this.pending.splice(i, 1)[0]!.kill;
    };
    const now = find();
    if (now || this.sources.length === 0) return now;
    return new Promise((resolve) => {
      const done = (k: SeccompKill | undefined) => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(k);
      };
      const wake = () => {
        const k = find();
        if (k) done(k);
      };
      const timer = setTimeout(() => done(undefined), waitMs);
      this.waiters.add(wake);
    });
  }

  close(): void {
    for (const source of this.sources) source.close();
    this.pending = [];
  }
}

/** The message for a plugin killed for a system call (or, without the kernel log, for one it cannot name). */
export function seccompKillMessage(plugin: string, kill: SeccompKill | undefined): string {
  const what = kill
    ? `the kernel killed its process ${kill.pid} (${kill.comm}) for calling ${kill.name}(2) (${kill.arch} system call ${kill.syscall}), which its seccomp profile forbids`
    : 'the kernel killed it (SIGSYS) for a system call its seccomp profile forbids (which one is not known: the kernel log is not readable here)';
  return `plugin ${plugin}: ${what}; the plugin is stopped, not restarted`;
}
