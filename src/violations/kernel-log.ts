import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { parseAuditRecord, parseSuppressed, type AuditRecord } from './audit-records.js';

export interface KernelLogOptions {
  /** Called for each audit record logged after the watch began. */
  readonly onRecord: (record: AuditRecord) => void;
  /** Called after each read of everything there was: the records of an event are all in. */
  readonly onBatch?: () => void;
  /** Called when the kernel says it dropped audit records (its printk rate limit). */
  readonly onSuppressed?: (records: number) => void;
  /** How often to look for new records. */
  readonly pollMs?: number;
  /** The device; a test may give a FIFO or file. */
  readonly device?: string;
  /**
   * Read nothing until follow() is called, then every record the kernel still holds, those
   * logged before the start too (a one-shot run, which needs the log only to explain an exit
   * by SIGSYS: skipping the ~2,000 records already there, one read(2) each, took 4-10 ms of
   * every run). The caller tells its records from older ones (KernelWatch: by their time).
   */
  readonly onDemand?: boolean;
}

/**
 * Follows the kernel log for audit records (seccomp kills, LogoMesh's audit rules). /dev/kmsg is read without blocking, a record per
 * read, every pollMs: a blocking read would hold one of libuv's four pool threads forever.
 * What the log held before the watch began is skipped (unless onDemand). Reading it needs CAP_SYSLOG where
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
    if (opts.onDemand) return log;
    log.drain(false);
    log.schedule();
    return log;
  }

  /** An onDemand log: report every record it holds now, then follow it. Once; a no-op otherwise. */
  follow(): void {
    if (!this.opts.onDemand || this.fd === undefined || this.timer) return;
    this.drain(true);
    this.schedule();
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
        break; // EAGAIN: nothing more for now.
      }
      if (n === 0) break;
      if (!report) continue;
      const text = this.buf.toString('utf8', 0, n);
      const record = parseAuditRecord(text);
      if (record) this.opts.onRecord(record);
      const dropped = record ? undefined : parseSuppressed(text);
      if (dropped) this.opts.onSuppressed?.(dropped);
    }
    if (report) this.opts.onBatch?.();
  }

  close(): void {
    clearTimeout(this.timer);
    if (this.fd !== undefined) closeSync(this.fd);
    delete this.fd;
  }
}

/**
 * Follows the audit daemon's log: with auditd running, the kernel hands its records to the
 * daemon and no longer prints them. The file is read from its end, by
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
      const record = parseAuditRecord(line);
      if (record) this.opts.onRecord(record);
    }
    this.opts.onBatch?.();
  }

  close(): void {
    clearTimeout(this.timer);
    if (this.fd !== undefined) closeSync(this.fd);
    delete this.fd;
  }
}
