import type { Logger } from 'pino';
import { DenialAssembler, seccompKillOf, type AuditRecord, type KernelDenial, type SeccompKill } from './audit-records.js';
import { AuditDaemonLog, KernelLog, type KernelLogOptions } from './kernel-log.js';

/** Exit status of a container whose plugin process the kernel killed with SIGSYS (128 + 31), as docker-init reports it. */
export const EXIT_SIGSYS = 159;
/**
 * How long an exit by SIGSYS waits for the kernel's record naming the system call. It comes
 * within milliseconds on a quiet host; a loaded one took over a second (the test then saw a
 * message without the call's name). Only a kill whose record never comes waits it all.
 */
export const KERNEL_RECORD_WAIT_MS = 3_000;

export interface KernelWatchOptions {
  readonly log: Logger;
  /** Only records of this uid, or of a uid in this range [from, to), can be a plugin's (each plugin runs as its own, see pluginUid). */
  readonly uid: number | { readonly from: number; readonly to: number };
  /** Which plugin a process belongs to, by its group (each plugin has its own, see pluginGid); undefined: not one of ours. */
  readonly ownerOf: (process: { readonly gid: number }) => string | undefined;
  /** A process of one of our plugins was killed by seccomp. */
  readonly onKill?: (plugin: string, kill: SeccompKill) => void;
  /** A system call of one of our plugins was refused, and one of LogoMesh's audit rules reported it. */
  readonly onDenial?: (plugin: string, denial: KernelDenial) => void;
  /** The kernel log to follow; tests give their own. */
  readonly kernelLog?: Omit<KernelLogOptions, 'onRecord'>;
  /** The audit daemon's log to follow as well (default /var/log/audit/audit.log, if readable). */
  readonly auditLog?: string;
  /**
   * The kernel log is read only when `take` asks (a one-shot run: most never need it), and
   * then from its oldest record; `take` then keeps only kills logged since its `sinceMs`
   * (the kernel's own time of the record), so a kill of an earlier run is never taken for
   * this one's. The audit daemon's log is still followed from the start (its end is found
   * without reading it).
   */
  readonly onDemand?: boolean;
}

interface Pending {
  readonly plugin: string;
  readonly kill: SeccompKill;
  readonly seen: number;
}

/** How long a kill is kept for a container exit (by SIGSYS) that asks for it. */
const KEEP_MS = 10_000;

/**
 * What the kernel reports of plugins, tied to them by the process's group: exact for any
 * process of a plugin, its main one or a short-lived child, gone or not. Records of
 * processes that are not ours (another controller's plugins, anything else on the host)
 * are ignored. Two kinds:
 * - seccomp kills. A kill of the plugin's main process also ends its container (exit 159);
 *   the logs are read by polling, so the exit may be seen first: `take` waits for the
 *   record that explains it;
 * - denials that LogoMesh's kernel audit rules report (src/provision/kernel-audit.rules: a
 *   write to a read-only place, a full /tmp, a limit reached), when the host has them.
 */
