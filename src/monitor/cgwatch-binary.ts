import { execFile } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
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
/** The health check program's name, beside cgwatch. */
export const HEALTH_NAME = 'lm-health';
/** The mount staging helper's name, beside cgwatch (src/sandbox/mount-helper.ts). */
export const MOUNT_NAME = 'lm-mount';

/** The binaries of images/cgwatch: the monitor's helper, and the plugin containers' health check. */
export interface HelperBinaries {
  readonly cgwatch: string;
  /** Absent when an operator's own cgwatch (LOGOMESH_CGWATCH) has no lm-health beside it. */
  readonly health?: string;
  /** The controller's mount staging helper; absent when an operator's own cgwatch has none beside it. */
  readonly mount?: string;
}

/**
 * Where the binaries are kept: LOGOMESH_CACHE_DIR, else the installation's node_modules
 * cache. The health check is bind-mounted from there into plugin containers, so under
 * compose this must be a host path seen at the same path by the controller (compose.yaml).
 */
function cacheDir(env: NodeJS.ProcessEnv): string {
  return env.LOGOMESH_CACHE_DIR ? path.resolve(env.LOGOMESH_CACHE_DIR) : path.join(REPO_DIR, 'node_modules', '.cache', 'logomesh');
}

/** The path of the cgwatch binary (see helperBinaries). */
export async function cgwatchBinary(docker: Docker, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return (await helperBinaries(docker, log, env)).cgwatch;
}

/**
 * The paths of cgwatch, lm-health and lm-mount: LOGOMESH_CGWATCH if set (the other two
 * beside it, if there), else the ones built from images/cgwatch (static binaries on an empty image, built
 * like the runtime images and rebuilt when their source changes) and copied out of the image
 * into a cache folder named by the image's inputs hash. No container is created: the
 * binaries come out of `docker save`.
 */
export async function helperBinaries(docker: Docker, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<HelperBinaries> {
  const own = env[CGWATCH_ENV];
  if (own) {
    if (!existsSync(own)) throw unavailable(`${CGWATCH_ENV} names ${own}, which does not exist`, own);
    const health = path.join(path.dirname(own), HEALTH_NAME);
    const mount = path.join(path.dirname(own), MOUNT_NAME);
    return { cgwatch: own, ...(existsSync(health) ? { health } : {}), ...(existsSync(mount) ? { mount } : {}) };
  }
  let image;
  try {
    image = await ensureImage(docker, { tag: CGWATCH_TAG, contextDir: path.join(IMAGES_DIR, 'cgwatch') }, { log });
  } catch (err) {
    throw unavailable(`cannot build the cgwatch helper image: ${(err as Error).message}`, path.join(IMAGES_DIR, 'cgwatch', 'Dockerfile'), err);
  }
  const binary = path.join(cacheDir(env), `cgwatch-${image.inputsHash.slice(0, 16)}`, 'cgwatch');
  const health = path.join(path.dirname(binary), HEALTH_NAME);
  const mount = path.join(path.dirname(binary), MOUNT_NAME);
  if (existsSync(binary) && existsSync(health) && existsSync(mount)) return { cgwatch: binary, health, mount };
  // Searchable by everyone: plugin users run lm-health from here through a bind mount.
  mkdirSync(path.dirname(binary), { recursive: true, mode: 0o755 });
  const work = mkdtempSync(path.join(path.dirname(binary), '.extract-'));
  try {
    const saved = path.join(work, 'image.tar');
    await pipeline(await docker.getImage(image.id).get(), createWriteStream(saved));
    await run('tar', ['-xf', saved, '-C', work, 'manifest.json']);
    const manifest = JSON.parse(readFileSync(path.join(work, 'manifest.json'), 'utf8')) as { Layers?: string[] }[];
    // The final stage is FROM scratch with one COPY: one layer, holding only the binaries.
    const layer = manifest[0]?.Layers?.at(-1);
    if (!layer) throw new Error('the saved image lists no layer');
    await run('tar', ['-xf', saved, '-C', work, layer]);
    await run('tar', ['-xf', path.join(work, layer), '-C', work, 'cgwatch', HEALTH_NAME, MOUNT_NAME]);
    chmodSync(path.join(work, HEALTH_NAME), 0o755);
    // Only root runs the mount helper (the controller, to stage mounts).
    chmodSync(path.join(work, MOUNT_NAME), 0o700);
    renameSync(path.join(work, HEALTH_NAME), health);
    renameSync(path.join(work, MOUNT_NAME), mount);
    renameSync(path.join(work, 'cgwatch'), binary);
    log.info({ binary, health, mount }, 'cgwatch helper, health check and mount helper ready');
    return { cgwatch: binary, health, mount };
  } catch (err) {
    throw unavailable(`cannot copy the cgwatch binary out of ${CGWATCH_TAG}: ${(err as Error).message}`, binary, err);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function unavailable(message: string, file: string, cause?: unknown): LogoMeshError {
  return new LogoMeshError('LM_MONITOR_UNAVAILABLE', message, { file, expected: 'the cgwatch helper binary', found: message }, { cause });
}
