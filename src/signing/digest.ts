import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';

/** The signature file, at the top of the plugin folder; the one file a signature does not cover. */
export const SIGNATURE_FILE = 'plugin.sig';
/** How a symlink is recorded in a file list: this prefix and the link's target, never followed. */
export const SYMLINK_PREFIX = 'symlink:';

/**
 * The most a folder digest reads (mutable paths left out): a plugin folder is code and its
 * data, and hashing more would hold a start (and under `sign` the signer) for long.
 */
export const MAX_DIGEST_BYTES = 1024 * 1024 * 1024;
/** The most files and folders a digest lists. */
export const MAX_DIGEST_ENTRIES = 100_000;

/** Plugin-relative path (`/`-separated) to the sha256 (hex) of a file, or `symlink:<target>`. */
export type FileList = Readonly<Record<string, string>>;

export interface FolderDigest {
  /** Every regular file and symlink, sorted by path; a null-prototype object. */
  readonly files: FileList;
  /** Entries that cannot be signed: special files (FIFO, socket, device) and names that are not UTF-8. */
  readonly unsignable: readonly string[];
  /** Why the folder was not hashed whole (over MAX_DIGEST_BYTES or MAX_DIGEST_ENTRIES); then `files` is empty. */
  readonly tooLarge?: string;
}

export interface DigestOptions {
  /**
   * Plugin-relative paths (files or folders) left out with everything below them: the
   * mutable paths, which the plugin writes (its write grants inside its folder).
   */
  readonly exclude?: readonly string[];
  /** Default MAX_DIGEST_BYTES. */
  readonly maxBytes?: number;
  /** Default MAX_DIGEST_ENTRIES. */
  readonly maxEntries?: number;
}

/** One entry found by the listing, before any file is read. */
export type Listed = { readonly rel: string; readonly abs: string } & ({ readonly kind: 'file'; readonly size: number } | { readonly kind: 'symlink'; readonly target: string });

export interface Listing {
  readonly entries: readonly Listed[];
  readonly unsignable: readonly string[];
  readonly tooLarge?: string;
}

/**
 * List every entry under `pluginDir` (never following a symlink, leaving out the top-level
 * plugin.sig and the excluded paths), with the sizes of regular files. Cheap: no file is
 * read. Stops early, with `tooLarge`, past the entry or byte limits.
 */
export function listFolder(pluginDir: string, opts: DigestOptions = {}): Listing {
  const exclude = new Set((opts.exclude ?? []).map((p) => p.split(path.sep).join('/')));
  const maxBytes = opts.maxBytes ?? MAX_DIGEST_BYTES;
  const maxEntries = opts.maxEntries ?? MAX_DIGEST_ENTRIES;
  const entries: Listed[] = [];
  const unsignable: string[] = [];
  let bytes = 0;
  let seen = 0;
  let tooLarge: string | undefined;
  const walk = (abs: string, rel: string): void => {
    for (const raw of readdirSync(abs, { encoding: 'buffer' })) {
      if (tooLarge) return;
      const name = raw.toString('utf8');
      const relPath = rel ? `${rel}/${name}` : name;
      if (!Buffer.from(name, 'utf8').equals(raw)) {
        unsignable.push(`${rel ? `${rel}/` : ''}${JSON.stringify(name)} (a name that is not valid UTF-8)`);
        continue;
      }
      if (relPath === SIGNATURE_FILE || exclude.has(relPath)) continue;
      if (++seen > maxEntries) {
        tooLarge = `more than ${maxEntries} files and folders`;
        return;
      }
      const at = path.join(abs, name);
      const st = lstatSync(at);
      if (st.isSymbolicLink()) entries.push({ rel: relPath, abs: at, kind: 'symlink', target: readlinkSync(at, 'utf8') });
      else if (st.isDirectory()) walk(at, relPath);
      else if (st.isFile()) {
        bytes += st.size;
        if (bytes > maxBytes) {
          tooLarge = `more than ${maxBytes} bytes in its files`;
          return;
        }
        entries.push({ rel: relPath, abs: at, kind: 'file', size: st.size });
      } else unsignable.push(`${relPath} (${kindOf(st)})`);
    }
  };
  walk(pluginDir, '');
  return { entries, unsignable, ...(tooLarge ? { tooLarge } : {}) };
}

