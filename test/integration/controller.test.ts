import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { labelFilter } from '../../src/labels.js';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { docker, instance, REPO, tempDir } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

interface Spec {
  file?: string;
  exposes?: string[];
  consumes?: string[];
  messaging?: boolean;
  publishes?: string[];
  subscribes?: string[];
  deps?: string[];
}

/** Write a node plugin folder from one of the controller fixtures. */
function plugin(root: string, id: string, s: Spec = {}): string {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, s.file ?? 'probe.mjs'), path.join(dir, 'main.mjs'));
  const list = (xs: string[] = []) => `[${xs.join(', ')}]`;
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    [
      `id: ${id}`,
      'version: 1.0.0',
      'runtime: node',
      'entrypoint: main.mjs',
      'resources: { maxMemoryMB: 96, maxCpuPercent: 50 }',
      `dependencies: { plugins: ${list(s.deps)} }`,
      'coordination:',
      `  exposesMethods: ${list(s.exposes ?? ['echo', 'whoami', 'never', 'crash', 'call', 'emit', 'seen'])}`,
      `  consumesMethods: ${list(s.consumes)}`,
      `  messaging: ${s.messaging ?? false}`,
      `  publishes: ${list(s.publishes)}`,
      // probe.mjs subscribes to news.* when it starts.
      `  subscribes: ${list(s.subscribes ?? ['news.*'])}`,
    ].join('\n'),
  );
  return dir;
}

async function hostFor(suffix: string, opts: { startTimeoutMs?: number } = {}): Promise<Controller> {
  const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-${suffix}` });
  return Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000, ...opts });
}

async function containersOf(inst: string): Promise<number> {
  return (await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) })).length;
}

describe('controller with plugins in real containers', () => {
  let host: Controller;
  beforeAll(async () => {
    const root = tempDir('lm-plugins-');
    plugin(root, 'alpha', { consumes: ['beta.echo', 'beta.whoami', 'beta.never'], messaging: true, publishes: ['news.*'] });
    plugin(root, 'beta');
    plugin(root, 'gamma', { deps: ['alpha'] });
    plugin(root, 'forger', { file: 'forger.mjs', exposes: ['forge'], consumes: ['beta.whoami'] });
    host = await hostFor('main');
    host.loadDirectory(root);
    await host.startAll();
  });
  afterAll(async () => {
    await host?.close();
  });

  it('starts every plugin in dependency order and reports them ready', () => {
    const list = host.list();
    expect(list.map((p) => [p.id, p.state])).toEqual([
      ['alpha', 'ready'],
      ['beta', 'ready'],
      ['forger', 'ready'],
      ['gamma', 'ready'],
    ]);
    expect(list.find((p) => p.id === 'beta')?.methods).toContain('echo');
  });

  it('routes a plugin-to-plugin call and refuses an undeclared one', async () => {
    expect(await host.call('alpha', 'call', { target: 'beta.echo', data: { n: 1 } })).toEqual({ ok: { n: 1 } });
    const denied = (await host.call('alpha', 'call', { target: 'beta.crash' })) as { code: string; message: string };
    expect(denied.code).toBe('LM_PERMISSION_DENIED');
    expect(denied.message).toContain("'beta.crash'");
    expect(((await host.call('gamma', 'call', { target: 'beta.echo' })) as { code: string }).code).toBe('LM_PERMISSION_DENIED');
  });

  it('a forged from has no effect: the target sees the real sender', async () => {
    const r = (await host.call('forger', 'forge', { target: 'beta' })) as { success: boolean; data: { from: string } };
    expect(r.success).toBe(true);
    expect(r.data.from).toBe('forger');
    expect(await host.call('alpha', 'call', { target: 'beta.whoami' })).toEqual({ ok: { from: 'alpha' } });
    // The attempt is on the record (the trail is appended through a stream: wait for the line).
    const { readAudit } = await import('../../src/audit/audit-log.js');
    await vi.waitFor(() =>
      expect(readAudit(host.home.auditFile, { plugin: 'forger' }).filter((e) => e.who === 'forger' && e.action === 'violation')).toEqual([
        expect.objectContaining({ resource: 'hub', result: 'denied', code: 'LM_PERMISSION_DENIED', reason: "a request claimed to come from 'host'; the hub sent it as forger" }),
      ]),
    );
  });

  it('a method that never answers gets LM_TIMEOUT shortly after its timeout', async () => {
    const t = Date.now();
    const r = (await host.call('alpha', 'call', { target: 'beta.never', timeout: 500 })) as { code: string };
    expect(r.code).toBe('LM_TIMEOUT');
    expect(Date.now() - t).toBeLessThan(3_000);
    await expect(host.call('beta', 'never', {}, 300)).rejects.toMatchObject({ code: 'LM_TIMEOUT' });
  });

  it('a broadcast and an event reach every subscriber (three plugins and the host)', async () => {
    const hostSeen: unknown[] = [];
    const off = host.on('news.*', (d) => hostSeen.push(d));
    host.broadcast('news.flash', { n: 1 });
    await host.call('alpha', 'emit', { topic: 'news.event', data: { n: 2 } });
    await new Promise((r) => setTimeout(r, 300));
    off();
    for (const id of ['beta', 'gamma', 'forger'].filter((p) => p !== 'forger')) {
      const seen = (await host.call(id, 'seen', {})) as { data: { n: number }; from: string }[];
      expect(seen.map((s) => s.data.n).sort(), id).toEqual([1, 2]);
      expect(seen.find((s) => s.data.n === 2)?.from).toBe('alpha');
    }
    const alphaSeen = (await host.call('alpha', 'seen', {})) as { data: { n: number } }[];
    expect(alphaSeen.map((s) => s.data.n)).toEqual([1]); // not its own event
    expect(hostSeen).toEqual([{ n: 2 }]);
  });

  it('a revocation bites at once in a real plugin, a grant with a TTL expires, and the audit trail has it all', async () => {
    expect(await host.call('alpha', 'call', { target: 'beta.echo', data: 'before' })).toEqual({ ok: 'before' });
    const t = Date.now();
    host.revokeMethod('alpha', 'beta.echo');
    const denied = (await host.call('alpha', 'call', { target: 'beta.echo' })) as { code: string; message: string };
    expect(denied.code).toBe('LM_PERMISSION_DENIED');
    expect(denied.message).toContain('revoked');
    console.log(`revocation to denied call: ${Date.now() - t} ms`);
    host.grantMethod('alpha', 'beta.echo', 400);
    expect(await host.call('alpha', 'call', { target: 'beta.echo', data: 'granted' })).toEqual({ ok: 'granted' });
    await new Promise((r) => setTimeout(r, 600));
    expect(((await host.call('alpha', 'call', { target: 'beta.echo' })) as { code: string }).code).toBe('LM_PERMISSION_DENIED');
    expect(() => host.grantMethod('gamma', 'beta.echo')).toThrow(expect.objectContaining({ code: 'LM_PERMISSION_DENIED' }));
    host.grantMethod('alpha', 'beta.echo');
    const { readAudit } = await import('../../src/audit/audit-log.js');
    const trail = readAudit(host.home.auditFile, { plugin: 'alpha' }).map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}`);
    expect(trail).toEqual(expect.arrayContaining(['operator revoke alpha:beta.echo revoked', 'alpha call beta.echo denied', 'operator grant alpha:beta.echo granted', 'expiry revoke alpha:beta.echo revoked', 'alpha call beta.echo allowed']));
  });

  it('a plugin killed during a call fails the caller with LM_PLUGIN_EXITED promptly, and ps says why', async () => {
    const t = Date.now();
    await expect(host.call('beta', 'crash', {}, 20_000)).rejects.toMatchObject({ code: 'LM_PLUGIN_EXITED' });
    expect(Date.now() - t).toBeLessThan(5_000);
    // The hub sees the connection drop first; the engine reports the exit a moment later.
    for (let i = 0; i < 100 && host.status('beta').restarts === 0; i++) await new Promise((r) => setTimeout(r, 50));
    const beta = host.status('beta');
    // The default restart policy (on-failure) brings it back after a short backoff.
    expect(['restarting', 'starting', 'ready']).toContain(beta.state);
    expect(beta.lastError).toMatchObject({ code: 'LM_PLUGIN_EXITED', message: 'plugin beta exited with code 7' });
    expect(beta.restarts).toBe(1);
    for (let i = 0; i < 100 && host.status('beta').state !== 'ready'; i++) await new Promise((r) => setTimeout(r, 100));
    expect(host.status('beta').state).toBe('ready');
    expect(await host.call('alpha', 'call', { target: 'beta.echo', data: 'back' })).toEqual({ ok: 'back' });
  });
});

