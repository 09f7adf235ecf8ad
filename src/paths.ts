import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository's root (or the installed package's): the nearest folder above this module
 * that holds images/, whether the module runs from src/, dist/ or the bundled CLI in
 * dist/cli-bundle/.
 */
export const REPO_DIR = findRoot(path.dirname(fileURLToPath(import.meta.url)));
/** The images/ folder: runtime build contexts and SDKs, seccomp profiles, the protocol's constants. */
export const IMAGES_DIR = path.join(REPO_DIR, 'images');
/** What LogoMesh keeps between runs (the Node.js binary, compiled validators): a git-ignored folder of the repository or installed package. */
export const CACHE_DIR = path.join(REPO_DIR, 'node_modules', '.cache', 'logomesh');

function findRoot(from: string): string {
  for (let dir = path.dirname(from); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'images', 'protocol'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, '..');
  }
}
