import { lstatSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { describeKind } from '../read-file.js';

/**
 * Resolution of plugin-relative paths against the real plugin folder. A path is accepted
 * only when it is relative, has no `..` segment, and its real path (every symlink
 * resolved) is still inside the real plugin folder.
 */
export type Resolved =
  | { ok: true; real: string; relative: string; isDirectory: boolean; isFile: boolean; kind: string }
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
  // A NUL cannot be in a path at all (the file functions throw on it); other control
  // characters only serve to make a path read differently than it is.
  if ([...relPath].some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f')) {
    return { ok: false, expected: 'a path without control characters', found: JSON.stringify(relPath) };
  }
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
  let st;
  try {
    st = statSync(real);
  } catch {
    return { ok: false, expected: 'an existing file or folder inside the plugin folder', found: `nothing at ${JSON.stringify(relPath)} any more` };
  }
  return { ok: true, real, relative: path.relative(pluginDir, real) || '.', isDirectory: st.isDirectory(), isFile: st.isFile(), kind: describeKind(st) };
}
