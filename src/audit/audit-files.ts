import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import path from 'node:path';

/**
 * Reading the audit trail's files without ever holding one whole in memory: the trail grows
 * without bound (a string over 512 MiB cannot even be made in Node), so it is read in chunks.
 */

const CHUNK = 64 * 1024;
/** A line longer than this is not one the controller wrote (entries are truncated far below it). */
const MAX_LINE_BYTES = 1024 * 1024;

/** The files of a trail in order: rotated ones (`audit.<n>.jsonl`, oldest first), then the current. */
export function trailFiles(file: string): string[] {
  const dir = path.dirname(file);
  const stem = path.basename(file).replace(/\.jsonl$/, '');
  const rotated = existsSync(dir)
    ? readdirSync(dir)
        .map((name) => ({ name, n: new RegExp(`^${escape(stem)}\\.(\\d+)\\.jsonl$`).exec(name)?.[1] }))
        .filter((x): x is { name: string; n: string } => x.n !== undefined)
        .sort((a, b) => Number(a.n) - Number(b.n))
        .map((x) => path.join(dir, x.name))
    : [];
  return existsSync(file) ? [...rotated, file] : rotated;
}

/** The last non-empty line of a file, reading only its end. */
export function tailLine(file: string): string | undefined {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    let end = size;
    let carry = Buffer.alloc(0);
    while (end > 0) {
      const start = Math.max(0, end - CHUNK);
      const buf = Buffer.alloc(end - start);
      readSync(fd, buf, 0, buf.length, start);
      carry = Buffer.concat([buf, carry]);
      end = start;
      const text = carry.toString('utf8').replace(/\n+$/, '');
      const nl = text.lastIndexOf('\n');
      if (nl >= 0) return text.slice(nl + 1);
      if (start === 0) return text || undefined;
      if (carry.length > MAX_LINE_BYTES) return undefined;
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}

export interface TrailLine {
  readonly file: string;
  /** 1-based within its file. */
  readonly line: number;
  /** undefined for a line over MAX_LINE_BYTES (skipped, not held). */
  readonly text: string | undefined;
}

/** Every non-empty line of the trail, in order, read in chunks. */
export function* auditLines(file: string): Generator<TrailLine> {
  for (const f of trailFiles(file)) yield* linesOf(f);
}

function* linesOf(file: string): Generator<TrailLine> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return; // rotated away between listing and opening
  }
  try {
    const buf = Buffer.alloc(CHUNK);
    let parts: Buffer[] = [];
    let held = 0;
    let tooLong = false;
    let line = 0;
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) {
      let from = 0;
      for (let nl = buf.indexOf(10, from); nl >= 0 && nl < n; nl = buf.indexOf(10, from)) {
        const piece = buf.subarray(from, nl);
        from = nl + 1;
        line++;
        const whole = tooLong ? undefined : Buffer.concat([...parts, piece]).toString('utf8');
        parts = [];
        held = 0;
        const wasTooLong = tooLong;
        tooLong = false;
        if (whole === '' && !wasTooLong) {
          line--; // empty lines are not entries and are not counted
          continue;
        }
        yield { file, line, text: whole };
      }
      if (from < n && !tooLong) {
        parts.push(Buffer.from(buf.subarray(from, n)));
        held += n - from;
        if (held > MAX_LINE_BYTES) {
          tooLong = true;
          parts = [];
        }
      }
    }
    if (tooLong || held > 0) yield { file, line: line + 1, text: tooLong ? undefined : Buffer.concat(parts).toString('utf8') };
  } finally {
    closeSync(fd);
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
