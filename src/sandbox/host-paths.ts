import { closeSync, constants, fstatSync, openSync, readlinkSync, type Stats } from 'node:fs';
import path from 'node:path';

/**
 * Host paths opened by the controller itself, one component at a time and never through a
 * symlink, so that what is checked and what is later mounted (from the descriptor, see
 * mount-staging.ts) are the same file or folder, whatever is renamed or swapped meanwhile.
 * Node has no openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH): `/proc/self/fd/<dir>/<name>`
 * with O_PATH | O_NOFOLLOW is openat(dir, name) for a single name, and a walk of single
 * names from a held folder cannot leave it ('..' is refused, symlinks are never followed).
 */

/** O_PATH (Linux, the same value on x86-64 and arm64): a handle that opens nothing, so a FIFO cannot block it. */
const O_PATH = 0o10000000;

/** A file or folder the controller holds open. `close()` is idempotent. */
export interface HeldPath {
  readonly fd: number;
  /** The path it was opened by (for messages; the descriptor is what counts). */
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
  readonly isDirectory: boolean;
  close(): void;
}

/** Why a path could not be held: what was expected and what was found, and where. */
export class PathChangedError extends Error {
  constructor(
    /** The path as asked for. */
    readonly requested: string,
    /** The component where the walk stopped. */
    readonly at: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`${requested}: expected ${expected} at ${at}, found ${found}`);
    this.name = 'PathChangedError';
  }
}

function held(fd: number, p: string, st: Stats): HeldPath {
  let open = true;
  return {
    fd,
    path: p,
    dev: st.dev,
    ino: st.ino,
    isDirectory: st.isDirectory(),
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

function kindOf(st: Stats, at: string): string {
  if (st.isSymbolicLink()) {
    let target = '?';
    try {
      target = readlinkSync(at); // for the message only: the link itself was never followed
    } catch {
      // gone again
    }
    return `a symlink (to ${target})`;
  }
  if (st.isDirectory()) return 'a folder';
  if (st.isFile()) return 'a regular file';
  return 'a special file';
}

/**
 * Walk `names` down from the folder `fromFd` (not closed) refusing every symlink, and hold
 * the last one. Every component but the last must be a folder; the last must be `want`.
 */
function walk(fromFd: number, fromPath: string, names: readonly string[], requested: string, want: 'directory' | 'file' | 'any'): HeldPath {
  let fd = fromFd;
  let at = fromPath;
  try {
    for (const [i, name] of names.entries()) {
      if (name === '..' || name.includes('/') || name === '') throw new PathChangedError(requested, at, 'a path of plain names below it', JSON.stringify(name));
      const next = openSync(`/proc/self/fd/${fd}/${name}`, O_PATH | constants.O_NOFOLLOW);
      if (fd !== fromFd) closeSync(fd);
      fd = next;
      at = path.join(at, name);
      const st = fstatSync(fd);
      const last = i === names.length - 1;
      const ok = last ? (want === 'directory' ? st.isDirectory() : want === 'file' ? st.isFile() : st.isDirectory() || st.isFile()) : st.isDirectory();
      if (!ok) throw new PathChangedError(requested, at, last ? (want === 'file' ? 'a regular file' : want === 'directory' ? 'a folder' : 'a folder or regular file') : 'a folder, not a symlink', kindOf(st, at));
    }
    if (fd === fromFd) fd = openSync(`/proc/self/fd/${fromFd}`, O_PATH | constants.O_DIRECTORY);
    return held(fd, at, fstatSync(fd));
  } catch (err) {
    if (fd !== fromFd) closeSync(fd);
    if (err instanceof PathChangedError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new PathChangedError(requested, at, 'an existing folder or file', `nothing it can open (${code})`);
  }
}

/**
 * Hold an absolute path whose every component is a real folder (or, last, a file): the
 * real path a manifest or a grant was resolved to. A symlink anywhere on it now is refused
 * (PathChangedError), not followed.
 */
export function holdRealPath(absPath: string, want: 'directory' | 'file' | 'any' = 'any'): HeldPath {
  if (!path.isAbsolute(absPath)) throw new PathChangedError(absPath, absPath, 'an absolute path', 'a relative one');
  const root = openSync('/', O_PATH | constants.O_DIRECTORY);
  try {
    return walk(root, '/', absPath.split('/').filter(Boolean), absPath, want);
  } finally {
    closeSync(root);
  }
}

/** Hold `relative` (a real relative path, no symlinks, no '..') below the held folder `dir`. */
export function holdBeneath(dir: HeldPath, relative: string, want: 'directory' | 'file' | 'any' = 'any'): HeldPath {
  const names = relative === '.' ? [] : relative.split('/').filter(Boolean);
  return walk(dir.fd, dir.path, names, path.join(dir.path, relative), want);
}
