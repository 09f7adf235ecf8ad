import { createHash, type Hash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Docker } from '../engine/docker.js';
import { baseImageIds } from './engine-images.js';
import { cachedHash, defaultInputsCache, fingerprint, keepHash, type InputsCache } from './inputs-cache.js';

/**
 * Extra files up to this size are hashed by their bytes, like the context; larger ones (a
 * Node.js binary) by size and mtime, since reading them on every run would cost more than a
 * build check should. Small ones must not depend on mtime: the controller's image (compose)
 * holds images/ and node_modules/ with whole seconds of it only, and would otherwise
 * disagree with the host about which runtime images are current.
 */
const EXTRA_CONTENT_HASH_MAX = 1024 * 1024;

/**
 * sha256 over the relative path and bytes of every context file, the bytes of each small
 * extra file and the size and mtime of each large one, and the ids of the images the
 * Dockerfile builds FROM. Kept in `cache` (inputs-cache.ts) beside a fingerprint of all of
 * these, and computed again only when the fingerprint changed; `cache` null: always computed.
 */
export async function contextHash(
  docker: Docker,
  contextDir: string,
  extra: Readonly<Record<string, string>>,
  dockerfileText: string,
  generatedName?: string,
  cache: InputsCache | null = defaultInputsCache(),
): Promise<string> {
  // The base images' ids come from the engine: asked first, so the files are looked at meanwhile.
  const bases = baseImageIds(docker, dockerfileText, path.join(contextDir, generatedName ?? 'Dockerfile'));
  bases.catch(() => undefined); // awaited below; not an unhandled rejection while the files are read
  const id = JSON.stringify([contextDir, extra, generatedName ?? null]);
  const rest = async () => `${generatedName ?? ''}\0${dockerfileText}\0${(await bases).map(([b, i]) => `${b}=${i}`).join('\0')}`;
  if (!cache) return computeHash(contextDir, extra, dockerfileText, generatedName, await bases);
  const before = fingerprint(contextDir, extra, await rest());
  const kept = cachedHash(cache, id, before);
  if (kept) return kept;
  const computedAt = Date.now();
  const hash = computeHash(contextDir, extra, dockerfileText, generatedName, await bases);
  keepHash(cache, id, before, fingerprint(contextDir, extra, await rest()), hash, computedAt);
  return hash;
}

function computeHash(contextDir: string, extra: Readonly<Record<string, string>>, dockerfileText: string, generatedName: string | undefined, bases: [string, string][]): string {
  const hash = createHash('sha256');
  for (const rel of listFiles(contextDir)) {
    hash.update(`${rel}\0`);
    hash.update(readFileSync(path.join(contextDir, rel)));
    hash.update('\0');
  }
  for (const [name, hostPath] of Object.entries(extra).sort(([a], [b]) => a.localeCompare(b))) {
    for (const rel of statSync(hostPath).isDirectory() ? listFiles(hostPath) : ['']) {
      const file = rel ? path.join(hostPath, rel) : hostPath;
      const st = statSync(file);
      if (st.size <= EXTRA_CONTENT_HASH_MAX) hash.update(Buffer.concat([Buffer.from(`extra:${name}/${rel}\0`), readFileSync(file), Buffer.from('\0')]));
      else hash.update(`extra:${name}/${rel}\0${st.size}\0${st.mtimeMs}\0`);
    }
  }
  if (generatedName) hash.update(`${generatedName}\0${dockerfileText}\0`);
  for (const [base, id] of bases) hash.update(`${base}=${id}\0`);
  return hash.digest('hex');
}

/**
 * A compiled plugin's inputs: the sha256 of its snapshot's tar (which holds the generated
 * Dockerfile) and the ids of the images that Dockerfile builds FROM (`dockerfile`, the
 * path named in errors).
 */
export async function snapshotHash(docker: Docker, tarSha256: string, dockerfileText: string, dockerfile: string): Promise<string> {
  const hash = createHash('sha256').update(`tar\0${tarSha256}\0`);
  await addBaseImages(hash, docker, dockerfileText, dockerfile);
  return hash.digest('hex');
}

async function addBaseImages(hash: Hash, docker: Docker, dockerfileText: string, file: string): Promise<void> {
  for (const [base, id] of await baseImageIds(docker, dockerfileText, file)) hash.update(`${base}=${id}\0`);
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}
