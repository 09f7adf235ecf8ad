import { chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { labelFilter } from '../../src/labels.js';
import { resolveHome } from '../../src/controller/home.js';
import { Controller, type ControllerOptions } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { loadPolicy, NO_POLICY, type Policy } from '../../src/policy/policy.js';
import { pluginGid, pluginUid } from '../../src/runtimes/runtime.js';
import { generateKeyFiles } from '../../src/signing/keys.js';
import { signPlugin } from '../../src/signing/signature.js';
import { docker, instance, REPO, sleep, tempDir } from '../integration/support.js';

/**
 * What was checked is what runs, under a controller (`logomesh up`): the manifest verified
 * is the one loaded, host paths are resolved from descriptors before each container, and a
 * path revocation ends the access at once. Swaps happen in test hooks, never by timing.
 */

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

const CAPS = [
  'capabilities:',
  '  - { id: data, scope: filesystem, permissions: [read], paths: ["./data/**"] }',
  '  - { id: out, scope: filesystem, permissions: [read, write], paths: ["./out/**"] }',
];

/** The files plugin (read, write, exists, list over the hub) with a read-only data folder and a writable out folder. */
/** A plugin's own user and group under the controller of this test (`hostFor(suffix)`). */
const idsOf = (suffix: string, plugin: string) => [pluginUid(`${instance()}-${suffix}`, plugin), pluginGid(`${instance()}-${suffix}`, plugin)] as const;

function filesPlugin(root: string, suffix: string, id = 'files', extra: string[] = []): string {
  const dir = path.join(root, id);
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  mkdirSync(path.join(dir, 'out'));
  chownSync(path.join(dir, 'out'), ...idsOf(suffix, id));
  writeFileSync(path.join(dir, 'data', 'data.txt'), "the plugin's own data\n");
  copyFileSync(path.join(FIX, 'files.mjs'), path.join(dir, 'main.mjs'));
  const manifest = [`id: ${id}`, 'version: 1.0.0', 'runtime: node', 'entrypoint: main.mjs', 'resources: { maxMemoryMB: 96, maxCpuPercent: 50 }', ...CAPS, 'coordination:', '  exposesMethods: [read, write, exists, list]', ...extra];
  writeFileSync(path.join(dir, 'plugin.yaml'), `${manifest.join('\n')}\n`);
  return dir;
}

function swapForSymlink(dir: string, name: string, target: string): void {
  renameSync(path.join(dir, name), path.join(dir, `${name}.old`));
  symlinkSync(target, path.join(dir, name));
}

let host: Controller | undefined;
afterEach(async () => {
  const inst = host?.home.instance;
  await host?.close();
  host = undefined;
  if (inst) expect((await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) })).length).toBe(0);
});

