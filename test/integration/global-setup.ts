import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { removeByLabel } from '../../src/engine/cleanup.js';
import { connectEngine } from '../../src/engine/docker.js';
import { ensureRuntimeImage } from '../../src/images/build.js';
import { LABEL, labelFilter } from '../../src/labels.js';
import { createLogger } from '../../src/log.js';
import { availableRuntimes } from '../../src/runtimes/index.js';

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
  // Every runtime's images, once, before the files start: test files run in parallel
  // processes, and two processes must not build the same image at the same time.
  for (const runtime of availableRuntimes()) await ensureRuntimeImage(docker, runtime, { log, progress: process.stderr });
  const instance = `test-${randomBytes(4).toString('hex')}`;
  project.provide('instance', instance);

  return async () => {
    // Controllers under test use instances derived from this one (`<instance>-<suffix>`).
    const ours = (labels: Record<string, string> | undefined) => (labels?.[LABEL.instance] ?? '').startsWith(instance);
    const filters = JSON.stringify(labelFilter());
    const containers = (await docker.listContainers({ all: true, filters })).filter((c) => ours(c.Labels));
    const networks = (await docker.listNetworks({ filters })).filter((n) => ours(n.Labels));
    const volumes = ((await docker.listVolumes({ filters })).Volumes ?? []).filter((v) => ours(v.Labels));
    const left = [
      ...containers.map((c) => `container ${c.Names.join(',')} (${c.Labels[LABEL.plugin] ?? c.Image}, instance ${c.Labels[LABEL.instance]})`),
      ...networks.map((n) => `network ${n.Name}`),
      ...volumes.map((v) => `volume ${v.Name}`),
    ];
    for (const i of new Set([...containers, ...networks, ...volumes].map((r) => r.Labels?.[LABEL.instance] ?? instance))) await removeByLabel(docker, i);
    if (left.length > 0) throw new Error(`the tests left resources labelled for instance ${instance}:\n${left.join('\n')}`);
  };
}
