import { LogoMeshError } from '../errors.js';
import { LABEL } from '../labels.js';
import type { Docker } from '../engine/docker.js';
import type { BuildJob, EnsureImageOptions, EnsuredImage } from './build-job.js';
import { runBuild } from './engine-build.js';
import { inspectImage } from './engine-images.js';
import { contextHash } from './inputs-hash.js';
import { SingleFlight } from './single-flight.js';

/** One build per tag at a time in this process; concurrent callers share it. */
const perTag = new SingleFlight<EnsuredImage>();

/** Run `fn`, which makes the image `tag` current, unless a call for the same tag is under way: then share its result. */
export function oncePerTag(tag: string, fn: () => Promise<EnsuredImage>): Promise<EnsuredImage> {
  return perTag.run(tag, fn);
}

/**
 * The image of `job`, current: the one its tag names when that carries the inputs hash
 * label (no build call at all), else built now. The hash is `knownHash` when the caller
 * computed it from what the image is made of, else the hash of the job's context.
 */
export async function ensureCurrent(docker: Docker, job: BuildJob, dockerfileText: string, opts: EnsureImageOptions, knownHash?: string): Promise<EnsuredImage> {
  // The tag's image is asked for while the inputs are hashed: one engine round trip less before a run.
  const [inputsHash, existing] = await Promise.all([knownHash ?? contextHash(docker, job.contextDir, job.extra, dockerfileText), inspectImage(docker, job.tag)]);
  if (existing && existing.Config?.Labels?.[LABEL.inputsHash] === inputsHash) {
    return { tag: job.tag, id: existing.Id, built: false, inputsHash };
  }
  opts.log.info({ image: job.tag, inputsHash }, 'building image');
  const started = Date.now();
  await runBuild(docker, job, inputsHash, opts);
  const built = await inspectImage(docker, job.tag);
  if (!built) throw new LogoMeshError('LM_IMAGE_BUILD', `image ${job.tag} is missing after its build`, { image: job.tag });
  opts.log.info({ image: job.tag, ms: Date.now() - started }, 'image built');
  return { tag: job.tag, id: built.Id, built: true, inputsHash };
}

/**
 * Build an image from a generated context folder (holding its Dockerfile) unless the tag
 * already carries this inputs hash; the caller computes the hash from what the image is
 * made of. One build per tag at a time in this process.
 */
export function ensureGeneratedImage(
  docker: Docker,
  job: { tag: string; contextDir: string; labels: Readonly<Record<string, string>>; title: string },
  inputsHash: string,
  opts: EnsureImageOptions,
): Promise<EnsuredImage> {
  return oncePerTag(job.tag, () => ensureCurrent(docker, { ...job, extra: {} }, '', opts, inputsHash));
}
