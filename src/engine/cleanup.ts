import type { Docker } from './docker.js';
import { engineStatus } from './docker.js';
import { labelFilter } from '../labels.js';

export interface Removed {
  containers: string[];
  networks: string[];
  volumes: string[];
}

/**
 * Remove every container, network and volume carrying LogoMesh's labels, of one instance or
 * of all. Containers go first: a network or volume in use cannot be removed.
 */
export async function removeByLabel(docker: Docker, instance?: string): Promise<Removed> {
  const filters = JSON.stringify(labelFilter(instance));
  const removed: Removed = { containers: [], networks: [], volumes: [] };
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(
    containers.map(async (c) => {
      await ignoreGone(docker.getContainer(c.Id).remove({ force: true, v: true }));
      removed.containers.push(c.Id);
    }),
  );
  for (const n of await docker.listNetworks({ filters })) {
    await ignoreGone(docker.getNetwork(n.Id).remove());
    removed.networks.push(n.Id);
  }
  const { Volumes } = await docker.listVolumes({ filters });
  for (const v of Volumes ?? []) {
    await ignoreGone(docker.getVolume(v.Name).remove());
    removed.volumes.push(v.Name);
  }
  return removed;
}

/** Treat "already gone" (404) and "removal already in progress" (409) as success. */
export async function ignoreGone(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    const status = engineStatus(err);
    if (status !== 404 && status !== 409) throw err;
  }
}
