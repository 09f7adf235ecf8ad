import { ControlClient, connectEngine, removeByLabel, removeLeftPoolOf } from '../index.js';
import type { CliIo } from './io.js';

/** `logomesh clean [--all]`: remove what carries LogoMesh's labels. */
export async function cleanCommand(all: boolean, io: CliIo): Promise<number> {
  const instance = all ? undefined : process.env.LOGOMESH_INSTANCE;
  if (!all && !instance) {
    io.err('LM_USAGE: clean removes one instance\'s resources: set LOGOMESH_INSTANCE, or pass --all for every LogoMesh resource on this engine');
    return 2;
  }
  const removed = await removeByLabel(await connectEngine(), instance);
  // The shared-memory pool of this home, if a killed controller left it and none runs there now.
  const client = ControlClient.forHome();
  const running = await client.status().then(
    () => true,
    () => false,
  );
  const pools = running ? 0 : await removeLeftPoolOf(client.home).catch(() => 0);
  io.out(`removed ${removed.containers.length} container(s), ${removed.networks.length} network(s), ${removed.volumes.length} volume(s)${pools ? `, and the shared-memory pool of ${client.home.dir} (${pools} tmpfs)` : ''}`);
  return 0;
}
