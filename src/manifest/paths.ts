import { lstatSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Resolution of plugin-relative paths against the real plugin folder. A path is accepted
 * only when it is relative, has no `..` segment, and its real path (every symlink
 * resolved) is still inside the real plugin folder.
 */
export type Resolved =
  | { ok: true; real: string; relative: string; isDirectory: boolean; isFile: boolean }
  | { ok: false; expected: string; found: string };

/** Glob characters; only a trailing `/**` (everything below a folder) is supported. */
const GLOB = /[*?[\]{}]/;

/** Strip `./` and a trailing `/**`; reject any other glob. */
export function staticPart(pattern: string): { ok: true; value: string } | { ok: false; expected: string; found: string } {
  let p = pattern.replace(/\\/g, '/');
  if (p === '**' || p === './**') p = '.';
  else if (p.endsWith('/**')) p = p.slice(0, -3);
  if (GLOB.test(p)) {
    return {
      ok: false,
      expected: "a file or folder path, optionally ending in '/**' (other globs cannot become a mount)",
      found: JSON.stringify(pattern),
    };
  }
  return { ok: true, value: p === '' ? '.' : p };
}

export function resolveInside(pluginDir: string, relPath: string): Resolved {
  if (path.isAbsolute(relPath) || /^[A-Za-z]:[\\/]/.test(relPath)) {
    return {
      ok: false,
      expected: 'a path relative to the plugin folder (a host path outside it is granted by the operator, not the manifest)',
      found: `absolute path ${JSON.stringify(relPath)}`,
    };
  }
  const segments = relPath.split(/[\\/]+/);
  if (segments.includes('..')) {
    return { ok: false, expected: "a path without '..' segments", found: JSON.stringify(relPath) };
  }
  const joined = path.join(pluginDir, relPath);
  try {
    lstatSync(joined);
  } catch {
    return { ok: false, expected: 'an existing file or folder inside the plugin folder', found: `nothing at ${JSON.stringify(relPath)}` };
  }
  let real: string;
  try {
    real = realpathSync(joined);
  } catch {
    return { ok: false, expected: 'a path whose symlinks resolve', found: `a dangling symlink at ${JSON.stringify(relPath)}` };
  }
  if (real !== pluginDir && !real.startsWith(pluginDir + path.sep)) {
    return {
      ok: false,
      expected: 'a path that stays inside the plugin folder after resolving symlinks',
      found: `${JSON.stringify(relPath)} resolves to ${real}`,
    };
  }
  const st = statSync(real);
  return { ok: true, real, relative: path.relative(pluginDir, real) || '.', isDirectory: st.isDirectory(), isFile: st.isFile() };
}
