import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_DIR } from '../paths.js';

/**
 * The inputs hash of an image's build context, kept from one process to the next: reading
 * and hashing the context took about 10 ms of every `logomesh run`, most of it the first
 * `localeCompare` (ICU's collator starting) that orders its files. What is kept is the hash
 * beside a fingerprint of everything it was computed from: each file's path, device, inode,
 * size, modification and change times (nanoseconds), the names in each folder, the base
 * images' ids and the Dockerfile's text. Any write to a file sets its change time to the
 * time of the write, which no process can set back; a file replaced by a rename has another
 * inode; a file added or removed changes a folder's names. So a file changed since the hash
 * was computed changes the fingerprint, and the hash is computed again.
 *
 * The one gap is a write in the same clock tick as the hash's own reading (the kernel's file
 * times are coarse): a file changed within RECENT_MS before the hash is computed makes it
 * not kept, so the next run computes it again (as git treats "racily clean" files).
 */
const RECENT_MS = 2_000;

/** One fingerprint per context (a file named by the context's own key), overwritten when the context changes. */
export interface InputsCache {
  readonly dir: string;
}

/** Where the hashes are kept: LOGOMESH_CACHE_DIR, else the installation's node_modules cache (as cgwatch's binaries). */
export function defaultInputsCache(env: NodeJS.ProcessEnv = process.env): InputsCache {
  const root = env.LOGOMESH_CACHE_DIR ? path.resolve(env.LOGOMESH_CACHE_DIR) : path.join(REPO_DIR, 'node_modules', '.cache', 'logomesh');
  return { dir: path.join(root, 'inputs-hash') };
}

/** What a context's hash was computed from, and the newest change time among its files. */
export interface Fingerprint {
  readonly text: string;
  readonly newestChangeMs: number;
}

/**
 * The fingerprint of `contextDir` (every regular file under it, as the hash reads them) and
 * of each extra (a file, or a folder's regular files), with `rest` (the base images' ids,
 * the Dockerfile) appended. Ordered by code points: no collator.
 */
export function fingerprint(contextDir: string, extra: Readonly<Record<string, string>>, rest: string): Fingerprint {
  const lines: string[] = [];
  let newest = 0;
  const add = (label: string, file: string) => {
    const st = statSync(file, { bigint: true });
    lines.push(`${label}\0${st.dev}\0${st.ino}\0${st.size}\0${st.mtimeNs}\0${st.ctimeNs}`);
    newest = Math.max(newest, Number(st.mtimeMs), Number(st.ctimeMs));
  };
  const walk = (label: string, dir: string) => {
    add(`${label}/`, dir);
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    lines.push(`${label}/\0${entries.map((e) => `${e.name}:${e.isDirectory() ? 'd' : e.isFile() ? 'f' : 'o'}`).join('/')}`);
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(`${label}/${e.name}`, full);
      else if (e.isFile()) add(`${label}/${e.name}`, full);
    }
  };
  walk('context', contextDir);
  for (const name of Object.keys(extra).sort()) {
    const hostPath = extra[name]!;
    if (statSync(hostPath).isDirectory()) walk(`extra:${name}`, hostPath);
    else add(`extra:${name}`, hostPath);
  }
  lines.push(rest);
  return { text: lines.join('\n'), newestChangeMs: newest };
}

/** The file that holds the hash of the context named by `id` (its folder, extras and generated Dockerfile's name). */
function entryFile(cache: InputsCache, id: string): string {
  return path.join(cache.dir, createHash('sha256').update(id).digest('hex').slice(0, 32));
}

/** The hash kept for this context when its fingerprint is still `fp`; undefined otherwise. */
export function cachedHash(cache: InputsCache, id: string, fp: Fingerprint): string | undefined {
  let text: string;
  try {
    text = readFileSync(entryFile(cache, id), 'utf8');
  } catch {
    return undefined;
  }
  const newline = text.indexOf('\n');
  const hash = text.slice(0, newline);
  return /^[0-9a-f]{64}$/.test(hash) && text.slice(newline + 1) === fp.text ? hash : undefined;
}

/**
 * Keep `hash` for the context, unless a file of it changed within RECENT_MS of `computedAt`
 * (when its reading began), or the fingerprint moved while it was computed. Where the cache
 * cannot be written (a read-only install), nothing is kept: each run hashes, as before.
 */
export function keepHash(cache: InputsCache, id: string, before: Fingerprint, after: Fingerprint, hash: string, computedAt: number): void {
  if (before.text !== after.text || after.newestChangeMs >= computedAt - RECENT_MS) return;
  const file = entryFile(cache, id);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(cache.dir, { recursive: true });
    writeFileSync(tmp, `${hash}\n${after.text}`, { mode: 0o644 });
    renameSync(tmp, file);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // never written
    }
  }
}
