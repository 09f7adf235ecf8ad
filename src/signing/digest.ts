import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync } from 'node:fs';
import path from 'node:path';

/** The signature file, at the top of the plugin folder; the one file a signature does not cover. */
export const SIGNATURE_FILE = 'plugin.sig';
/** How a symlink is recorded in a file list: this prefix and the link's target, never followed. */
export const SYMLINK_PREFIX = 'symlink:';

/** Plugin-relative path (`/`-separated) to the sha256 (hex) of a file, or `symlink:<target>`. */
export type FileList = Readonly<Record<string, string>>;

export interface FolderDigest {
  /** Every regular file and symlink, sorted by path; a null-prototype object. */
  readonly files: FileList;
  /** Entries that cannot be signed: special files (FIFO, socket, device) and names that are not UTF-8. */
  readonly unsignable: readonly string[];
}

/**
 * List every file under `pluginDir` with its sha256, for signing and verifying. Folders are
 * walked (their names are in the file paths), symlinks are recorded by their target and not
 * followed, and the top-level plugin.sig is left out. Special files cannot be signed: they
 * are reported in `unsignable`, for the caller to refuse.
 */
export function digestFolder(pluginDir: string): FolderDigest {
  const found = new Map<string, string>();
  const unsignable: string[] = [];
  const walk = (abs: string, rel: string): void => {
    for (const raw of readdirSync(abs, { encoding: 'buffer' })) {
      const name = raw.toString('utf8');
      const relPath = rel ? `${rel}/${name}` : name;
      if (!Buffer.from(name, 'utf8').equals(raw)) {
        unsignable.push(`${rel ? `${rel}/` : ''}${JSON.stringify(name)} (a name that is not valid UTF-8)`);
        continue;
      }
      if (relPath === SIGNATURE_FILE) continue;
      const at = path.join(abs, name);
      const st = lstatSync(at);
      if (st.isSymbolicLink()) found.set(relPath, SYMLINK_PREFIX + readlinkSync(at, 'utf8'));
      else if (st.isDirectory()) walk(at, relPath);
      else if (st.isFile()) {
        const hash = hashRegularFile(at);
        if (hash === undefined) unsignable.push(`${relPath} (replaced by a special file while it was read)`);
        else found.set(relPath, hash);
      } else unsignable.push(`${relPath} (${kindOf(st)})`);
    }
  };
  walk(pluginDir, '');
  const files: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const key of [...found.keys()].sort(compareCodeUnits)) files[key] = found.get(key)!;
  return { files, unsignable };
}

/**
 * sha256 of a regular file, read without following a symlink and without blocking on a FIFO
 * that replaced it since it was listed (then `undefined`).
 */
function hashRegularFile(file: string): string | undefined {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 16);
    for (let n = readSync(fd, buf); n > 0; n = readSync(fd, buf)) hash.update(buf.subarray(0, n));
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

function kindOf(st: ReturnType<typeof lstatSync>): string {
  if (!st) return 'gone';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file, folder or symlink';
}

/** Order of strings by UTF-16 code units, as JavaScript's default sort and RFC 8785 use. */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Canonical JSON (RFC 8785 for the values used here: objects, arrays, strings, integers):
 * keys sorted by UTF-16 code units, no whitespace.
 */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => compareCodeUnits(a, b));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** What changed between the signed file list and the folder now, each sorted by path. */
export interface FileChanges {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly changed: readonly string[];
}

export function compareFiles(signed: FileList, now: FileList): FileChanges {
  const has = (o: FileList, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  const added = Object.keys(now).filter((k) => !has(signed, k));
  const removed = Object.keys(signed).filter((k) => !has(now, k));
  const changed = Object.keys(now).filter((k) => has(signed, k) && signed[k] !== now[k]);
  return { added: added.sort(compareCodeUnits), removed: removed.sort(compareCodeUnits), changed: changed.sort(compareCodeUnits) };
}
