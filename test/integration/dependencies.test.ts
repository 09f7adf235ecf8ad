import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetSystemChecks } from '../../src/images/system-check.js';
import { LogoMeshError } from '../../src/errors.js';
import { LABEL, OWNER } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { runtimeImage } from '../../src/runtimes/index.js';
import { preparePluginImage } from '../../src/images/plugin-image.js';
import { docker, instance, report, runCaptured, tempDir } from './support.js';

// A cache folder of this file's own, so the first check really runs a container.
process.env.LOGOMESH_CACHE_DIR = tempDir('lm-deps-cache-');

const suffix = randomBytes(3).toString('hex');
const ids: string[] = [];

/** A plugin folder in a temp dir: the manifest (YAML text) and its files. */
function pluginFolder(name: string, manifest: string, files: Record<string, string>): string {
  const id = `${name}-${suffix}`;
  ids.push(id);
  const dir = path.join(tempDir(`lm-${name}-`), id);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\n${manifest}`);
  for (const [file, text] of Object.entries(files)) writeFileSync(path.join(dir, file), text);
  return dir;
}

/** When (ms) the engine created containers for a plugin id (check containers included), from `since` on. */
async function containersCreated(id: string, since: number): Promise<number[]> {
  const stream = (await (await docker()).getEvents({
    since: Math.floor(since / 1000) - 1,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: JSON.stringify({ type: ['container'], event: ['create'], label: [`${LABEL.plugin}=${id}`] }),
  })) as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => Number((JSON.parse(l) as { timeNano: number }).timeNano) / 1e6)
    .filter((t) => t >= since - 5);
}

async function rejection(p: Promise<unknown>): Promise<LogoMeshError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LogoMeshError);
  return err as LogoMeshError;
}

afterAll(async () => {
  // Every check and plugin container is gone, whatever instance label it carried.
  const engine = await docker();
  const left = await engine.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.owner}=${OWNER}`] }) });
  expect(left.filter((c) => ids.includes(c.Labels[LABEL.plugin] ?? '')).map((c) => c.Id)).toEqual([]);
});

