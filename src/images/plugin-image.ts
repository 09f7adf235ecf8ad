import type { EnsuredImage, EnsureImageOptions } from './build-job.js';
import { ensurePluginImage, type PluginImageOptions } from './compiled-image.js';
import { ensureRuntimeImage } from './runtime-image.js';
import { engineError, type Docker } from '../engine/docker.js';
import { packageRequest } from './package-request.js';
import { ensurePackagesImage } from './packages-image.js';
import { checkSystemDependencies, type CheckedImage } from './system-check.js';
import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { RuntimeImage } from '../runtimes/runtime.js';
import { mutablePaths, type SignedContent } from '../signing/signature.js';

/**
 * The image and command a plugin runs with when they are not its runtime's own: a compiled
 * plugin's image, or an interpreted plugin's packages image (with the runtime's command).
 */
export type PreparedImage = { readonly tag: string; readonly command: readonly string[] };
/** undefined: the runtime's image and command. */
export type Compiled = PreparedImage | undefined;

export interface PrepareOptions extends EnsureImageOptions {
  /** Instance label for the short-lived dependency check container (default: this process's). */
  readonly instance?: string;
  /**
   * What a verified signature lists (absent: unsigned). A compiled plugin's image is built
   * only from a snapshot holding exactly these files (LM_SIGNATURE otherwise).
   */
  readonly signed?: SignedContent;
  /** Test hook, see PluginImageOptions. */
  readonly afterSnapshot?: PluginImageOptions['afterSnapshot'];
}

/**
 * Make sure the images a plugin needs exist and that its dependencies are there:
 *
 * - `dependencies.packages` is checked against the runtime first (LM_PACKAGES_UNSUPPORTED
 *   before any build); an interpreted plugin with packages runs in a packages image built
 *   FROM its runtime image, cached by the runtime image's id and the sorted list;
 * - `dependencies.system` is checked (LM_DEPENDENCY) in the image the plugin runs in, or
 *   for a compiled runtime in the builder its code is compiled in, before the plugin's
 *   own image is built; the answer is cached by image id and list;
 * - a compiled plugin's own image is built from one snapshot of its sources, compared with
 *   its signature when it is signed, and cached by the snapshot's hash.
 */
export async function preparePluginImage(docker: Docker, runtime: RuntimeImage, loaded: LoadedManifest, opts: PrepareOptions): Promise<Compiled> {
  const request = packageRequest(loaded);
  const checkOpts = { log: opts.log, ...(opts.instance ? { instance: opts.instance } : {}) };
  if (!runtime.compile) {
    const base = await ensureRuntimeImage(docker, runtime, opts);
    const image = request ? await ensurePackagesImage(docker, loaded, request, base, opts) : base;
    await checkSystemDependencies(docker, loaded, { tag: image.tag, id: image.id, role: 'the image the plugin runs in' }, checkOpts);
    return request ? { tag: image.tag, command: runtime.command(loaded.manifest.entrypoint) } : undefined;
  }
  if (loaded.manifest.dependencies.system.length > 0) {
    await ensureRuntimeImage(docker, runtime, opts);
    await checkSystemDependencies(docker, loaded, await builderImage(docker, runtime), checkOpts);
  }
  const image = await ensurePluginImage(docker, runtime, loaded, {
    ...opts,
    // What the plugin writes is never compiled into it: the mutable paths stay out of the context.
    exclude: mutablePaths(loaded),
    ...(opts.signed ? { signedFiles: opts.signed.files } : {}),
  });
  return { tag: image.tag, command: runtime.compile.command };
}

/**
 * Where a compiled runtime's plugins meet Debian: the builder image. Their binaries carry
 * their libraries (Go's are static; Rust links crates statically), and Go's run image is
 * empty (scratch: no shell, no package database), so a Debian package or tool can only
 * matter where the code is compiled.
 */
async function builderImage(docker: Docker, runtime: RuntimeImage): Promise<CheckedImage> {
  const tag = runtime.images.find((def) => def.tag !== runtime.tag)?.tag;
  if (!tag) throw new LogoMeshError('LM_IMAGE_BUILD', `runtime ${runtime.runtime} names no builder image`, {});
  let found: EnsuredImage['id'];
  try {
    found = (await docker.getImage(tag).inspect()).Id;
  } catch (err) {
    throw engineError(`inspect the builder image ${tag}`, err, { image: tag });
  }
  return { tag, id: found, role: `the image ${runtime.runtime} plugins are compiled in` };
}
