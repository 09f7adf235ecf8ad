import { parseArgs } from 'node:util';
import { createLogger, engineError } from '../run-api.js';
import { exitStatusOf } from './exit-status.js';
import { processIo, type CliIo } from './io.js';
import { runCommand } from './run.js';
import { usage } from './usage.js';

/** `logomesh run`'s arguments, from after the command's name. */
export async function runMain(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { policy: { type: 'string' } } });
  if (positionals.length === 0) throw usage('run needs at least one plugin folder');
  return await runCommand(positionals, io, createLogger(), values.policy);
}

/**
 * The installed command's `run` (bin/logomesh.js loads it from its own bundle,
 * dist/cli-bundle/run.cjs, with only what `run` needs): `logomesh run ...` as main() runs
 * it, with the same output and exit status on every failure.
 */
export async function runEntry(argv: string[], io: CliIo = processIo): Promise<number> {
  try {
    return await runMain(argv.slice(1), io);
  } catch (err) {
    return await exitStatusOf(err, io, async () => engineError);
  }
}
