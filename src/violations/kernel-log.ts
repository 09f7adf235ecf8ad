import { closeSync, constants, openSync, readSync } from 'node:fs';
import { AUDIT_ARCHES, SYSCALL_NAMES } from './syscall-names.js';

/**
 * A system call the kernel killed a process for, as its audit record (type 1326, SECCOMP)
 * says: printed to the kernel log when no audit daemon takes it, which is where the
 * controller reads it.
 */
export interface SeccompKill {
  /** The process, in the host's pid namespace. */
  readonly pid: number;
  readonly uid: number;
  /** The process's (real) group: each plugin has its own, which ties the kill to it. */
  readonly gid: number;
  readonly comm: string;
  readonly exe: string;
  /** The system call's number, and its name where the architecture is known. */
  readonly syscall: number;
  readonly name: string;
  /** The architecture the call was made through: `x86_64`, `i386 (32-bit)`, or the raw audit arch. */
  readonly arch: string;
  readonly signal: number;
  /** When the kernel logged it (the audit record's own time, ms since the epoch). */
  readonly at: number;
}

/** Audit record type of a seccomp action (include/uapi/linux/audit.h AUDIT_SECCOMP). */
const AUDIT_SECCOMP = 1326;

/**
 * Parse one /dev/kmsg record ("<prio>,<seq>,<usec>,<flags>;<text>\n< continuation>...")
 * into a SeccompKill, or undefined when it is anything else. Only records with a signal
 * (sig=31, SIGSYS) are kills; LogoMesh's profiles never ask the kernel to log anything else.
 */
export function parseSeccompRecord(record: string): SeccompKill | undefined {
  const text = record.slice(record.indexOf(';') + 1).split('\n', 1)[0]!;
  const head = /audit: type=(\d+) audit\((\d+)\.(\d+):\d+\):/.exec(text);
  if (!head || Number(head[1]) !== AUDIT_SECCOMP) return undefined;
  const f = fields(text.slice(head.index + head[0].length));
  const signal = Number(f.sig);
  const syscall = Number(f.syscall);
  if (!signal || !Number.isInteger(syscall) || !f.pid) return undefined;
  const arch = f.arch ?? '';
  return {
    pid: Number(f.pid),
    uid: Number(f.uid),
    gid: Number(f.gid),
    comm: f.comm ?? '',
    exe: f.exe ?? '',
    syscall,
    name: SYSCALL_NAMES[arch]?.[String(syscall)] ?? `syscall ${syscall}`,
    arch: AUDIT_ARCHES[arch] ?? arch,
    signal,
    at: Number(head[2]) * 1000 + Number(head[3]!.slice(0, 3).padEnd(3, '0')),
  };
}

/** `key=value` pairs; values quoted ("...") or, when they hold odd characters, in hex. */
function fields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
    const raw = m[2]!;
    out[m[1]!] = raw.startsWith('"') ? raw.slice(1, -1) : /^(comm|exe)$/.test(m[1]!) && /^[0-9A-F]+$/.test(raw) ? Buffer.from(raw, 'hex').toString() : raw;
  }
  return out;
}

/** "kauditd_printk_skb: N callbacks suppressed": N audit records the kernel's rate limit dropped. */
export function parseSuppressed(record: string): number | undefined {
  const m = /kauditd_printk_skb: (\d+) callbacks suppressed/.exec(record);
  return m ? Number(m[1]) : undefined;
}

export interface KernelLogOptions {
  /** Called for each seccomp kill logged after the watch began. */
  readonly onKill: (kill: SeccompKill) => void;
  /** Called when the kernel says it dropped audit records (its printk rate limit). */
  readonly onSuppressed?: (records: number) => void;
  /** How often to look for new records. */
  readonly pollMs?: number;
  /** The device; a test may give a FIFO or file. */
  readonly device?: string;
}

/**
 * Follows the kernel log for seccomp kills. /dev/kmsg is read without blocking, a record per
 * read, every pollMs: a blocking read would hold one of libuv's four pool threads forever.
 * What the log held before the watch began is skipped. Reading it needs CAP_SYSLOG where
 * kernel.dmesg_restrict is 1 (root on the host has it); without it, `start` says why and the
 * controller still sees a kill as a plugin's exit by SIGSYS, without the system call's name.
 */
export class KernelLog {
  private fd?: number;
  private timer?: NodeJS.Timeout;
  private readonly buf = Buffer.alloc(16 * 1024);

  private constructor(private readonly opts: KernelLogOptions) {}

  /** Start following, or return why the kernel log cannot be read. */
  static start(opts: KernelLogOptions): KernelLog | { unavailable: string } {
    const log = new KernelLog(opts);
    const device = opts.device ?? '/dev/kmsg';
    try {
      log.fd = openSync(device, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      return { unavailable: `cannot read ${device}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
    log.drain(false);
    log.schedule();
    return log;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.drain(true);
      if (this.fd !== undefined) this.schedule();
    }, this.opts.pollMs ?? 100);
    this.timer.unref();
  }

  /** Read every record there is now; report the kills when `report`. */
  private drain(report: boolean): void {
    for (let i = 0; this.fd !== undefined && i < 100_000; i++) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // EPIPE: records were overwritten before they were read; the next read goes on.
        if (code === 'EPIPE') continue;
        return; // EAGAIN: nothing more for now.
      }
      if (n === 0) return;
      if (!report) continue;
      const record = this.buf.toString('utf8', 0, n);
      const kill = parseSeccompRecord(record);
      if (kill) this.opts.onKill(kill);
      const dropped = kill ? undefined : parseSuppressed(record);
      if (dropped) this.opts.onSuppressed?.(dropped);
    }
  }

  close(): void {
    clearTimeout(this.timer);
    if (this.fd !== undefined) closeSync(this.fd);
    delete this.fd;
  }
}
