import { execFile } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { Docker } from '../engine/docker.js';
import { ensureImage } from '../images/build.js';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { IMAGES_DIR, REPO_DIR } from '../paths.js';

const run = promisify(execFile);

export const CGWATCH_TAG = 'logomesh/cgwatch:latest';
/** An operator's own build of images/cgwatch/cgwatch.c (a controller in a container, a host without the engine's build). */
export const CGWATCH_ENV = 'LOGOMESH_CGWATCH';
const CACHE = path.join(REPO_DIR, 'node_modules', '.cache', 'logomesh');

/**
 * The path of the cgwatch binary: LOGOMESH_CGWATCH if set, else the one built from
 * images/cgwatch (a static binary on an empty image, built like the runtime images and
 * rebuilt when its source changes) and copied out of the image into a cache folder named by
 * the image's inputs hash. No container is created: the binary comes out of `docker save`.
 */
export async function cgwatchBinary(docker: Docker, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const own = env[CGWATCH_ENV];
  if (own) {
    if (!existsSync(own)) throw unavailable(`${CGWATCH_ENV} names ${own}, which does not exist`, own);
    return own;
  }
  let image;
  try {
    image = await ensureImage(docker, { tag: CGWATCH_TAG, contextDir: path.join(IMAGES_DIR, 'cgwatch') }, { log });
  } catch (err) {
    throw unavailable(`cannot build the cgwatch helper image: ${(err as Error).message}`, path.join(IMAGES_DIR, 'cgwatch', 'Dockerfile'), err);
  }
  const binary = path.join(CACHE, `cgwatch-${image.inputsHash.slice(0, 16)}`, 'cgwatch');
  if (existsSync(binary)) return binary;
  mkdirSync(path.dirname(binary), { recursive: true });
  const work = mkdtempSync(path.join(path.dirname(binary), '.extract-'));
  try {
    const saved = path.join(work, 'image.tar');
    await pipeline(await docker.getImage(image.id).get(), createWriteStream(saved));
    await run('tar', ['-xf', saved, '-C', work, 'manifest.json']);
    const manifest = JSON.parse(readFileSync(path.join(work, 'manifest.json'), 'utf8')) as { Layers?: string[] }[];
    // The final stage is FROM scratch with one COPY: one layer, holding only the binary.
    const layer = manifest[0]?.Layers?.at(-1);
    if (!layer) throw new Error('the saved image lists no layer');
    await run('tar', ['-xf', saved, '-C', work, layer]);
    await run('tar', ['-xf', path.join(work, layer), '-C', work, 'cgwatch']);
    renameSync(path.join(work, 'cgwatch'), binary);
    log.info({ binary }, 'cgwatch helper ready');
    return binary;
  } catch (err) {
    throw unavailable(`cannot copy the cgwatch binary out of ${CGWATCH_TAG}: ${(err as Error).message}`, binary, err);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function unavailable(message: string, file: string, cause?: unknown): LogoMeshError {
  return new LogoMeshError('LM_MONITOR_UNAVAILABLE', message, { file, expected: 'the cgwatch helper binary', found: message }, { cause });
}
