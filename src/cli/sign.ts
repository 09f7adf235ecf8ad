import { signPlugin } from '../index.js';
import type { CliIo } from './io.js';

/** `logomesh sign <plugin-dir> --key <file>`: write `<plugin-dir>/plugin.sig`. */
export function signCommand(dir: string, keyFile: string, io: CliIo): number {
  const { sigFile, keyId, files } = signPlugin(dir, keyFile);
  io.out(`signed ${sigFile} (${files} file(s), key id ${keyId})`);
  return 0;
}
