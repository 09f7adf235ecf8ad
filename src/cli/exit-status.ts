import { isLogoMeshError, type LogoMeshError } from '../control/client.js';
import type { CliIo } from './io.js';
import { USAGE } from './usage.js';

/** The library's wording of an engine failure (engineError), handed in so this module does not load the library. */
export type EngineErrorOf = () => Promise<(operation: string, err: unknown) => LogoMeshError>;

/**
 * What a command's failure prints and the exit status it ends with: a coded error its code
 * and message (2 for LM_USAGE, else 1), an engine error in the library's words, a bad option
 * as LM_USAGE with the usage text. Anything else is a bug: it is thrown on.
 */
export async function exitStatusOf(err: unknown, io: CliIo, engineError: EngineErrorOf): Promise<number> {
  if (isLogoMeshError(err)) {
    io.err(`${err.code}: ${err.message}`);
    return err.code === 'LM_USAGE' ? 2 : 1;
  }
  if (typeof (err as { statusCode?: unknown })?.statusCode === 'number') {
    const e = (await engineError())('answer a request', err);
    io.err(`${e.code}: ${e.message}`);
    return 1;
  }
  if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
    io.err(`LM_USAGE: ${err.message}\n${USAGE}`);
    return 2;
  }
  throw err;
}