async function hostFor(suffix: string, policy: Policy, extra: Partial<ControllerOptions> = {}): Promise<Controller> {
  const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-${suffix}` });
  host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 5_000, policy, kernelLog: false, ...extra });
  return host;
}

function audit(h: Controller, plugin: string) {
  return readAudit(h.home.auditFile, { plugin });
}

describe('the manifest verified is the manifest loaded', () => {
  it('a manifest swapped after it was read (the signed one put back) is refused at load, and audited', async () => {
    const keys = tempDir('lm-keys-');
    const key = generateKeyFiles(path.join(keys, 'release'));
    writeFileSync(path.join(keys, 'policy.yaml'), 'signatures:\n  required: true\n  trustedKeys: [release.pub]\n');
    const dir = filesPlugin(tempDir('lm-plugins-'), 'swap-manifest');
    signPlugin(dir, key.keyFile);
    const h = await hostFor('swap-manifest', loadPolicy(path.join(keys, 'policy.yaml')));
    const signed = readFileSync(path.join(dir, 'plugin.yaml'), 'utf8');
    // Unsigned: it may call the vault's secrets, which the signed manifest does not allow.
    writeFileSync(path.join(dir, 'plugin.yaml'), signed.replace('  exposesMethods: [read, write, exists, list]', '  exposesMethods: [read, write, exists, list]\n  consumesMethods: [vault.read_secret]'));
    const loaded = loadManifest(dir);
    writeFileSync(path.join(dir, 'plugin.yaml'), signed);
    expect(loaded.manifest.coordination.consumesMethods).toEqual(['vault.read_secret']);
    let err: unknown;
    try {
      h.load([loaded]);
    } catch (e) {
      err = e;
    }
    expect((err as LogoMeshError).code).toBe('LM_SIGNATURE');
    expect((err as LogoMeshError).message).toContain('the manifest that was loaded (plugin.yaml, sha256');
    expect(h.list()).toEqual([]);
    await vi.waitFor(() => expect(audit(h, 'files').filter((e) => e.action === 'verify').map((e) => `${e.result} ${e.code}`)).toEqual(['denied LM_SIGNATURE']));
  });
});

describe('declared paths on a restart', () => {
  it("a folder swapped for a symlink to the controller's own sockets folder is refused with LM_PATH_CHANGED, audited, and not retried", async () => {
    const dir = filesPlugin(tempDir('lm-plugins-'), 'swap-restart');
    const h = await hostFor('swap-restart', NO_POLICY);
    h.loadDirectory(dir);
    await h.startAll();
    expect(await h.call('files', 'list', { path: '/plugin/data' })).toEqual({ ok: ['data.txt'] });
    swapForSymlink(dir, 'data', h.home.socketsDir);
    await expect(h.restart('files')).rejects.toMatchObject({ code: 'LM_PATH_CHANGED', message: expect.stringContaining(`found a symlink (to ${h.home.socketsDir})`) });
    expect(h.status('files')).toMatchObject({ state: 'failed', lastError: { code: 'LM_PATH_CHANGED' } });
    expect((await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(h.home.instance)) })).length).toBe(0);
    await vi.waitFor(() =>
      expect(audit(h, 'files').filter((e) => e.action === 'mount' && e.result === 'denied')).toEqual([
        expect.objectContaining({ who: 'controller', resource: `files:path:${path.join(dir, 'data')}`, code: 'LM_PATH_CHANGED' }),
      ]),
    );
  });

  it('folders swapped between the check and the create: the new container gets the folders that were checked', async () => {
    const root = tempDir('lm-plugins-');
    const dir = filesPlugin(root, 'swap-create');
    const elsewhere = realpathSync(tempDir('lm-host-tmp-'));
    chownSync(elsewhere, ...idsOf('swap-create', 'files'));
    let armed = false;
    const h = await hostFor('swap-create', NO_POLICY, {
      testHooks: {
        afterMounts: (id) => {
          if (!armed || id !== 'files') return;
          armed = false;
          swapForSymlink(dir, 'data', h.home.socketsDir);
          swapForSymlink(dir, 'out', elsewhere);
        },
      },
    });
    h.loadDirectory(dir);
    await h.startAll();
    armed = true;
    await h.restart('files');
    expect(armed).toBe(false);
    expect(await h.call('files', 'list', { path: '/plugin/data' })).toEqual({ ok: ['data.txt'] });
    expect(await h.call('files', 'exists', { path: '/plugin/data/files/hub.sock' })).toBe(false);
    expect(await h.call('files', 'write', { path: '/plugin/out/x.txt', data: 'mine' })).toEqual({ ok: true });
    expect(readFileSync(path.join(dir, 'out.old', 'x.txt'), 'utf8')).toBe('mine');
    expect(readdirSync(elsewhere)).toEqual([]);
  });
});

describe('operator path grants', () => {
  it('a granted folder swapped for a symlink between the re-check and the create: the container gets the folder granted', async () => {
    const shared = realpathSync(tempDir('lm-shared-'));
    const granted = path.join(shared, 'granted');
    mkdirSync(granted);
    writeFileSync(path.join(granted, 'note.txt'), 'granted by the operator');
    const secretDir = realpathSync(tempDir('lm-host-secret-'));
    writeFileSync(path.join(secretDir, 'secret.txt'), 'host secret');
    const policyFile = path.join(tempDir('lm-policy-'), 'policy.yaml');
    writeFileSync(policyFile, `hostPaths:\n  - { path: ${shared}, permissions: [read] }\n`);
    let armed = false;
    const h = await hostFor('grant-swap', loadPolicy(policyFile), {
      testHooks: {
        afterMounts: () => {
          if (!armed) return;
          armed = false;
          swapForSymlink(shared, 'granted', secretDir);
        },
      },
    });
    h.loadDirectory(filesPlugin(tempDir('lm-plugins-'), 'grant-swap'));
    await h.startAll();
    armed = true;
    await h.grantPath('files', `${granted}:g`);
    expect(armed).toBe(false);
    expect(await h.call('files', 'list', { path: '/grants/g' })).toEqual({ ok: ['note.txt'] });
    expect(await h.call('files', 'read', { path: '/grants/g/note.txt' })).toEqual({ ok: 'granted by the operator' });
    // The next start resolves the grant again, and refuses it now.
    await expect(h.restart('files')).rejects.toMatchObject({ code: 'LM_GRANT_PATH' });
    await vi.waitFor(() => expect(audit(h, 'files').some((e) => e.action === 'mount' && e.result === 'denied' && e.code === 'LM_GRANT_PATH')).toBe(true));
  });
});

describe('revoking a write grant bites at once', () => {
  function writerPlugin(root: string): string {
    const dir = path.join(root, 'writer');
    mkdirSync(dir, { recursive: true });
    copyFileSync(path.join(FIX, 'stubborn-writer.mjs'), path.join(dir, 'main.mjs'));
    writeFileSync(path.join(dir, 'plugin.yaml'), ['id: writer', 'version: 1.0.0', 'runtime: node', 'entrypoint: main.mjs', 'resources: { maxMemoryMB: 96 }', 'coordination:', '  exposesMethods: [ping]', ''].join('\n'));
    return dir;
  }

  async function writerHost(suffix: string, stopGraceMs = 5_000): Promise<{ h: Controller; shared: string; plugins: string }> {
    const shared = realpathSync(tempDir('lm-shared-'));
    chownSync(shared, ...idsOf(suffix, 'writer'));
    const policyFile = path.join(tempDir('lm-policy-'), 'policy.yaml');
    const plugins = realpathSync(tempDir('lm-plugins-'));
    writeFileSync(policyFile, `hostPaths:\n  - { path: ${shared}, permissions: [read, write] }\n  - { path: ${plugins}, permissions: [read, write] }\n`);
    const h = await hostFor(suffix, loadPolicy(policyFile), { stopGraceMs });
    h.loadDirectory(writerPlugin(tempDir('lm-writer-')));
    h.loadDirectory(filesPlugin(plugins, suffix));
    await h.startAll();
    return { h, shared, plugins };
  }

  const sizeOf = (f: string) => (existsSync(f) ? statSync(f).size : 0);

  it('a plugin that ignores the shutdown message and SIGTERM writes nothing after revoke returns; the audit says when access ended', async () => {
    const { h, shared } = await writerHost('revoke-now');
    await h.grantPath('writer', `${shared}:w`, { write: true });
    const log = path.join(shared, 'log');
    await vi.waitFor(() => expect(sizeOf(log)).toBeGreaterThan(100), { timeout: 10_000 });
    const asked = Date.now();
    await h.revokePath('writer', 'w');
    const size = sizeOf(log);
    // Not the two 5 s graces of a stop: killed at once (the new container's start is in this time too).
    expect(Date.now() - asked).toBeLessThan(5_000);
    await sleep(500);
    expect(sizeOf(log)).toBe(size);
    expect(h.status('writer').state).toBe('ready');
    await vi.waitFor(() => {
      const entry = audit(h, 'writer').find((e) => e.action === 'revoke' && e.resource === 'writer:path:w');
      expect(entry?.reason).toMatch(/^\/.* at \/grants\/w \(rw\); access ended at \S+Z: the container was killed at once, without grace$/);
      const ended = Date.parse(/access ended at (\S+Z)/.exec(entry!.reason!)![1]!);
      expect(ended).toBeGreaterThanOrEqual(asked);
    });
  });

  it('an expired write grant ends the same way, by the expiry', async () => {
    // Short graces here: the grant's own recreation (a stop of a plugin that ignores it) must end well within the TTL.
    const { h, shared } = await writerHost('expire-now', 1_000);
    await h.grantPath('writer', `${shared}:w`, { write: true, ttlMs: 6_000 });
    const log = path.join(shared, 'log');
    await vi.waitFor(() => expect(sizeOf(log)).toBeGreaterThan(0), { timeout: 10_000 });
    await vi.waitFor(() => expect(audit(h, 'writer').some((e) => e.who === 'expiry' && e.action === 'revoke' && /access ended at/.test(e.reason ?? ''))).toBe(true), { timeout: 15_000 });
    const size = sizeOf(log);
    await sleep(500);
    expect(sizeOf(log)).toBe(size);
  });

  it("a grant that covers another plugin's folder is refused, even where the policy allows its parent", async () => {
    const { h, plugins } = await writerHost('other-folder', 1_000);
    await expect(h.grantPath('writer', `${plugins}:all`, { write: true })).rejects.toMatchObject({ code: 'LM_GRANT_PATH', message: expect.stringContaining(`overlaps the folder ${path.join(plugins, 'files')} of plugin files`) });
    await expect(h.grantPath('writer', `${path.join(plugins, 'files', 'out')}:out`, { write: true })).rejects.toMatchObject({ code: 'LM_GRANT_PATH', message: expect.stringContaining('of plugin files') });
    await vi.waitFor(() => expect(audit(h, 'writer').filter((e) => e.action === 'grant' && e.result === 'denied').map((e) => e.code)).toEqual(['LM_GRANT_PATH', 'LM_GRANT_PATH']));
  });
});
