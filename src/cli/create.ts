import path from 'node:path';
import { scaffoldPlugin } from '../index.js';
import type { CliIo } from './io.js';

/**
 * `logomesh create <runtime> <name> [dir]`: a new plugin folder (default ./<name>) with a
 * manifest, code exposing `hello`, its tests and a README. Relative paths are taken from
 * where the command was typed, also under `npm run create-plugin` (INIT_CWD), which runs in
 * the repository's folder.
 */
export function createCommand(runtime: string, name: string, dir: string | undefined, io: CliIo): number {
  const base = process.env.INIT_CWD && path.isAbsolute(process.env.INIT_CWD) ? process.env.INIT_CWD : process.cwd();
  const target = path.resolve(base, dir ?? name);
  const made = scaffoldPlugin({ runtime, name, dir: target });
  const rel = path.relative(base, made.dir);
  const shown = rel === '' ? '.' : rel.startsWith('..') ? made.dir : rel;
  io.out(`created plugin ${made.id} (${made.runtime}) in ${made.dir}:`);
  for (const f of made.files) io.out(`  ${f}`);
  io.out('');
  io.out('next:');
  io.out(`  logomesh test ${shown}      run its tests in the ${made.runtime} image`);
  io.out(`  logomesh dev ${shown}       run it, replacing it on every change`);
  io.out(`  logomesh call ${made.id}.hello '{"name": "Ada"}'   call it while dev runs (another terminal)`);
  return 0;
}
