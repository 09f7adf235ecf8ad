import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO } from './support.js';

const PROBE = path.join(REPO, 'test', 'fixtures', 'shm', 'probe.py');
const EXPOSES = '[alloc, op, read, lookup, attack, send, structured, read_structured, count, crash]';

/** A plugin of the probe; `peers` are the plugins whose methods it may call. */
export function shmPlugin(root: string, id: string, peers: string[], opts: { sharedMemory?: boolean; memoryMB?: number; restart?: string } = {}): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(PROBE, path.join(dir, 'main.py'));
  const consumes = peers.flatMap((p) => [`${p}.read`, `${p}.read_structured`]);
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    [
      `id: ${id}`,
      'version: 1.0.0',
      'runtime: python',
      'entrypoint: main.py',
      `resources: { maxMemoryMB: ${opts.memoryMB ?? 128}, maxCpuPercent: 50 }`,
      `restart: ${opts.restart ?? '{ policy: never }'}`,
      'coordination:',
      `  exposesMethods: ${EXPOSES}`,
      `  consumesMethods: [${consumes.join(', ')}]`,
      `  sharedMemory: ${opts.sharedMemory ?? true}`,
      // read takes a segment handle and an optional length: the hub checks calls against it.
      '  methodSchemas:',
      '    read:',
      '      params: { type: object, required: [seg], properties: { seg: { type: object }, length: { type: integer, minimum: 0 } }, additionalProperties: false }',
      '      result: { type: string }',
    ].join('\n'),
  );
}

