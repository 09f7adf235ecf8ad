import { parseArgs } from 'node:util';
import { isLogoMeshError, LogoMeshError } from '../errors.js';
import { processIo, type CliIo } from './io.js';

const USAGE = `usage: logomesh <command> [options]

commands:
  validate <manifest-or-plugin-dir>...   check manifests; exit 1 listing every error  [--json]
  run <plugin-dir>...                    run plugins to completion in their sandboxes
  clean [--all]                          remove containers, networks and volumes LogoMesh
                                         left (this instance: LOGOMESH_INSTANCE; --all: every one)

Docs: docs/manifest.md, docs/errors.md`;

/** The `logomesh` command. Returns the process exit code; never calls process.exit. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'validate': {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
        if (positionals.length === 0) throw usage('validate needs at least one manifest file or plugin folder');
        // Commands load their modules on demand: the CLI starts in a fraction of the time.
        const { validateCommand } = await import('./validate.js');
        return validateCommand(positionals, values.json === true, io);
      }
      case 'run': {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true, options: {} });
        if (positionals.length === 0) throw usage('run needs at least one plugin folder');
        const [{ runCommand }, { createLogger }] = await Promise.all([import('./run.js'), import('../log.js')]);
        return await runCommand(positionals, io, createLogger());
      }
      case 'clean': {
        const { values } = parseArgs({ args: rest, options: { all: { type: 'boolean', default: false } } });
        const { cleanCommand } = await import('./clean.js');
        return await cleanCommand(values.all === true, io);
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw usage(`unknown command '${command}'`);
    }
  } catch (err) {
    if (isLogoMeshError(err)) {
      io.err(`${err.code}: ${err.message}`);
      return err.code === 'LM_USAGE' ? 2 : 1;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      io.err(`LM_USAGE: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}

function usage(message: string): LogoMeshError {
  return new LogoMeshError('LM_USAGE', `${message}\n\n${USAGE}`);
}
