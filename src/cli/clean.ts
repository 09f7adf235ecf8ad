import { connectEngine, removeByLabel } from '../index.js';
import type { CliIo } from './io.js';

/** `logomesh clean [--all]`: remove what carries LogoMesh's labels. */
export async function cleanCommand(all: boolean, io: CliIo): Promise<number> {
  const instance = all ? undefined : process.env.LOGOMESH_INSTANCE;
  if (!all && !instance) {
    io.err('LM_USAGE: clean removes one instance\'s resources: set LOGOMESH_INSTANCE, or pass --all for every LogoMesh resource on this engine');
    return 2;
  }
  const removed = await removeByLabel(await connectEngine(), instance);
  io.out(`removed ${removed.containers.length} container(s), ${removed.networks.length} network(s), ${removed.volumes.length} volume(s)`);
  return 0;
}
