import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEndpoints, type Endpoints } from '../../src/control/endpoints.js';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { silentLogger } from '../../src/log.js';
import { instance, REPO, runCli, sleep, tempDir } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

function plugin(root: string, id: string, file: string, runtime: 'node' | 'python' | 'go' | 'rust', yaml: string): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  const entry = { node: 'main.mjs', python: 'main.py', go: 'main.go', rust: 'main.rs' }[runtime];
  copyFileSync(path.join(FIX, file), path.join(dir, entry));
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: ${runtime}\nentrypoint: ${entry}\n${yaml}`);
}

/**
 * What a plugin author reaches for (issue 18 item 7), in real containers: a caller is told
 * its target was killed for memory, the killed plugin's last output stays in `logs`, an
 * emitter learns its event was refused, and `call --json` prints the whole coded error.
 */
describe('errors a plugin author can act on', () => {
  let host: Controller;
  let endpoints: Endpoints;
  beforeAll(async () => {
    const root = tempDir('lm-author-');
    const coordination = (consumes: string) => `coordination:\n  exposesMethods: [hog, call, tryEmit]\n  consumesMethods: [${consumes}]\n  messaging: true\n  publishes: [allowed.*]\n`;
    plugin(root, 'hog', 'hog.mjs', 'node', `resources: { maxMemoryMB: 64 }\nrestart: { policy: on-failure, backoffMs: 200 }\n${coordination('')}`);
    plugin(root, 'asker', 'hog.mjs', 'node', coordination('hog.hog'));
    plugin(root, 'pyemit', 'emitter.py', 'python', 'coordination:\n  exposesMethods: [try_emit]\n  messaging: true\n  publishes: [allowed.*]\n');
    plugin(root, 'goemit', 'emitter.go', 'go', 'coordination:\n  exposesMethods: [try_emit]\n  messaging: true\n  publishes: [allowed.*]\n');
    plugin(root, 'rsemit', 'emitter.rs', 'rust', 'coordination:\n  exposesMethods: [try_emit]\n  messaging: true\n  publishes: [allowed.*]\n');
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-author-home-'), LOGOMESH_INSTANCE: `${instance()}-author` });
    host = await Controller.create({ log: silentLogger, home, stopGraceMs: 2_000 });
    endpoints = await openEndpoints(host, silentLogger, () => undefined);
    host.loadDirectory(root);
    await host.startAll();
  }, 600_000);
  afterAll(async () => {
    await host?.close();
    await endpoints?.close();
  });

  const ready = async (id: string) => {
    for (let i = 0; i < 200 && host.status(id).state !== 'ready'; i++) await sleep(100);
    expect(host.status(id).state).toBe('ready');
  };

  it('a caller whose target is killed for memory gets LM_RESOURCE_MEMORY, and the last output stays in logs', async () => {
    await expect(host.call('hog', 'hog', {}, 30_000)).rejects.toMatchObject({ code: 'LM_RESOURCE_MEMORY', message: expect.stringContaining('exceeded its memory limit of 64 MB') });
    const last = host.logs('hog', 1000).map((l) => l.text).filter((t) => t.startsWith('allocated'));
    expect(last.length).toBeGreaterThan(3);
    expect(last.at(-1)).toMatch(/^allocated \d+ MB$/);
    await ready('hog');
    // The lines of the killed container are still there after the restart.
    expect(host.logs('hog', 1000).map((l) => l.text)).toContain(last.at(-1));
    // A plugin calling it is told the same.
    const viaPlugin = (await host.call('asker', 'call', { target: 'hog.hog' }, 30_000)) as { code: string; message: string };
    expect(viaPlugin).toMatchObject({ code: 'LM_RESOURCE_MEMORY', message: expect.stringContaining('during the call to hog') });
    await ready('hog');
  });

  it('an emitter whose event is refused learns it when it asks for the answer (in every SDK)', async () => {
    expect(await host.call('asker', 'tryEmit', { topic: 'allowed.one', ack: true })).toEqual({ ok: true });
    expect(await host.call('asker', 'tryEmit', { topic: 'secret.one', ack: true })).toMatchObject({ code: 'LM_PERMISSION_DENIED', message: expect.stringContaining("may not publish 'secret.one'") });
    // Without it, as before: written, the refusal only logged.
    expect(await host.call('asker', 'tryEmit', { topic: 'secret.one', ack: false })).toEqual({ ok: true });
    expect(await host.call('pyemit', 'try_emit', { topic: 'allowed.two', ack: true })).toEqual({ ok: true });
    expect(await host.call('pyemit', 'try_emit', { topic: 'secret.two', ack: true })).toMatchObject({ code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('coordination.publishes') });
    expect(await host.call('goemit', 'try_emit', { topic: 'allowed.three', ack: true })).toEqual({ ok: true });
    expect(await host.call('goemit', 'try_emit', { topic: 'secret.three', ack: true })).toMatchObject({ code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('coordination.publishes') });
    expect(await host.call('goemit', 'try_emit', { topic: 'secret.three', ack: false })).toEqual({ ok: true });
    expect(await host.call('rsemit', 'try_emit', { topic: 'allowed.four', ack: true })).toEqual({ ok: true });
    expect(await host.call('rsemit', 'try_emit', { topic: 'secret.four', ack: true })).toMatchObject({ code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('coordination.publishes') });
    expect(await host.call('rsemit', 'try_emit', { topic: 'secret.four', ack: false })).toEqual({ ok: true });
  });

  it('call --json prints the whole coded error with its details', async () => {
    const env = { LOGOMESH_HOME: host.home.dir };
    const r = await runCli(['call', 'hog.nothing', '{}', '--json'], { env });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining("'nothing'"), details: expect.any(Object) } });
    const ok = await runCli(['call', 'asker.tryEmit', '{"topic":"allowed.x"}', '--json'], { env });
    expect(JSON.parse(ok.stdout)).toEqual({ ok: true });
  });
});