describe('dependencies.packages.npm: a packages image for a node plugin', () => {
  const MAIN = [
    "import isNumber from 'is-number';",
    "import ms from 'ms';",
    "import { createRequire } from 'node:module';",
    'const require = createRequire(import.meta.url);',
    "console.log(JSON.stringify({ five: isNumber(5), word: isNumber('five'), twoHours: ms('2h'), resolved: require.resolve('is-number'), sdk: require.resolve('logomesh') }));",
    '',
  ].join('\n');
  let dir: string;
  let image: string;
  let firstMs: number;

  beforeAll(async () => {
    dir = pluginFolder('deps-npm', 'runtime: node\nentrypoint: main.mjs\ndependencies:\n  system: [node]\n  packages: { npm: [is-number, ms] }\n', { 'main.mjs': MAIN });
    const t0 = Date.now();
    const prepared = await preparePluginImage(await docker(), runtimeImage('node'), loadManifest(dir), { log: silentLogger, instance: instance() });
    firstMs = Date.now() - t0;
    expect(prepared).toBeDefined();
    image = prepared!.tag;
    expect(prepared!.command).toEqual(['node', '/plugin/main.mjs']);
  });

  it('imports the packages from the plugin code, with the SDK still found', async () => {
    let ranIn = '';
    const r = await runCaptured(dir, {
      onCreated: async (c) => {
        ranIn = (await c.inspect()).Config.Image;
      },
    });
    expect(r.exitCode, r.stderr).toBe(0);
    // The packages image (its tag moves only if the runtime image was rebuilt meanwhile).
    expect(ranIn).toMatch(/^logomesh\/deps-node:[0-9a-f]{16}$/);
    expect(report(r.stdout)).toEqual({ five: true, word: false, twoHours: 7_200_000, resolved: '/node_modules/is-number/index.js', sdk: expect.stringMatching(/^\/opt\/logomesh\/node\/logomesh\//) });
  });

  it('is tagged logomesh/deps-node:<hash16>, labelled, FROM the runtime image, and its files are not writable by the plugin', async () => {
    expect(image).toMatch(/^logomesh\/deps-node:[0-9a-f]{16}$/);
    const engine = await docker();
    const info = await engine.getImage(image).inspect();
    expect(info.Config.Labels).toMatchObject({ [LABEL.owner]: OWNER, [LABEL.role]: 'deps-image' });
    expect(info.Config.Labels?.[LABEL.inputsHash]).toMatch(new RegExp(`^${image.split(':')[1]}`));
    const runtime = await engine.getImage('logomesh/runtime-node:latest').inspect();
    expect(info.RootFS.Layers?.slice(0, runtime.RootFS.Layers?.length)).toEqual(runtime.RootFS.Layers);
    expect(info.Config.User).toBe('10001:10001');
  });

  it('is reused on the next start: no fetch, no build, no check container', async () => {
    const prepare = () => preparePluginImage(docker_, runtimeImage('node'), loadManifest(dir), { log: silentLogger, instance: instance() });
    const docker_ = await docker();
    const before = await prepare();
    const since = Date.now();
    const again = await prepare();
    const warmMs = Date.now() - since;
    expect(again?.tag).toBe(before?.tag);
    console.info(`node packages image: first prepare ${firstMs} ms (npm fetch, build, system check), next ${warmMs} ms`);
    expect(warmMs).toBeLessThan(Math.max(500, firstMs / 2));
    expect(await containersCreated(path.basename(dir), since)).toEqual([]);
  });
});

describe('dependencies.system: checked in the image before start', () => {
  it('refuses a plugin whose list names something the image lacks, with LM_DEPENDENCY naming it', async () => {
    const dir = pluginFolder('deps-missing', 'runtime: python\nentrypoint: main.py\ndependencies:\n  system:\n    - python3\n    - no-such-package-xyz\n', { 'main.py': 'print("must not run")\n' });
    const err = await rejection(runCaptured(dir));
    expect(err.code).toBe('LM_DEPENDENCY');
    expect(err.message).toContain('no-such-package-xyz');
    expect(err.message).toContain(`plugin ${path.basename(dir)} cannot start`);
    expect(err.message).toContain(`${path.join(dir, 'plugin.yaml')}:8:7 LM_DEPENDENCY /dependencies/system/1:`);
    expect(err.details).toMatchObject({
      plugin: path.basename(dir),
      file: path.join(dir, 'plugin.yaml'),
      path: '/dependencies/system/1',
      image: 'logomesh/runtime-python:latest',
      missing: ['no-such-package-xyz'],
    });
  });

  it('starts a plugin whose list the image has (a package and a command); the second start costs no container', async () => {
    forgetSystemChecks();
    const dir = pluginFolder('deps-present', 'runtime: python\nentrypoint: main.py\ndependencies:\n  system: [python3, sh]\n', { 'main.py': 'print("{\\"ran\\": true}")\n' });
    const id = path.basename(dir);
    const loaded = loadManifest(dir);
    const engine = await docker();
    const prepare = async () => {
      const t0 = process.hrtime.bigint();
      await preparePluginImage(engine, runtimeImage('python'), loaded, { log: silentLogger, instance: instance() });
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const since = Date.now();
    const cold = await prepare();
    const afterCold = Date.now();
    const warm = await prepare();
    forgetSystemChecks();
    const fromDisk = await prepare();
    const afterWarm = Date.now();
    console.info(`system check: cold ${cold.toFixed(1)} ms (one container), warm ${warm.toFixed(1)} ms (memory), new process ${fromDisk.toFixed(1)} ms (cache folder)`);
    const created = await containersCreated(id, since);
    expect(created.filter((t) => t <= afterCold)).toHaveLength(1);
    expect(created.filter((t) => t > afterCold && t <= afterWarm)).toEqual([]);
    expect(warm).toBeLessThan(cold);

    const r = await runCaptured(dir);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(report(r.stdout)).toEqual({ ran: true });
    // Check plus plugin: the run's start reused the check.
    expect(await containersCreated(id, since)).toHaveLength(2);
  });

  it("checks a Go plugin's list in the builder image (the run image is empty), before compiling", async () => {
    const dir = pluginFolder('deps-go', 'runtime: go\nentrypoint: main.go\ndependencies:\n  system: [golang-go, python3]\n', { 'main.go': 'package main\n\nfunc main() {}\n' });
    const err = await rejection(runCaptured(dir));
    expect(err.code).toBe('LM_DEPENDENCY');
    expect(err.details).toMatchObject({ path: '/dependencies/system/1', image: 'logomesh/builder-go:latest', missing: ['python3'] });
    expect(err.message).toContain('the image go plugins are compiled in');
    // Refused before its image was built.
    const images = await (await docker()).listImages({ filters: JSON.stringify({ label: [`${LABEL.plugin}=${path.basename(dir)}`] }) });
    expect(images).toEqual([]);
  });

  it('refuses packages for a Go plugin with LM_PACKAGES_UNSUPPORTED before any build', async () => {
    const dir = pluginFolder('deps-gopkg', 'runtime: go\nentrypoint: main.go\ndependencies:\n  packages: { go: [github.com/pkg/errors] }\n', { 'main.go': 'package main\n\nfunc main() {}\n' });
    const err = await rejection(runCaptured(dir));
    expect(err.code).toBe('LM_PACKAGES_UNSUPPORTED');
    expect(err.message).toContain('vendor/');
  });
});
