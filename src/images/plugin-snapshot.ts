import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { pack } from 'tar-stream';
import { LogoMeshError } from '../errors.js';
import { compareCodeUnits, listFolder, sha256Hex, SYMLINK_PREFIX, type DigestOptions } from '../signing/digest.js';

/**
 * A compiled plugin's build context, taken once: every file of its folder read a single
 * time, hashed as a signature lists it, and packed into a tar with fixed owners, modes and
 * times. The image is built from this tar and tagged with its hash, so what was hashed (and
 * compared with the signature) is exactly what the builder compiles: a file swapped after
 * the snapshot is not in it, and a file swapped before it is in the hashes.
 */
export interface FolderSnapshot {
  /** The build context, as sent to the engine. */
  readonly tar: Buffer;
  /** sha256 (hex) of `tar`. */
  readonly sha256: string;
  /** Every file and symlink in the tar but the added ones, as a signature lists them (sha256, or `symlink:<target>`). */
  readonly files: Readonly<Record<string, string>>;
}

const FILE_MODE = 0o644;
const EPOCH = new Date(0);
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Snapshot `dir` (leaving out `exclude`, the mutable paths, and the top-level plugin.sig),
 * adding `added` files (the generated Dockerfile). Throws LM_IMAGE_BUILD for a folder over
 * the digest limits or a file that cannot be read.
 */
export async function snapshotFolder(dir: string, opts: DigestOptions & { readonly added?: readonly { name: string; text: string }[] } = {}): Promise<FolderSnapshot> {
  const fail = (found: string, expected = 'a plugin folder whose files can all be read') => new LogoMeshError('LM_IMAGE_BUILD', `${dir}: cannot take the build context: ${found}`, { file: dir, expected, found });
  const listing = listFolder(dir, opts);
  if (listing.tooLarge) throw fail(listing.tooLarge, 'a plugin folder within the digest limits');
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  const files: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries = [...listing.entries].sort((a, b) => compareCodeUnits(a.rel, b.rel));
  for (const e of entries) {
    const header = { name: e.rel, mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '' };
    if (e.kind === 'symlink') {
      files[e.rel] = SYMLINK_PREFIX + e.target;
      tar.entry({ ...header, type: 'symlink', linkname: e.target, mode: 0o777 });
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = await readOnce(e.abs, e.size);
    } catch (err) {
      throw fail(`${e.rel}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    files[e.rel] = sha256Hex(bytes);
    tar.entry({ ...header, type: 'file', mode: FILE_MODE }, bytes);
  }
  for (const a of opts.added ?? []) tar.entry({ name: a.name, mtime: EPOCH, uid: 0, gid: 0, mode: FILE_MODE, type: 'file' }, a.text);
  tar.finalize();
  await ended;
  const bytes = Buffer.concat(chunks);
  return { tar: bytes, sha256: createHash('sha256').update(bytes).digest('hex'), files };
}

/** A regular file's bytes, read once without following a symlink, at most `size` + 1 of them. */
async function readOnce(file: string, size: number): Promise<Buffer> {
  const handle = await open(file, OPEN_FLAGS);
  try {
    if (!(await handle.stat()).isFile()) throw Object.assign(new Error('replaced by a special file'), { code: 'not a regular file' });
    const buf = Buffer.allocUnsafe(size + 1);
    let length = 0;
    while (length < buf.length) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buf.subarray(0, length);
  } finally {
    await handle.close();
  }
}

/**
 * The differences between a snapshot's files and the ones a verified signature lists:
 * empty when the snapshot is exactly what was verified.
 */
export function snapshotDifferences(snapshot: FolderSnapshot, signed: Readonly<Record<string, string>>): string[] {
  const has = (o: Readonly<Record<string, string>>, k: string) => Object.prototype.hasOwnProperty.call(o, k);
  const out: string[] = [];
  for (const k of Object.keys(snapshot.files)) {
    if (!has(signed, k)) out.push(`${k} added`);
    else if (signed[k] !== snapshot.files[k]) out.push(`${k} changed`);
  }
  for (const k of Object.keys(signed)) if (!has(snapshot.files, k)) out.push(`${k} removed`);
  return out.sort(compareCodeUnits);
}
