import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAudit } from '../../src/audit/audit-log.js';
import { ControlClient } from '../../src/control/client.js';
import { openEndpoints, type Endpoints } from '../../src/control/endpoints.js';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import type { ApplyResult } from '../../src/controller/types.js';
import { silentLogger } from '../../src/log.js';
import { HUB_MOUNT } from '../../src/sandbox/container-spec.js';
import { HEALTH_REPORT_NAME } from '../../src/sandbox/health-check.js';
import { docker, instance, REPO, runCli, tempDir } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

interface Spec {
  file: string;
  exposes: string[];
  consumes?: string[];
  deps?: string[];
  memory?: number;
}

function writePlugin(root: string, id: string, s: Spec): string {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, s.file), path.join(dir, 'main.mjs'));
  const list = (xs: string[] = []) => `[${xs.join(', ')}]`;
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    [
      `id: ${id}`,
      'version: 1.0.0',
      'runtime: node',
      'entrypoint: main.mjs',
      `resources: { maxMemoryMB: ${s.memory ?? 96}, maxCpuPercent: 50 }`,
      `dependencies: { plugins: ${list(s.deps)} }`,
      'coordination:',
      `  exposesMethods: ${list(s.exposes)}`,
      `  consumesMethods: ${list(s.consumes)}`,
    ].join('\n'),
  );
  return dir;
}

/**
 * `logomesh apply` against a running controller, through its control socket, in real
 * containers: a changed plugin is replaced under a steady stream of calls from another
 * plugin without one failing, the others keep their containers, the dry run's plan is what
 * happens, and a broken folder changes nothing.
 */
