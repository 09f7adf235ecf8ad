import { createHash } from 'node:crypto';
import { createWriteStream, fstatSync, mkdirSync, openSync, renameSync, rmSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { auditLines, trailFiles, tailLine } from './audit-files.js';

/** One permission decision or security event. */
export interface AuditEntry {
  /** ms since the epoch. */
  readonly time: number;
  /** Who acted: a plugin id, `host`, or `operator`. */
  readonly who: string;
  /** What was attempted: `call`, `event`, `broadcast`, `hello`, `grant`, `revoke`, `violation`, `start`, `stop`, `connect`. */
  readonly action: string;
  /** What it was attempted on: `tokenizer.tokenize`, a topic, a resource. */
  readonly resource: string;
  /** `allowed`, `denied`, `granted`, `revoked`, `ready`, `stopped`, `failed`. */
  readonly result: string;
  readonly code?: string;
  readonly reason?: string;
  /** This entry stands for this many more decisions like the one before it of the same kind, within a second (see AuditThrottle). */
  readonly count?: number;
}

export type AuditSink = (entry: Omit<AuditEntry, 'time'>) => void;

export interface AuditLogOptions {
  /** Size at which the current file is rotated (default 64 MiB). */
  readonly maxBytes?: number;
  /** Rotated files kept; the oldest beyond this are removed (default 16, at least 1). */
  readonly keep?: number;
  /** Told when the trail cannot be written or rotated (a full disk): the controller logs it; recording never throws. */
  readonly onError?: (err: Error) => void;
}

/**
 * The audit trail: one JSON object per line, only ever appended (the file is opened with
 * O_APPEND), separate from the process log. Each line carries the sha256 of the line before
 * it, so a line removed or edited later breaks the chain and `logomesh audit --verify` says
 * where. At `maxBytes` the file is renamed `audit.<n>.jsonl` and a new one begun whose first
 * line chains to the last of the old, so the check covers the whole history that is kept.
 */
export class AuditLog {
  private stream: WriteStream;
  private prev: string;
  private size: number;
  private readonly maxBytes: number;
  private readonly keep: number;

  constructor(
    readonly file: string,
    opts: AuditLogOptions = {},
  ) {
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.keep = Math.max(1, opts.keep ?? 16);
    this.onError = opts.onError ?? (() => undefined);
    mkdirSync(path.dirname(file), { recursive: true });
    // Only the end of the newest file is read: the trail can be far larger than memory.
    const files = trailFiles(file);
    const last = files.length ? tailLine(files[files.length - 1]!) : undefined;
    this.prev = last ? sha256(last) : '';
    [this.stream, this.size] = this.open();
  }

  private readonly onError: (err: Error) => void;

  /** Opened at once (not when the stream gets to it), so the file exists for a rotation right after. */
  private open(): [WriteStream, number] {
    const fd = openSync(this.file, 'a', 0o600);
    const stream = createWriteStream('', { fd });
    stream.on('error', (err) => this.onError(err));
    return [stream, fstatSync(fd).size];
  }

  readonly record: AuditSink = (entry) => {
    const line = JSON.stringify({ time: Date.now(), ...entry, prev: this.prev });
    this.prev = sha256(line);
    if (this.size > 0 && this.size + line.length + 1 > this.maxBytes) {
      try {
        this.rotate();
      } catch (err) {
        // Not rotated: the line goes to the current file, and the next one tries again.
        this.onError(err as Error);
      }
    }
    this.size += Buffer.byteLength(line) + 1;
    this.stream.write(`${line}\n`);
  };

  /**
   * Rename the current file and begin a new one. Writes still queued on the old stream land
   * in the renamed file (the descriptor follows it), so the order of lines is kept.
   */
  private rotate(): void {
    const rotated = trailFiles(this.file).slice(0, -1);
    const n = rotated.length ? Number(/\.(\d+)\.jsonl$/.exec(rotated[rotated.length - 1]!)?.[1] ?? 0) + 1 : 1;
    renameSync(this.file, rotatedName(this.file, n));
    this.stream.end();
    [this.stream, this.size] = this.open();
    for (const old of [...rotated, rotatedName(this.file, n)].slice(0, -this.keep)) rmSync(old, { force: true });
  }

  /** Resolves once every entry recorded so far is in the file (a reader in the same process sees it). */
  flushed(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.writableLength === 0 || this.stream.destroyed) return resolve();
      this.stream.write('', () => resolve());
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(() => resolve()));
  }
}

