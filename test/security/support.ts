import { cpSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { labelFilter } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { runtimeImage } from '../../src/runtimes/index.js';
import { containerSpec } from '../../src/sandbox/container-spec.js';
import { PluginContainer } from '../../src/sandbox/plugin-container.js';
import { docker, instance, report, runCaptured, tempDir, type Captured } from '../integration/support.js';

/** One small Python plugin per attack; each prints a JSON report of what every attempt gave. */
export const ATTACKS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

/**
 * A private copy of an attack plugin in a temp folder, removed after the file's tests, with
 * the shared helper module (fixtures/_lib/attempt.py) beside its code: a plugin sees only its
 * own folder.
 */
export function copyAttack(name: string): string {
  const dir = path.join(tempDir(`lm-attack-${name}-`), name);
  cpSync(path.join(ATTACKS, name), dir, { recursive: true });
  cpSync(path.join(ATTACKS, '_lib', 'attempt.py'), path.join(dir, 'attempt.py'));
  return dir;
}

export interface Attack<T> {
  readonly report: T;
  readonly run: Captured;
}

/**
 * Run an attack plugin in the sandbox every plugin gets (runPlugin, as `logomesh run`
 * does). The plugin must finish on its own, exit 0 and report; then its container must be
 * gone and the engine must still answer.
 */
export async function attack<T = Record<string, unknown>>(name: string, prepare?: (dir: string) => void): Promise<Attack<T>> {
  const dir = copyAttack(name);
  prepare?.(dir);
  const run = await runCaptured(dir);
  expect(run.exitCode, `${name} exited ${run.exitCode}:\n${run.stderr}`).toBe(0);
  expect(run.oomKilled).toBe(false);
  await expectCleanedUp(run.containerId);
  return { report: report<T>(run.stdout), run };
}

/**
 * Run an attack plugin in a container that differs from a plugin's only in its seccomp
 * profile: to show what the next layer (capabilities, network mode none) does on its own.
 */
export async function attackWithProfile<T = Record<string, unknown>>(name: string, seccompProfile: string): Promise<T> {
  const d = await docker();
  const loaded = loadManifest(copyAttack(name));
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (c: Buffer) => chunks.out.push(c));
  err.on('data', (c: Buffer) => chunks.err.push(c));
  let id = '';
  let exitCode = -1;
  {
    const spec = containerSpec({ loaded, runtime: runtimeImage(loaded.manifest.runtime), instance: instance(), seccompProfile });
    await using container = await PluginContainer.create(d, spec, silentLogger);
    id = container.id;
    const drained = await container.attach(out, err);
    await container.start();
    exitCode = await container.wait();
    await drained();
  }
  const stderr = Buffer.concat(chunks.err).toString();
  expect(exitCode, `${name} exited ${exitCode}:\n${stderr}`).toBe(0);
  await expectCleanedUp(id);
  return report<T>(Buffer.concat(chunks.out).toString());
}

/** The attack's container was removed, nothing of it is left, and the engine still answers. */
export async function expectCleanedUp(containerId: string): Promise<void> {
  const d = await docker();
  expect(containerId).not.toBe('');
  await expect(d.getContainer(containerId).inspect()).rejects.toMatchObject({ statusCode: 404 });
  const ours = await d.listContainers({ all: true, filters: JSON.stringify(labelFilter(instance())) });
  expect(ours.map((c) => c.Id)).not.toContain(containerId);
  expect(String(await d.ping())).toBe('OK');
}