describe('apply: manifest-driven deploys without failed calls', () => {
  let root: string;
  let host: Controller;
  let endpoints: Endpoints;
  let client: ControlClient;
  const containerIds = () => Object.fromEntries(host.list().map((p) => [p.id, p.containerId]));

  beforeAll(async () => {
    root = tempDir('lm-deploy-');
    writePlugin(root, 'svc', { file: 'versioned.mjs', exposes: ['work', 'version'] });
    writeFileSync(path.join(root, 'svc', 'version.txt'), '1\n');
    writePlugin(root, 'streamer', { file: 'streamer.mjs', exposes: ['begin', 'progress', 'end'], consumes: ['svc.work'], deps: ['svc'] });
    writePlugin(root, 'bystander', { file: 'versioned.mjs', exposes: ['work', 'version'] });
    writeFileSync(path.join(root, 'bystander', 'version.txt'), 'b\n');
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-deploy-home-'), LOGOMESH_INSTANCE: `${instance()}-deploy` });
    host = await Controller.create({ log: silentLogger, home, stopGraceMs: 3_000 });
    endpoints = await openEndpoints(host, silentLogger, () => undefined);
    client = new ControlClient(home.controlSocket);
    host.loadDirectory(root);
    await host.startAll();
  });
  afterAll(async () => {
    await host?.close();
    await endpoints?.close();
  });

  it('an edited file replaces its plugin under a steady stream of calls: none fails, the others keep their containers', async () => {
    const before = containerIds();
    expect(await host.call('svc', 'version', {})).toBe('1');
    writeFileSync(path.join(root, 'svc', 'version.txt'), '2\n');

    const dry = await client.apply(root, { dryRun: true });
    expect(dry.plan).toMatchObject({ added: [], removed: [], kept: [], unchanged: ['bystander', 'streamer'], changed: [{ id: 'svc', what: ['files: version.txt changed'] }] });
    expect(dry.steps).toEqual([]);
    expect(containerIds()).toEqual(before);

    await host.call('streamer', 'begin', { target: 'svc.work', intervalMs: 1, concurrency: 8 });
    // The stream is flowing before the replacement starts.
    for (let i = 0; i < 100 && ((await host.call('streamer', 'progress', {})) as { ok: number }).ok < 50; i++) await new Promise((r) => setTimeout(r, 20));
    const applied = await client.apply(root);
    // Calls go on a while on the new container before the stream is stopped.
    await new Promise((r) => setTimeout(r, 500));
    const stream = (await host.call('streamer', 'end', {})) as { ok: number; failed: number; errors: string[]; versions: Record<string, number> };

    expect(applied.plan).toEqual(dry.plan);
    expect(applied.steps).toEqual([expect.objectContaining({ action: 'replace', id: 'svc', ok: true, handover: true })]);
    expect(stream.failed, stream.errors.join('\n')).toBe(0);
    expect(stream.versions['1']).toBeGreaterThan(0);
    expect(stream.versions['2']).toBeGreaterThan(0);
    expect(await host.call('svc', 'version', {})).toBe('2');
    const after = containerIds();
    expect(after.svc).not.toBe(before.svc);
    expect({ streamer: after.streamer, bystander: after.bystander }).toEqual({ streamer: before.streamer, bystander: before.bystander });
    expect(host.status('svc')).toMatchObject({ state: 'ready', restarts: 0 });
    const step = applied.steps[0]!;
    console.log(`replacement of svc under a stream of ${stream.ok} calls: ${stream.failed} failed; new container ready and serving after ${step.readyMs} ms, old one gone ${step.retireMs} ms later`);
    const trail = readAudit(host.home.auditFile, { plugin: 'svc' }).map((e) => `${e.action} ${e.result}`);
    expect(trail).toEqual(expect.arrayContaining(['replace starting', 'replace ready']));
    // The new container's Docker health check reads the report in its own socket folder
    // (the replacement's is the other one), and the old container's removal left the
    // resource monitor watching the new one (the monitor runs when the controller is root).
    const info = await (await docker()).getContainer(after.svc!).inspect();
    const socketDir = info.Mounts.find((mt) => mt.Destination === HUB_MOUNT)!.Source;
    expect(readFileSync(path.join(socketDir, HEALTH_REPORT_NAME), 'utf8')).toMatch(/^ok/);
    if (process.getuid?.() === 0) expect(host.usage('svc').memory.used).toBeGreaterThan(0);
  });

  it('adds, changes a manifest field, keeps without --prune and removes with it, as the dry run said', async () => {
    const before = containerIds();
    writePlugin(root, 'extra', { file: 'versioned.mjs', exposes: ['work', 'version'] });
    writeFileSync(path.join(root, 'extra', 'version.txt'), 'x\n');
    writePlugin(root, 'bystander', { file: 'versioned.mjs', exposes: ['work', 'version'], memory: 128 });
    const check = async (opts: { prune?: boolean }, expected: Partial<ApplyResult['plan']>) => {
      const dry = await client.apply(root, { ...opts, dryRun: true });
      expect(dry.plan).toMatchObject(expected);
      const done = await client.apply(root, opts);
      expect(done.plan).toEqual(dry.plan);
      expect(done.steps.map((s) => `${s.action} ${s.id} ${s.ok}`)).toEqual(dry.plan.steps.map((s) => `${s.action} ${s.id} true`));
      return done;
    };
    await check({}, { added: ['extra'], changed: [{ id: 'bystander', what: ['manifest: resources.maxMemoryMB'] }], unchanged: ['streamer', 'svc'], removed: [], kept: [] });
    expect(await host.call('extra', 'version', {})).toBe('x');
    expect(containerIds().streamer).toBe(before.streamer);

    // Out of the folder: kept without --prune, removed with it.
    renameSync(path.join(root, 'extra'), path.join(tempDir('lm-deploy-out-'), 'extra'));
    await check({}, { added: [], changed: [], kept: ['extra'], removed: [] });
    expect(host.list().map((p) => p.id)).toContain('extra');
    await check({ prune: true }, { removed: ['extra'], kept: [] });
    expect(host.list().map((p) => p.id)).toEqual(['bystander', 'streamer', 'svc']);
  });

  it('a broken manifest in the folder refuses the whole apply with its coded error and changes nothing', async () => {
    const before = containerIds();
    writeFileSync(path.join(root, 'svc', 'version.txt'), '3\n');
    writePlugin(root, 'broken', { file: 'versioned.mjs', exposes: ['work'] });
    writeFileSync(path.join(root, 'broken', 'plugin.yaml'), 'id: broken\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\nresources: { maxMemoryMB: lots }\n');
    await expect(client.apply(root)).rejects.toMatchObject({ code: 'LM_MANIFEST_INVALID', message: expect.stringContaining('maxMemoryMB') });
    // A dependency on a plugin the folder lacks is refused whole too.
    rmSync(path.join(root, 'broken'), { recursive: true });
    writePlugin(root, 'needy', { file: 'versioned.mjs', exposes: ['work'], deps: ['ghost'] });
    await expect(client.apply(root)).rejects.toMatchObject({ code: 'LM_DEPENDENCY', message: expect.stringContaining('needy -> ghost') });
    rmSync(path.join(root, 'needy'), { recursive: true });
    expect(containerIds()).toEqual(before);
    expect(await host.call('svc', 'version', {})).toBe('2');
  });

  it('load and unload one plugin through the control socket', async () => {
    const other = tempDir('lm-deploy-load-');
    writePlugin(other, 'loner', { file: 'versioned.mjs', exposes: ['work', 'version'] });
    writeFileSync(path.join(other, 'loner', 'version.txt'), 'L\n');
    expect(await client.load(path.join(other, 'loner'))).toEqual(['loner']);
    expect(await host.call('loner', 'version', {})).toBe('L');
    await expect(client.load(path.join(other, 'loner'))).rejects.toMatchObject({ code: 'LM_PLUGIN_CONFLICT' });
    await expect(client.unload('svc')).rejects.toMatchObject({ code: 'LM_DEPENDENCY', message: expect.stringContaining('streamer') });
    await client.unload('loner');
    expect(host.list().map((p) => p.id)).not.toContain('loner');
  });
});