function rotatedName(file: string, n: number): string {
  return file.replace(/\.jsonl$/, '') + `.${String(n).padStart(8, '0')}.jsonl`;
}

export interface AuditQuery {
  readonly plugin?: string;
  /** ms since the epoch. */
  readonly since?: number;
}

/** The entries of the whole trail (rotated files first), filtered, one at a time. */
export function* auditEntries(file: string, q: AuditQuery = {}): Generator<AuditEntry> {
  for (const l of auditLines(file)) {
    if (l.text === undefined) continue;
    let e: AuditEntry;
    try {
      e = JSON.parse(l.text) as AuditEntry;
    } catch {
      // A damaged line is reported by --verify; reading goes on past it.
      continue;
    }
    if (typeof e !== 'object' || e === null || typeof e.resource !== 'string') continue;
    if (q.since !== undefined && e.time < q.since) continue;
    if (q.plugin !== undefined && e.who !== q.plugin && !e.resource.startsWith(`${q.plugin}.`) && !e.resource.startsWith(`${q.plugin}:`) && e.resource !== q.plugin) continue;
    yield e;
  }
}

/** Read entries back, filtered; the spec's auditCapabilityUsage. */
export function readAudit(file: string, q: AuditQuery = {}): AuditEntry[] {
  return [...auditEntries(file, q)];
}

/** Where the chain breaks: a line whose `prev` is not the hash of the line before it, or a line that is not an entry. */
export interface AuditBreak {
  readonly file: string;
  /** 1-based, within `file`. */
  readonly line: number;
  readonly why: 'chain' | 'damaged';
}

export interface AuditCheck {
  readonly breaks: AuditBreak[];
  readonly lines: number;
  readonly files: readonly string[];
  /** The first kept line chains to a file removed by rotation: the check starts there. */
  readonly startsAfterRemovedFiles: boolean;
}

/** Check the hash chain across every kept file of the trail, reading it line by line. */
export function checkAudit(file: string): AuditCheck {
  const breaks: AuditBreak[] = [];
  let prev: string | undefined;
  let lines = 0;
  let startsAfterRemovedFiles = false;
  for (const l of auditLines(file)) {
    lines++;
    let e: { prev?: unknown } | undefined;
    try {
      e = l.text === undefined ? undefined : (JSON.parse(l.text) as { prev?: unknown });
    } catch {
      // Not JSON: certainly not a line the controller wrote.
    }
    if (!e || typeof e !== 'object' || typeof e.prev !== 'string') breaks.push({ file: l.file, line: l.line, why: 'damaged' });
    else if (prev === undefined) {
      // The first line kept: the start of the trail, or the line after files that rotation removed.
      if (e.prev !== '' && isRotated(l.file)) startsAfterRemovedFiles = true;
      else if (e.prev !== '') breaks.push({ file: l.file, line: l.line, why: 'chain' });
    } else if (e.prev !== prev) breaks.push({ file: l.file, line: l.line, why: 'chain' });
    prev = l.text === undefined ? 'x' : sha256(l.text);
  }
  return { breaks, lines, files: trailFiles(file), startsAfterRemovedFiles };
}

/** The 1-based line numbers of the current file where the chain breaks (see checkAudit for the whole trail). */
export function verifyAudit(file: string): number[] {
  return checkAudit(file).breaks.filter((b) => b.file === file).map((b) => b.line);
}

function isRotated(file: string): boolean {
  return /\.\d+\.jsonl$/.test(file);
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}
