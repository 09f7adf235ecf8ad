import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, realpathSync, type Stats } from 'node:fs';
import path from 'node:path';

/**
 * Reading a file an untrusted author controls (a manifest, plugin.sig) or an operator names
 * (a policy, a trusted key) without letting its kind hang, flood or fool the reader: only a
 * regular file is ever opened, its real path is checked before the open, the open itself
 * follows no symlink and never blocks, the descriptor is checked to be the file that was
 * checked, and the read stops one byte past the limit whatever `stat` said.
 */

export interface ReadFileOptions {
  /** Refuse a file holding more than this many bytes. */
  readonly maxBytes: number;
  /**
   * Real absolute folder the file must be inside once every symlink is resolved (the
   * plugin folder). Absent: the file may be anywhere.
   */
  readonly within?: string;
  /** Refuse a symlink as the file itself (a symlinked folder above it is still followed). */
  readonly noSymlink?: boolean;
  /**
   * Called with the real path after every check and before the open. A test hook: it makes
   * the window between check and use deterministic (a test swaps or grows the file there).
   */
  readonly afterCheck?: (real: string) => void;
}

export type ReadFailure = 'missing' | 'symlink' | 'outside' | 'not-regular' | 'too-large' | 'unreadable' | 'changed';

export type ReadResult =
  | {
      readonly ok: true;
      readonly bytes: Buffer;
      /** Real absolute path that was read. */
      readonly real: string;
      /** The opened file's identity and link count, from fstat. */
      readonly dev: number;
      readonly ino: number;
      readonly nlink: number;
    }
  | { readonly ok: false; readonly failure: ReadFailure; readonly expected: string; readonly found: string };

// O_NONBLOCK: a FIFO opens at once instead of waiting for a writer. O_NOCTTY: opening a tty
// never makes it the controller's terminal. Both are absent (0) where the platform lacks them.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);
const CHUNK = 64 * 1024;

/** Read `file` whole if it is a regular file that satisfies `options`; never throws. */
export function readRegularFile(file: string, options: ReadFileOptions): ReadResult {
  const { maxBytes } = options;
  const regular = `a regular file of at most ${maxBytes} bytes`;
  const fail = (failure: ReadFailure, found: string, expected = regular): ReadResult => ({ ok: false, failure, expected, found });

  const first = lstatOf(file);
  if ('errno' in first) return first.errno === 'ENOENT' ? fail('missing', 'nothing') : fail('unreadable', `it cannot be examined (${first.errno})`);
  if (first.st.isSymbolicLink() && options.noSymlink) return fail('symlink', `a symlink (to ${linkTarget(file)})`, `${regular}, not a symlink`);

  let real: string;
  try {
    real = realpathSync(file);
  } catch (err) {
    const code = errnoOf(err);
    return code === 'ENOENT' ? fail('missing', `a dangling symlink (to ${linkTarget(file)})`) : fail('unreadable', `a path that does not resolve (${code})`);
  }
  if (options.within !== undefined && !isInside(real, options.within)) {
    return fail('outside', `a symlink to ${real}, outside ${options.within}`, `${regular} inside ${options.within}`);
  }
  // Checked before any open: opening a device or a FIFO can itself have effects or block.
  const target = lstatOf(real);
  if ('errno' in target) return fail('unreadable', `it cannot be examined (${target.errno})`);
  if (!target.st.isFile()) return fail('not-regular', `${describeKind(target.st)}${real === file ? '' : ` (${real})`}`);
  if (target.st.size > maxBytes) return fail('too-large', `${target.st.size} bytes`);

  options.afterCheck?.(real);
  let fd: number;
  try {
    fd = openSync(real, OPEN_FLAGS);
  } catch (err) {
    return fail('unreadable', `a file that cannot be opened (${errnoOf(err)})`);
  }
  try {
    const st = fstatSync(fd);
    // Swapped between the check and the open: refuse rather than read something unchecked.
    if (!st.isFile() || st.dev !== target.st.dev || st.ino !== target.st.ino) return fail('changed', 'a file that was replaced while it was being opened');
    const opened = openedPath(fd);
    if (opened !== undefined && options.within !== undefined && !isInside(opened, options.within)) {
      return fail('changed', `a file that resolved to ${opened} once opened`);
    }
    const bytes = readAtMost(fd, maxBytes + 1, st.size);
    if (bytes.length > maxBytes) return fail('too-large', `more than ${maxBytes} bytes (stat said ${st.size})`);
    return { ok: true, bytes, real, dev: st.dev, ino: st.ino, nlink: st.nlink };
  } catch (err) {
    return fail('unreadable', `a file that cannot be read (${errnoOf(err)})`);
  } finally {
    closeSync(fd);
  }
}

/** Read until end of file or `limit` bytes, whichever comes first. */
function readAtMost(fd: number, limit: number, sizeHint: number): Buffer {
  let buf = Buffer.allocUnsafe(Math.min(limit, Math.max(sizeHint + 1, CHUNK)));
  let length = 0;
  while (length < limit) {
    if (length === buf.length) {
      const bigger = Buffer.allocUnsafe(Math.min(limit, buf.length * 2));
      buf.copy(bigger, 0, 0, length);
      buf = bigger;
    }
    const n = readSync(fd, buf, length, buf.length - length, null);
    if (n === 0) break;
    length += n;
  }
  return buf.subarray(0, length);
}

/** "a folder", "a FIFO", ...: what a person calls the kind of file `st` describes. */
export function describeKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a Unix socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSymbolicLink()) return 'a symlink';
  return 'a special file';
}

export function isInside(file: string, dir: string): boolean {
  return file === dir || file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
}

function lstatOf(file: string): { st: Stats } | { errno: string } {
  try {
    return { st: lstatSync(file) };
  } catch (err) {
    return { errno: errnoOf(err) };
  }
}

/** Where the kernel says the descriptor points (Linux); undefined where /proc is absent. */
function openedPath(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

function linkTarget(file: string): string {
  try {
    return readlinkSync(file);
  } catch {
    return '?';
  }
}

function errnoOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The bytes as UTF-8 text, a leading byte-order mark dropped; invalid UTF-8 is refused
 * rather than replaced, so the text parsed is the only reading of the bytes.
 */
export function decodeUtf8(bytes: Uint8Array): { ok: true; text: string } | { ok: false; found: string } {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return { ok: false, found: 'UTF-16 text (a UTF-16 byte-order mark)' };
  }
  try {
    return { ok: true, text: utf8.decode(bytes) };
  } catch {
    return { ok: false, found: `bytes that are not UTF-8 (first at byte ${firstInvalidUtf8(bytes)})` };
  }
}

/** Offset of the first byte that starts no valid UTF-8 sequence (for the message only). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let lo = 0;
  let hi = bytes.length;
  // The longest valid prefix, by bisection; in stream mode a character cut at the end of a
  // prefix is not an error, so validity only ever goes from true to false as it grows.
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  if (lo < bytes.length) return lo;
  // Valid but for a character cut off at the end: the offset where that character starts.
  let start = bytes.length - 1;
  while (start > 0 && ((bytes[start] ?? 0) & 0xc0) === 0x80) start--;
  return start;
}
