import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { labelFilter } from '../../src/labels.js';
import { scaffoldPlugin } from '../../src/scaffold/create.js';
import { DevProcess } from './dev-support.js';
import { docker, instance, REPO, runCli, tempDir } from './support.js';

/** A node plugin from test/fixtures/controller/probe.mjs that calls and depends on others. */
function caller(root: string, id: string, consumes: string[], deps: string[]): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(REPO, 'test/fixtures/controller/probe.mjs'), path.join(dir, 'main.mjs'));
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    // probe.mjs subscribes to news.* in its hello.
    `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ndependencies: { plugins: [${deps.join(', ')}] }\ncoordination:\n  exposesMethods: [echo, whoami, never, crash, call, emit, seen]\n  consumesMethods: [${consumes.join(', ')}]\n  subscribes: [news.*]\n`,
  );
}

async function containerIds(env: Record<string, string>): Promise<Record<string, string>> {
  const ps = await runCli(['ps', '--json'], { env });
  return Object.fromEntries((JSON.parse(ps.stdout) as { id: string; containerId: string }[]).map((p) => [p.id, p.containerId]));
}

async function running(inst: string): Promise<number> {
  return (await (await docker()).listContainers({ filters: JSON.stringify(labelFilter(inst)) })).length;
}

/**
 * The development loop for plugins that depend on each other (issue 18 item 6): `logomesh
 * dev` on a folder of plugins reloads only the one that changed; `--attach` reloads into a
 * running `up`; and a dev session sharing LOGOMESH_INSTANCE with an `up` touches nothing of it.
 */
describe('logomesh dev on a folder of dependent plugins', () => {
  it('a change to one plugin is live without restarting the others that depend on it', async () => {
    const root = tempDir('lm-dev-folder-');
    scaffoldPlugin({ runtime: 'python', name: 'words', dir: path.join(root, 'words') });
    caller(root, 'middle', ['words.hello'], ['words']);
    caller(root, 'front', ['middle.call'], ['middle']);
    const home = tempDir('lm-dev-folder-home-');
    const dev = new DevProcess(root, { LOGOMESH_HOME: home, LOGOMESH_INSTANCE: `${instance()}-devf` });
    try {
      for (const id of ['words', 'middle', 'front']) await dev.waitFor(new RegExp(`${id} started in [\\d.]+ s`), 120_000);
      const env = { LOGOMESH_HOME: home };
      const hello = async () => JSON.parse((await runCli(['call', 'front.call', JSON.stringify({ target: 'middle.call', data: { target: 'words.hello', data: { name: 'Ada' } } })], { env })).stdout) as unknown;
      expect(await hello()).toEqual({ ok: { ok: { greeting: 'Hello, Ada!' } } });
      const before = await containerIds(env);

      const from = dev.stderr.length;
      const main = path.join(root, 'words', 'main.py');
      writeFileSync(main, readFileSync(main, 'utf8').replace('f"Hello, {name}!"', 'f"Howdy, {name}!"'));
      const reloaded = await dev.waitFor(/words reloaded in ([\d.]+) s/, 60_000, from);
      expect(await hello()).toEqual({ ok: { ok: { greeting: 'Howdy, Ada!' } } });
      const after = await containerIds(env);
      expect(after.words).not.toBe(before.words);
      expect({ middle: after.middle, front: after.front }).toEqual({ middle: before.middle, front: before.front });
      expect(dev.stderr.slice(from)).not.toMatch(/(middle|front) (reloaded|started)/);
      console.log(`logomesh dev on a folder of three dependent plugins: one reloaded in ${reloaded[1]} s, the other two untouched`);
    } finally {
      expect(await dev.stop()).toBe(0);
    }
    expect(await running(dev.instance)).toBe(0);
  }, 240_000);

  it('dev with another home and the same LOGOMESH_INSTANCE as a running up leaves the up alone; --attach reloads into it', async () => {
    const shared = `${instance()}-devshared`;
    const upRoot = tempDir('lm-dev-up-');
    caller(upRoot, 'solo', [], []);
    const upEnv = { LOGOMESH_HOME: tempDir('lm-dev-up-home-'), LOGOMESH_INSTANCE: shared };
    const up = await runCli(['up', '-d', upRoot], { env: upEnv });
    expect(up.code, up.stderr).toBe(0);
    try {
      const before = await containerIds(upEnv);
      const devRoot = tempDir('lm-dev-other-');
      caller(devRoot, 'other', [], []);
      const dev = new DevProcess(devRoot, { LOGOMESH_HOME: tempDir('lm-dev-other-home-'), LOGOMESH_INSTANCE: shared });
      try {
        await dev.waitFor(/other started in/, 120_000);
        expect(dev.instance).not.toBe(shared);
        expect(await containerIds(upEnv)).toEqual(before);
      } finally {
        expect(await dev.stop()).toBe(0);
      }
      expect(await containerIds(upEnv)).toEqual(before);
      expect(await running(shared)).toBe(1);

      // --attach: the folder's plugins go into the running up, next to (and depending on) its own.
      const attachRoot = tempDir('lm-dev-attach-');
      caller(attachRoot, 'addon', ['solo.echo'], ['solo']);
      const attached = new DevProcess(attachRoot, { LOGOMESH_HOME: upEnv.LOGOMESH_HOME }, ['--attach']);
      try {
        await attached.waitFor(/addon started in/, 120_000);
        const call = async () => JSON.parse((await runCli(['call', 'addon.call', '{"target":"solo.echo","data":1}'], { env: upEnv })).stdout) as unknown;
        expect(await call()).toEqual({ ok: 1 });
        const addonBefore = (await containerIds(upEnv)).addon;
        const from = attached.stderr.length;
        const yaml = path.join(attachRoot, 'addon', 'plugin.yaml');
        writeFileSync(yaml, readFileSync(yaml, 'utf8').replace('version: 1.0.0', 'version: 1.0.1'));
        await attached.waitFor(/addon reloaded in/, 60_000, from);
        const ids = await containerIds(upEnv);
        expect(ids.addon).not.toBe(addonBefore);
        expect(ids.solo).toBe(before.solo);
        expect(await call()).toEqual({ ok: 1 });
      } finally {
        expect(await attached.stop()).toBe(0);
      }
      expect(attached.stderr).toContain('stopped watching; the plugins keep running');
      expect(Object.keys(await containerIds(upEnv)).sort()).toEqual(['addon', 'solo']);
    } finally {
      expect((await runCli(['down'], { env: upEnv })).code).toBe(0);
    }
  }, 300_000);
});
