import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
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
  /** The audit record's serial number: with `at`, it names the record. */
  readonly serial: number;
}

/** Audit record type of a seccomp action (include/uapi/linux/audit.h AUDIT_SECCOMP). */
const AUDIT_SECCOMP = 1326;

/**
 * Parse one audit record of a seccomp kill into a SeccompKill, or undefined when it is
 * anything else. Two forms: a /dev/kmsg record ("<prio>,<seq>,<usec>,<flags>;audit:
 * type=1326 audit(<time>:<serial>): ...", where the kernel prints it without an audit
 * daemon) and a line of the audit daemon's log ("type=SECCOMP msg=audit(<time>:<serial>):
 * ..."). Only records with a signal (sig=31, SIGSYS) are kills; LogoMesh's profiles never
 * ask the kernel to log anything else.
 */
export function parseSeccompRecord(record: string): SeccompKill | undefined {
  const text = (record.startsWith('type=') ? record : record.slice(record.indexOf(';') + 1)).split('\n', 1)[0]!;
  const head = /^(?:audit: type=(\d+) |type=(SECCOMP) msg=)audit\((\d+)\.(\d+):(\d+)\):/.exec(text);
  if (!head || (head[2] !== 'SECCOMP' && Number(head[1]) !== AUDIT_SECCOMP)) return undefined;
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
    at: Number(head[3]) * 1000 + Number(head[4]!.slice(0, 3).padEnd(3, '0')),
    serial: Number(head[5]),
  };
}

/** `key=value` pairs; values quoted ("...") or, when they hold odd characters, in hex. */
function fields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  // The audit daemon appends interpreted fields after a \x1d: not ours to read.
  for (const m of text.split('\x1d', 1)[0]!.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
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

/**
 * Follows the audit daemon's log for seccomp kills: with auditd running, the kernel hands
 * its records to the daemon and no longer prints them. The file is read from its end, by
 * polling; a file that shrank or was replaced (rotation) is read again from its start.
 */
export class AuditDaemonLog {
  private fd?: number;
  private ino = 0;
  private pos = 0;
  private partial = '';
  private timer?: NodeJS.Timeout;

  private constructor(
    private readonly file: string,
    private readonly opts: KernelLogOptions,
  ) {}

  /** Start following `file` (default /var/log/audit/audit.log), or return why not. */
  static start(opts: KernelLogOptions & { file?: string }): AuditDaemonLog | { unavailable: string } {
    const log = new AuditDaemonLog(opts.file ?? '/var/log/audit/audit.log', opts);
    try {
      log.open(true);
    } catch (err) {
      return { unavailable: `cannot read ${log.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    }
    log.schedule();
    return log;
  }

  private open(atEnd: boolean): void {
    const fd = openSync(this.file, constants.O_RDONLY);
    if (this.fd !== undefined) closeSync(this.fd);
    const st = fstatSync(fd);
    this.fd = fd;
    this.ino = st.ino;
    this.pos = atEnd ? st.size : 0;
    this.partial = '';
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      try {
        this.poll();
      } catch {
        // Rotated away and not there again yet: the next poll looks again.
      }
      if (this.fd !== undefined) this.schedule();
    }, this.opts.pollMs ?? 100);
    this.timer.unref();
  }

  private poll(): void {
    this.readNew();
    let st;
    try {
      st = statSync(this.file);
    } catch {
      return;
    }
    if (st.ino !== this.ino || st.size < this.pos) {
      this.open(false);
      this.readNew();
    }
  }

  private readNew(): void {
    if (this.fd === undefined) return;
    const size = fstatSync(this.fd).size;
    if (size <= this.pos) return;
    const buf = Buffer.alloc(Math.min(size - this.pos, 4 * 1024 * 1024));
    const n = readSync(this.fd, buf, 0, buf.length, this.pos);
    this.pos += n;
    const lines = (this.partial + buf.toString('utf8', 0, n)).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      const kill = parseSeccompRecord(line);
      if (kill) this.opts.onKill(kill);
    }
  }

  close(): void {
    clearTimeout(this.timer);
    if (this.fd !== undefined) closeSync(this.fd);
    delete this.fd;
  }
}
