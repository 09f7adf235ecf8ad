import { closeSync, openSync, readSync } from 'node:fs';

/**
 * A kernel file kept open and read again from offset 0 (pread) each time: a fifth to a
 * quarter of the cost of opening and closing it per sample (docs/monitoring.md#measured).
 * One shared buffer: the cgroup files the monitor reads are small, and reads are synchronous.
 */
const BUFFER = Buffer.alloc(64 * 1024);

export class OpenFile {
  private fd: number | undefined;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
  }

  /** The file's text now. Throws (ENOENT, ENODEV) once the cgroup is gone. */
  read(): string {
    if (this.fd === undefined) throw Object.assign(new Error(`${this.path}: closed`), { code: 'EBADF' });
    const n = readSync(this.fd, BUFFER, 0, BUFFER.length, 0);
    return BUFFER.toString('latin1', 0, n);
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch {
      // Already gone with its cgroup: nothing to release.
    }
  }
}

/** Open `path` if it exists; undefined if not (a controller or kernel version without it). */
export function openIfPresent(path: string): OpenFile | undefined {
  try {
    return new OpenFile(path);
  } catch {
    return undefined;
  }
}

/** `key value` lines (memory.stat, cpu.stat, pids.events, memory.events, oom_control) as numbers. */
export function keyValues(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp <= 0) continue;
    const v = Number(line.slice(sp + 1));
    if (Number.isFinite(v)) out.set(line.slice(0, sp), v);
  }
  return out;
}

/** A file holding one number, or `max` (no limit: Infinity). */
export function single(text: string): number {
  const t = text.trim();
  return t === 'max' ? Infinity : Number(t);
}

/** A PSI file's `some` and `full` lines: avg10 in percent, total stall in microseconds. */
export interface Pressure {
  readonly some: { avg10: number; total: number };
  readonly full: { avg10: number; total: number };
}

export function pressure(text: string): Pressure {
  const line = (name: string) => {
    const m = new RegExp(`^${name} avg10=([0-9.]+) avg60=[0-9.]+ avg300=[0-9.]+ total=([0-9]+)`, 'm').exec(text);
    return { avg10: m ? Number(m[1]) : 0, total: m ? Number(m[2]) : 0 };
  };
  return { some: line('some'), full: line('full') };
}

/** Bytes read and written: v1 blkio.throttle.io_service_bytes (`<dev> Read <n>`) or v2 io.stat (`<dev> rbytes=<n> wbytes=<n> ...`). */
export function ioBytes(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    const v1 = /^\d+:\d+ (Read|Write) (\d+)$/.exec(line);
    if (v1) {
      if (v1[1] === 'Read') read += Number(v1[2]);
      else write += Number(v1[2]);
      continue;
    }
    const r = /\brbytes=(\d+)/.exec(line);
    const w = /\bwbytes=(\d+)/.exec(line);
    if (r) read += Number(r[1]);
    if (w) write += Number(w[1]);
  }
  return { read, write };
}
