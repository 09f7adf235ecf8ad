import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root (or the installed package's), found from this module in src/ or dist/. */
export const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The images/ folder: runtime build contexts and SDKs, seccomp profiles, the protocol's constants. */
export const IMAGES_DIR = path.join(REPO_DIR, 'images');
/** The data bridge's shared test vectors (docs/data-bridge.md), which every SDK image carries. */
export const VECTORS_DIR = path.join(REPO_DIR, 'test', 'vectors');