export class KernelWatch {
  private pending: Pending[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly sources: { close(): void }[] = [];
  private readonly createdAt = Date.now();
  /** The kernel log when it is read on demand, until `take` starts it. */
  private onDemand?: KernelLog;
  /** Events already taken: the same record may come from the kernel log and the audit daemon's. */
  private readonly seen = new Set<string>();
  /** Why the kernel log is not read, when it is not. */
  readonly unavailable?: string;

  constructor(private readonly opts: KernelWatchOptions) {
    const source = () => {
      const denials = new DenialAssembler((d) => this.onDenial(d));
      return {
        ...opts.kernelLog,
        onRecord: (r: AuditRecord) => {
          const kill = seccompKillOf(r);
          if (kill) this.onKill(kill);
          else denials.add(r);
        },
        onBatch: () => denials.flush(),
        onSuppressed: (n: number) =>
          opts.log.warn({ records: n }, 'the kernel dropped audit records (its printk rate limit, kernel.printk_ratelimit_burst): a plugin whose own process was killed by seccomp meanwhile is still stopped, without the call named; other records of that time are lost'),
      };
    };
    const kernel = KernelLog.start({ ...source(), ...(opts.onDemand ? { onDemand: true } : {}) });
    if (opts.onDemand && kernel instanceof KernelLog) this.onDemand = kernel;
    const daemon = AuditDaemonLog.start({ ...source(), ...(opts.auditLog ? { file: opts.auditLog } : {}) });
    for (const s of [kernel, daemon]) if (!('unavailable' in s)) this.sources.push(s);
    if (this.sources.length === 0) this.unavailable = 'unavailable' in kernel ? kernel.unavailable : 'no kernel log';
  }

  /** The plugin of a record's process, once per record (undefined: not ours, or seen already). */
  private claim(p: { uid: number; gid: number; at: number; serial: number }): string | undefined {
    const u = this.opts.uid;
    if (typeof u === 'number' ? p.uid !== u : p.uid < u.from || p.uid >= u.to) return undefined;
    const key = `${p.at}:${p.serial}`;
    if (this.seen.has(key)) return undefined;
    if (this.seen.size >= 10_000) this.seen.clear();
    this.seen.add(key);
    return this.opts.ownerOf(p);
  }

  private onKill(kill: SeccompKill): void {
    // Read on demand, the log holds kills from before this watch: not this run's, not reported.
    if (this.onDemand && kill.at < this.createdAt) return;
    const plugin = this.claim(kill);
    if (plugin === undefined) return;
    const now = Date.now();
    this.pending = this.pending.filter((p) => now - p.seen < KEEP_MS);
    this.pending.push({ plugin, kill, seen: now });
    this.opts.log.warn({ plugin, pid: kill.pid, comm: kill.comm, syscall: kill.name, arch: kill.arch }, 'the kernel killed a plugin process for a forbidden system call');
    this.opts.onKill?.(plugin, kill);
    for (const wake of this.waiters) wake();
  }

  private onDenial(denial: KernelDenial): void {
    const plugin = this.claim(denial);
    if (plugin !== undefined) this.opts.onDenial?.(plugin, denial);
  }

  /**
   * The kill that ended `plugin`'s container by SIGSYS, logged since `sinceMs`: waits up
   * to `waitMs` for its record, since the exit can be seen before the log is read.
   * Undefined when the kernel log is not readable, or no record came.
   */
  async take(plugin: string, sinceMs: number, waitMs: number): Promise<SeccompKill | undefined> {
    this.onDemand?.follow();
    const logged = this.opts.onDemand === true;
    const find = (): SeccompKill | undefined => {
      const i = this.pending.findLastIndex((p) => p.plugin === plugin && p.seen >= sinceMs && (!logged || p.kill.at >= sinceMs));
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
    : 'the kernel killed it (SIGSYS) for a system call its seccomp profile forbids (which one is not known: no kernel record of it was read)';
  return `plugin ${plugin}: ${what}; the plugin is stopped, not restarted`;
}

/** What each of LogoMesh's kernel audit rules reports (src/provision/kernel-audit.rules). */
const DENIALS: Readonly<Record<string, string>> = {
  'logomesh-rofs': 'a write to a read-only place',
  'logomesh-full': '/tmp or a write grant is full',
  'logomesh-fds': 'its file-handle limit (maxFileHandles) is reached',
  'logomesh-procs': 'its process limit (maxProcesses) is reached',
  'logomesh-exec': 'running a file from a noexec place, or without permission',
  'logomesh-privs': 'a change of identity or capabilities, which no-new-privileges and the empty capability set refuse',
  'logomesh-rawsock': 'a raw or packet socket, which needs CAP_NET_RAW',
};

/** The audit entry's reason for a kernel denial: the call, its paths, the error and what it means. */
export function kernelDenialMessage(d: KernelDenial): string {
  const on = d.paths.length ? ` on ${d.paths.map((p) => JSON.stringify(p)).join(', ')}` : '';
  return `${d.name}(2)${on} failed with ${d.errno}: ${DENIALS[d.key] ?? d.key} (process ${d.pid} ${d.comm})`;
}
