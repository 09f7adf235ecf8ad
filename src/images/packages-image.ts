import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LABEL, OWNER } from '../labels.js';
import type { LoadedManifest, Runtime } from '../manifest/types.js';
import type { Docker } from '../engine/docker.js';
import type { EnsuredImage, EnsureImageOptions } from './build-job.js';
import { ensureGeneratedImage } from './current-image.js';
import { inspectImage } from './engine-images.js';
import { fetchNpm } from './npm-fetch.js';
import type { PackageRequest } from './package-request.js';
import { DEFAULT_PIP_INDEX, packagesDockerfile, PIP_INDEX_ENV, PYDEPS_DIR, PYDEPS_PTH } from './packages-dockerfile.js';
import { explainPipFailure } from './pip-failure.js';
import { SingleFlight } from './single-flight.js';

/** Bumped whenever the generated Dockerfiles change meaning, so older images are not reused. */
const GENERATION = 1;

/**
 * The cache key of a packages image: the runtime image's id, the sorted list and the
 * generated Dockerfile. The same list on the same runtime image is built once; a rebuilt
 * runtime image, another list or another Dockerfile gives another image.
 */
export function packagesImageHash(baseImageId: string, request: PackageRequest, dockerfile: string): string {
  return createHash('sha256')
    .update(JSON.stringify({ generation: GENERATION, runtime: request.runtime, manager: request.manager, base: baseImageId, specs: request.specs, dockerfile }))
    .digest('hex');
}

export function packagesImageTag(runtime: Runtime, hash: string): string {
  return `logomesh/deps-${runtime}:${hash.slice(0, 16)}`;
}

/**
 * One fetch and build per tag at a time in this process. Apart from the builds' own
 * (current-image.ts): this one is held while the build it makes runs under the same tag.
 */
const perTag = new SingleFlight<EnsuredImage>();

/**
 * The plugin's packages image, built FROM the runtime image `base` unless one with the
 * same key exists (then nothing is fetched or built). npm packages are fetched on the host;
 * pip runs in the build.
 */
export function ensurePackagesImage(docker: Docker, loaded: LoadedManifest, request: PackageRequest, base: EnsuredImage, opts: EnsureImageOptions): Promise<EnsuredImage> {
  const dockerfile = packagesDockerfile(request, base.tag);
  const hash = packagesImageHash(base.id, request, dockerfile);
  const tag = packagesImageTag(request.runtime, hash);
  return perTag.run(tag, () => buildPackagesImage(docker, loaded, request, { tag, hash, dockerfile }, opts));
}

async function buildPackagesImage(
  docker: Docker,
  loaded: LoadedManifest,
  request: PackageRequest,
  image: { tag: string; hash: string; dockerfile: string },
  opts: EnsureImageOptions,
): Promise<EnsuredImage> {
  const { tag, hash } = image;
  const existing = await inspectImage(docker, tag);
  if (existing?.Config?.Labels?.[LABEL.inputsHash] === hash) return { tag, id: existing.Id, built: false, inputsHash: hash };

  const context = mkdtempSync(path.join(os.tmpdir(), `logomesh-deps-${request.runtime}-`));
  try {
    writeFileSync(path.join(context, 'Dockerfile'), image.dockerfile);
    if (request.manager === 'npm') await fetchNpm(loaded, request.specs, context, opts.log);
    else writeFileSync(path.join(context, PYDEPS_PTH), `${PYDEPS_DIR}\n`);
    opts.log.info({ plugin: loaded.manifest.id, image: tag, packages: request.specs }, `building the ${request.runtime} packages image`);
    return await ensureGeneratedImage(
      docker,
      { tag, contextDir: context, labels: { [LABEL.owner]: OWNER, [LABEL.role]: 'deps-image' }, title: `${request.key} packages of ${loaded.manifest.id}` },
      hash,
      opts,
    );
  } catch (err) {
    throw request.manager === 'pip' ? explainPipFailure(err, loaded, request, process.env[PIP_INDEX_ENV] || DEFAULT_PIP_INDEX) : err;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}