describe('controller failures', () => {
  it('refuses a dependency cycle and a missing dependency, naming them', async () => {
    const root = tempDir('lm-cycle-');
    plugin(root, 'one', { deps: ['two'] });
    plugin(root, 'two', { deps: ['one'] });
    const host = await hostFor('cycle');
    try {
      expect(() => host.loadDirectory(root)).toThrow(expect.objectContaining({ code: 'LM_DEPENDENCY', message: expect.stringContaining('one -> two -> one') }));
      const root2 = tempDir('lm-missing-');
      plugin(root2, 'lonely', { deps: ['ghost'] });
      expect(() => host.loadDirectory(root2)).toThrow(expect.objectContaining({ code: 'LM_DEPENDENCY', message: expect.stringContaining('lonely -> ghost') }));
    } finally {
      await host.close();
    }
  });

  it('a plugin that never says hello: LM_START_TIMEOUT with its output, container removed', async () => {
    const root = tempDir('lm-silent-');
    plugin(root, 'silent', { file: 'silent.mjs' });
    const host = await hostFor('silent', { startTimeoutMs: 2_500 });
    try {
      host.loadDirectory(root);
      await expect(host.startAll()).rejects.toMatchObject({ code: 'LM_START_TIMEOUT', message: expect.stringContaining('silent plugin up') });
      expect(host.status('silent').state).toBe('failed');
      expect(await containersOf(`${instance()}-silent`)).toBe(0);
    } finally {
      await host.close();
    }
  });

  it('a plugin that exits before hello: LM_PLUGIN_EXITED at once with its output; dependents not started', async () => {
    const root = tempDir('lm-dies-');
    plugin(root, 'dies', { file: 'dies.mjs' });
    plugin(root, 'after', { deps: ['dies'] });
    const host = await hostFor('dies', { startTimeoutMs: 30_000 });
    try {
      host.loadDirectory(root);
      const t = Date.now();
      await expect(host.startAll()).rejects.toMatchObject({ code: 'LM_PLUGIN_EXITED', message: expect.stringContaining('missing configuration') });
      expect(Date.now() - t).toBeLessThan(10_000);
      expect(host.status('after').state).toBe('loaded');
    } finally {
      await host.close();
    }
  });

  it('close leaves no containers and no sockets behind', async () => {
    const root = tempDir('lm-close-');
    plugin(root, 'solo');
    const host = await hostFor('close');
    host.loadDirectory(root);
    await host.startAll();
    expect(await containersOf(`${instance()}-close`)).toBe(1);
    expect(existsSync(path.join(host.home.socketsDir, 'solo', 'hub.sock'))).toBe(true);
    await host.close();
    expect(await containersOf(`${instance()}-close`)).toBe(0);
    expect(existsSync(host.home.socketsDir)).toBe(false);
  });
});
