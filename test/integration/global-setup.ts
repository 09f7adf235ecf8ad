import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { removeByLabel } from '../../src/engine/cleanup.js';
import { connectEngine } from '../../src/engine/docker.js';
import { ensureRuntimeImage } from '../../src/engine/images.js';
import { labelFilter } from '../../src/labels.js';
import { createLogger } from '../../src/log.js';
import { python } from '../../src/runtimes/python.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Label value every container, network and volume of this test run carries. */
    instance: string;
  }
}

/**
 * Build the runtime images once for all test files, hand every file this run's instance
 * id, and at the end prove that the tests left nothing behind.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const docker = await connectEngine();
  const log = createLogger('test-setup', 'warn');
  await ensureRuntimeImage(docker, python, { log, progress: process.stderr });
  const instance = `test-${randomBytes(4).toString('hex')}`;
  project.provide('instance', instance);

  return async () => {
    const filters = JSON.stringify(labelFilter(instance));
    const left = [
      ...(await docker.listContainers({ all: true, filters })).map((c) => `container ${c.Names.join(',')} (${c.Labels['io.logomesh.plugin'] ?? c.Image})`),
      ...(await docker.listNetworks({ filters })).map((n) => `network ${n.Name}`),
      ...((await docker.listVolumes({ filters })).Volumes ?? []).map((v) => `volume ${v.Name}`),
    ];
    await removeByLabel(docker, instance);
    if (left.length > 0) throw new Error(`the tests left resources labelled for instance ${instance}:\n${left.join('\n')}`);
  };
}
