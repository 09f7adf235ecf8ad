import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root (or the installed package's), found from this module in src/ or dist/. */
export const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The images/ folder: runtime build contexts and SDKs, seccomp profiles, the protocol's constants. */
export const IMAGES_DIR = path.join(REPO_DIR, 'images');
/** What LogoMesh keeps between runs (the Node.js binary, compiled validators): a git-ignored folder of the repository or installed package. */
export const CACHE_DIR = path.join(REPO_DIR, 'node_modules', '.cache', 'logomesh');
