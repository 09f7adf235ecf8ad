export { findManifest, loadManifest, manifestHash, MANIFEST_NAMES } from './load.js';
export { manifestSchema } from './schema.js';
export type * from './types.js';
