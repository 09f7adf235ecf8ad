import { LogoMeshError } from '../errors.js';
import type { Runtime } from '../manifest/types.js';
import { go } from './go.js';
import { node } from './node.js';
import { python } from './python.js';
import { rust } from './rust.js';
import type { RuntimeImage } from './runtime.js';

export * from './runtime.js';

const RUNTIMES: Partial<Record<Runtime, RuntimeImage>> = { python, node, go, rust };

/** The image for a runtime; LM_RUNTIME_UNAVAILABLE for a runtime without one yet. */
export function runtimeImage(runtime: Runtime): RuntimeImage {
  const image = RUNTIMES[runtime];
  if (!image) {
    throw new LogoMeshError('LM_RUNTIME_UNAVAILABLE', `runtime '${runtime}' has no image in this version (available: ${Object.keys(RUNTIMES).join(', ')})`, {
      path: '/runtime',
      expected: Object.keys(RUNTIMES).join(', '),
      found: runtime,
    });
  }
  return image;
}

/** Every runtime this version can run. */
export function availableRuntimes(): RuntimeImage[] {
  return Object.values(RUNTIMES);
}
