import { ensurePluginImage, ensureRuntimeImage, type EnsureImageOptions } from '../engine/images.js';
import type { Docker } from '../engine/docker.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { RuntimeImage } from '../runtimes/runtime.js';

/** The image and command a compiled plugin runs with; undefined for interpreted runtimes. */
export type Compiled = { readonly tag: string; readonly command: readonly string[] } | undefined;

/**
 * Make sure the images a plugin needs exist: its runtime's, and for a compiled runtime its
 * own (built from its sources, cached by their hash).
 */
export async function preparePluginImage(docker: Docker, runtime: RuntimeImage, loaded: LoadedManifest, opts: EnsureImageOptions): Promise<Compiled> {
  if (!runtime.compile) {
    await ensureRuntimeImage(docker, runtime, opts);
    return undefined;
  }
  const image = await ensurePluginImage(docker, runtime, loaded, opts);
  return { tag: image.tag, command: runtime.compile.command };
}
