/**
 * Building the images LogoMesh needs, as most callers import it: a runtime's images and
 * LogoMesh's own (`runtime-image.ts`), and a compiled plugin's own image
 * (`compiled-image.ts`). Each is built only when its inputs hash (`inputs-hash.ts`) is not
 * the one its tag carries (`current-image.ts`), through the engine (`engine-build.ts`).
 * Kept as one path because the sandbox, the controller, the monitor, the scaffold and the
 * tests all import these from here.
 */
export type { EnsuredImage, EnsureImageOptions } from './build-job.js';
export { ensurePluginImage, type PluginImageOptions } from './compiled-image.js';
export { ensureImage, ensureRuntimeImage } from './runtime-image.js';
