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

/**
 * How long an image found current stays current in this process without a new check. Each
 * check hashes the context's fingerprint (a stat of every file: the Node.js runtime's SDK,
 * ws and codecs) and inspects the image: 6 ms of the controller's CPU and an engine request
 * for each of the 200 plugins of an `up`, all of the same two images. A burst of starts now
 * checks each image about once per window; a change to an image's files is built at the
 * first start after it.
 */
export const CURRENT_FOR_MS = 5_000;

const checked = new Map<string, { readonly image: EnsuredImage; readonly contextDir: string; readonly at: number }>();

/** One image of LogoMesh's own (a runtime's, a builder, a helper such as cgwatch or the egress proxy), from its folder's Dockerfile. */
export async function ensureImage(docker: Docker, def: ImageDef, opts: EnsureImageOptions): Promise<EnsuredImage> {
  const recent = checked.get(def.tag);
  if (recent && recent.contextDir === def.contextDir && performance.now() - recent.at < CURRENT_FOR_MS) return recent.image;
  const image = await ensureChecked(docker, def, opts);
  checked.set(def.tag, { image, contextDir: def.contextDir, at: performance.now() });
  return image;
}

function ensureChecked(docker: Docker, def: ImageDef, opts: EnsureImageOptions): Promise<EnsuredImage> {
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