function sorted(found: Map<string, string>): FileList {
  const files: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const key of [...found.keys()].sort(compareCodeUnits)) files[key] = found.get(key)!;
  return files;
}

/**
 * List every file under `pluginDir` with its sha256, for signing and verifying. Folders are
 * walked (their names are in the file paths), symlinks are recorded by their target and not
 * followed, the top-level plugin.sig and the excluded (mutable) paths are left out. Special
 * files cannot be signed: they are reported in `unsignable`, for the caller to refuse.
 * Synchronous: for `sign` and for a plugin's first load, before anything of it is served.
 */
export function digestFolder(pluginDir: string, opts: DigestOptions = {}): FolderDigest {
  const listing = listFolder(pluginDir, opts);
  if (listing.tooLarge) return { files: sorted(new Map()), unsignable: listing.unsignable, tooLarge: listing.tooLarge };
  const found = new Map<string, string>();
  const unsignable = [...listing.unsignable];
  for (const e of listing.entries) {
    if (e.kind === 'symlink') found.set(e.rel, SYMLINK_PREFIX + e.target);
    else {
      const hash = hashRegularFile(e.abs, e.size);
      if (hash === undefined) unsignable.push(`${e.rel} (replaced by a special file while it was read)`);
      else found.set(e.rel, hash);
    }
  }
  return { files: sorted(found), unsignable };
}

/**
 * digestFolder, with the files read and hashed a chunk at a time between turns of the
 * event loop: re-verifying a plugin before a restart never holds the hub, whatever its
 * size (up to the limits). The listing itself is synchronous and bounded by maxEntries.
 */
export async function digestFolderAsync(pluginDir: string, opts: DigestOptions = {}): Promise<FolderDigest> {
  const listing = listFolder(pluginDir, opts);
  if (listing.tooLarge) return { files: sorted(new Map()), unsignable: listing.unsignable, tooLarge: listing.tooLarge };
  const found = new Map<string, string>();
  const unsignable = [...listing.unsignable];
  for (const e of listing.entries) {
    if (e.kind === 'symlink') found.set(e.rel, SYMLINK_PREFIX + e.target);
    else {
      const hash = await hashRegularFileAsync(e.abs, e.size);
      if (hash === undefined) unsignable.push(`${e.rel} (replaced by a special file while it was read)`);
      else found.set(e.rel, hash);
    }
  }
  return { files: sorted(found), unsignable };
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const CHUNK = 1 << 20;

/**
 * sha256 of a regular file, read without following a symlink and without blocking on a FIFO
 * that replaced it since it was listed (then `undefined`). At most `size` + 1 bytes are
 * read: a file that grew since it was listed hashes differently anyway, and a file growing
 * without end cannot hold the reader.
 */
function hashRegularFile(file: string, size: number): string | undefined {
  const fd = openSync(file, OPEN_FLAGS);
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, size + 1));
    let left = size + 1;
    for (let n = readSync(fd, buf, 0, Math.min(buf.length, left), null); n > 0; n = readSync(fd, buf, 0, Math.min(buf.length, left), null)) {
      hash.update(buf.subarray(0, n));
      left -= n;
      if (left <= 0) break;
    }
    return hash.digest('hex');
  } finally {
    closeSync(fd);
  }
}

async function hashRegularFileAsync(file: string, size: number): Promise<string | undefined> {
  const handle = await open(file, OPEN_FLAGS);
  try {
    if (!(await handle.stat()).isFile()) return undefined;
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, size + 1));
    let left = size + 1;
    while (left > 0) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, left), null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      left -= bytesRead;
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}

/** sha256 (hex) of bytes: what a file list records for a regular file. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function kindOf(st: Stats): string {
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
