import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';
import { LABEL, OWNER } from '../labels.js';
import type { ImageDef, RuntimeImage } from '../runtimes/runtime.js';
import type { Docker } from '../engine/docker.js';
import type { EnsureImageOptions, EnsuredImage } from './build-job.js';
import { ensureCurrent, oncePerTag } from './current-image.js';

/**
 * Build a runtime's images unless ones with the same inputs exist. The inputs are every
 * file of the build context and the id of each base image, hashed into a label, so an edit
 * to a Dockerfile or an SDK, or a rebuilt base image, triggers a rebuild and nothing else does.
 */
export async function ensureRuntimeImage(docker: Docker, runtime: RuntimeImage, opts: EnsureImageOptions): Promise<EnsuredImage> {
  let last: EnsuredImage | undefined;
  for (const def of runtime.images) last = await ensureImage(docker, def, opts);
  if (!last) throw new LogoMeshError('LM_IMAGE_BUILD', `runtime ${runtime.runtime} names no image`, {});
  return last;
}

/** One image of LogoMesh's own (a runtime's, a builder, a helper such as cgwatch or the egress proxy), from its folder's Dockerfile. */
export function ensureImage(docker: Docker, def: ImageDef, opts: EnsureImageOptions): Promise<EnsuredImage> {
  return oncePerTag(def.tag, async () => {
    await def.prepare?.(opts.log);
    return ensureCurrent(
      docker,
      {
        tag: def.tag,
        contextDir: def.contextDir,
        extra: def.extra ?? {},
        labels: { [LABEL.owner]: OWNER, [LABEL.role]: 'runtime-image' },
        title: def.tag,
      },
      readFileSync(path.join(def.contextDir, 'Dockerfile'), 'utf8'),
      opts,
    );
  });
}
