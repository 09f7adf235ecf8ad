import { parseArgs } from 'node:util';
import { createLogger, engineError, type Docker } from '../run-api.js';
import { exitStatusOf } from './exit-status.js';
import { processIo, type CliIo } from './io.js';
import { runCommand } from './run.js';
import { usage } from './usage.js';

/** `logomesh run`'s arguments, from after the command's name. `docker`: the engine client (default: the library's). */
export async function runMain(args: string[], io: CliIo, docker?: Docker): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { policy: { type: 'string' } } });
  if (positionals.length === 0) throw usage('run needs at least one plugin folder');
  return await runCommand(positionals, io, createLogger(), values.policy, docker);
}

/**
 * `logomesh run ...` as main() runs it, with the same output and exit status on every
 * failure: the installed command's `run`, from its own bundle (run-bundle.ts).
 */
export async function runEntry(argv: string[], io: CliIo = processIo, docker?: Docker): Promise<number> {
  try {
    return await runMain(argv.slice(1), io, docker);
  } catch (err) {
    return await exitStatusOf(err, io, async () => engineError);
  }
}