describe('the deploy commands of the CLI, and up without a folder', () => {
  it('apply --dry-run prints the plan, apply does it; a new up on the same home runs the same plugins again', async () => {
    const root = tempDir('lm-deploy-cli-');
    writePlugin(root, 'svc', { file: 'versioned.mjs', exposes: ['work', 'version'] });
    writeFileSync(path.join(root, 'svc', 'version.txt'), '1\n');
    const env = { LOGOMESH_HOME: tempDir('lm-deploy-cli-home-'), LOGOMESH_INSTANCE: `${instance()}-deploy-cli` };
    const up = await runCli(['up', '-d', root], { env });
    expect(up.code, up.stderr).toBe(0);
    try {
      writeFileSync(path.join(root, 'svc', 'version.txt'), '2\n');
      writePlugin(root, 'more', { file: 'versioned.mjs', exposes: ['work', 'version'] });
      writeFileSync(path.join(root, 'more', 'version.txt'), 'm\n');
      const dry = await runCli(['apply', root, '--dry-run'], { env });
      expect(dry.code, dry.stderr).toBe(0);
      expect(dry.stdout).toBe(`plan (dry run, nothing changed): ${root}\n  add       more\n  replace   svc (files: version.txt changed)\n`);
      const applied = await runCli(['apply', root], { env });
      expect(applied.code, applied.stderr).toBe(0);
      expect(applied.stdout).toMatch(/^ {2}replace {3}svc \(files: version\.txt changed\) {2}[\d.]+ s \(new one ready and serving after [\d.]+ s, old one gone [\d.]+ s later\)$/m);
      expect((await runCli(['call', 'svc.version'], { env })).stdout.trim()).toBe('"2"');
      const unload = await runCli(['unload', 'more'], { env });
      expect(unload.stdout.trim()).toBe('more: unloaded');
      const load = await runCli(['load', path.join(root, 'more')], { env });
      expect(load.stdout.trim()).toBe('loaded and started: more');
      const broken = await runCli(['apply', path.join(root, 'nowhere')], { env });
      expect(broken.code).toBe(1);
      expect(broken.stderr).toMatch(/^LM_MANIFEST_NOT_FOUND: .*nowhere: no such folder/m);
    } finally {
      expect((await runCli(['down'], { env })).code).toBe(0);
    }
    // Started again on the same home, without a folder: the plugins it ran last.
    const again = await runCli(['up', '-d'], { env });
    try {
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toMatch(/more\s+ready/);
      expect(again.stdout).toMatch(/svc\s+ready/);
      expect((await runCli(['call', 'svc.version'], { env })).stdout.trim()).toBe('"2"');
    } finally {
      expect((await runCli(['down'], { env })).code).toBe(0);
    }
  });
});
