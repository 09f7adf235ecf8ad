import { generateKeyFiles } from '../index.js';
import type { CliIo } from './io.js';

/** `logomesh keygen <name>`: write `<name>.key` (0600) and `<name>.pub`; never overwrites. */
export function keygenCommand(name: string, io: CliIo): number {
  const { keyFile, pubFile, keyId } = generateKeyFiles(name);
  io.out(`key id ${keyId}`);
  io.err(`logomesh: wrote ${keyFile} (private, mode 0600: keep it secret, outside plugin folders) and ${pubFile} (public: list it in the policy's signatures.trustedKeys)`);
  return 0;
}
