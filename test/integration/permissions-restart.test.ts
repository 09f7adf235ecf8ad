import { chmodSync, copyFileSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ignoreGone } from '../../src/engine/cleanup.js';
import { labelFilter, ownerLabels } from '../../src/labels.js';
import { resolveHome, type Home } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { loadPolicy } from '../../src/policy/policy.js';
import { startHelperServer, type HelperServer } from './helper-server.js';
import { docker, instance, REPO, runCli, sleep, tempDir } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

function plugin(root: string, id: string, file: string, yaml: string): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, file), path.join(dir, 'main.mjs'));
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\n${yaml}\n`);
}

async function leftovers(inst: string): Promise<number> {
  return (await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) })).length;
}

/**
 * A controller killed with SIGKILL (`up -d`, then kill -9 of its pid) and a new one of the
 * same home, in this process, that adopts the plugins: the operator's method revocation,
 * path grant and expired timed grant are in force before the plugins' first call.
 */
describe('operator permissions survive kill -9 of the controller', () => {
  it('a revoked method stays revoked, a path grant stays mounted and listed, a grant that ran out meanwhile is revoked', async () => {
    const shared = realpathSync(tempDir('lm-shared-restart-'));
    chmodSync(shared, 0o755); // mkdtemp makes it 0700: the plugin's user could not enter it
    writeFileSync(path.join(shared, 'note.txt'), 'granted before the kill\n');
    const policyFile = path.join(tempDir('lm-policy-restart-'), 'policy.yaml');
    writeFileSync(policyFile, `hostPaths:\n  - { path: ${shared}, permissions: [read] }\n`);
    const root = tempDir('lm-plugins-restart-');
    plugin(root, 'files', 'files.mjs', 'coordination:\n  exposesMethods: [read, write, exists, list]');
    plugin(root, 'caller', 'probe.mjs', 'coordination:\n  exposesMethods: [echo, whoami, never, crash, call, emit, seen]\n  consumesMethods: [files.read, files.exists]\n  subscribes: [news.*]');
    const inst = `${instance()}-perm-restart`;
    const env = { LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst };
    const home: Home = resolveHome(env);
    const cli = async (...args: string[]) => {
      const r = await runCli(args, { env, timeoutMs: 120_000 });
      expect(r.code, `logomesh ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const readNote = { path: '/grants/shared/note.txt' };
    let second: Controller | undefined;
    try {
      const up = await runCli(['up', '-d', '--policy', policyFile, root], { env, timeoutMs: 120_000 });
      expect(up.code, up.stderr).toBe(0);
      const pid = Number(/\(pid (\d+)\)/.exec(up.stderr)?.[1]);
      expect(pid).toBeGreaterThan(0);

      await cli('grant', 'files', 'path', `${shared}:/grants/shared`, '--read');
      await cli('revoke', 'caller', 'files.read');
      const call = async (target: string, data: unknown) => JSON.parse(await cli('call', 'caller.call', JSON.stringify({ target, data }))) as { ok?: unknown; code?: string };
      expect(await call('files.read', readNote)).toMatchObject({ code: 'LM_PERMISSION_DENIED' });
      expect(await call('files.exists', { path: '/grants/shared' })).toEqual({ ok: true });
      // The host kind of the command goes through the same socket; files has no network.
      const noHost = await runCli(['revoke', 'files', 'host', 'api.example.com:443'], { env });
      expect(noHost.code).toBe(1);
      expect(noHost.stderr).toMatch(/^LM_PERMISSION_DENIED: plugin files does not list 'api.example.com:443' under the hosts of a network capability/m);
      const before = JSON.parse(await cli('ps', '--json')) as { id: string; containerId: string }[];
      const ttlMs = 3_000;
      const grantedAt = Date.now();
      await cli('grant', 'caller', 'files.exists', '--ttl', String(ttlMs));

      process.kill(pid, 'SIGKILL');
      // Still running at the kill: it is the new controller that finds it ran out.
      expect(JSON.parse(readFileSync(home.stateFile, 'utf8')).plugins.caller.permissions).toMatchObject({ revokedMethods: ['files.read'], methodGrants: [{ method: 'files.exists' }] });
      await sleep(Math.max(0, grantedAt + ttlMs + 500 - Date.now()));
      expect(await leftovers(inst)).toBe(2); // the plugins outlive their controller

      second = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000, policy: loadPolicy(policyFile) });
      second.loadDirectory(root);
      await second.startAll();
      // Adopted, not recreated: the files container too, whose mounts match the restored grant.
      expect(second.list().map((p) => ({ id: p.id, containerId: p.containerId }))).toEqual(before.map((p) => ({ id: p.id, containerId: p.containerId })));
      expect(second.list().map((p) => p.state)).toEqual(['ready', 'ready']);

      expect(await second.call('caller', 'call', { target: 'files.read', data: readNote })).toMatchObject({ code: 'LM_PERMISSION_DENIED' });
      expect(await second.call('caller', 'call', { target: 'files.exists', data: { path: '/grants/shared' } })).toMatchObject({ code: 'LM_PERMISSION_DENIED' });
      expect(await second.call('files', 'read', readNote)).toEqual({ ok: 'granted before the kill\n' });
      expect(second.grantedPaths('files')).toMatchObject([{ name: 'shared', hostPath: shared, containerPath: '/grants/shared', writable: false }]);
      await vi.waitFor(() =>
        expect(readAudit(home.auditFile).map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}`)).toEqual(
          expect.arrayContaining(['expiry revoke caller:files.exists revoked', 'controller revoke caller:files.read revoked', 'controller grant files:path:shared granted']),
        ),
      );
      // Giving the method back works as before, and is saved.
      second.grantMethod('caller', 'files.read');
      expect(await second.call('caller', 'call', { target: 'files.read', data: readNote })).toEqual({ ok: { ok: 'granted before the kill\n' } });
      expect(JSON.parse(readFileSync(home.stateFile, 'utf8')).plugins.caller.permissions).toEqual({ revokedMethods: ['files.exists'] });
    } finally {
      if (second) await second.close();
      else await runCli(['down'], { env, timeoutMs: 60_000 });
    }
    expect(await leftovers(inst)).toBe(0);
  }, 180_000);
});

/**
 * Host revocations through the real egress proxy, with a test-made HTTP server it can reach
 * (as in egress.test.ts): they stick across a restart of the plugin and of the controller,
 * and are applied to a new attachment before the container exists.
 */
describe('host revocations stick until granted back', () => {
  let network: Dockerode.Network;
  let server: HelperServer | undefined;
  const web = `lm-${instance()}-hostrev-web`;
  const inst = `${instance()}-hostrev`;

  beforeAll(async () => {
    const d = await docker();
    network = await d.createNetwork({ Name: `lm-${instance()}-hostrev`, Driver: 'bridge', Internal: true, Labels: ownerLabels('test', instance()) });
    server = await startHelperServer(['python3', '-m', 'http.server', '8080', '--bind', '0.0.0.0'], network.id, web);
  });
  afterAll(async () => {
    await server?.stop();
    await ignoreGone(network?.remove());
  });

  it('revoke refuses at once and after restarts; grant gives the host back', async () => {
    const root = tempDir('lm-plugins-hostrev-');
    const dir = path.join(root, 'fetcher');
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, 'main.mjs'),
      `import http from 'node:http';
import { Plugin } from 'logomesh';
const plugin = new Plugin();
const proxy = new URL(process.env.HTTP_PROXY);
// An absolute URI to the proxy: it answers 403 for a host off the allow-list.
plugin.method('get', ({ url }) => new Promise((resolve) => {
  const req = http.request({ host: proxy.hostname, port: proxy.port, path: url, headers: { Host: new URL(url).host } }, (res) => { res.resume(); resolve(res.statusCode); });
  req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve(e.message));
  req.end();
}));
await plugin.run();
`,
    );
    writeFileSync(
      path.join(dir, 'plugin.yaml'),
      `id: fetcher\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  exposesMethods: [get]\ncapabilities:\n  - { id: web, scope: network, hosts: ["${web}:8080"] }\nresources: { maxNetworkConnections: 4 }\n`,
    );
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst });
    const controller = async () => {
      const h = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000, egressNetworks: [network.id] });
      h.loadDirectory(root);
      await h.startAll();
      return h;
    };
    const get = (h: Controller) => h.call('fetcher', 'get', { url: `http://${web}:8080/` }, 20_000);
    let host = await controller();
    try {
      expect(await get(host)).toBe(200);
      expect(await host.revokeHost('fetcher', `${web}:8080`)).toBe(true); // the running proxy's list changed
      expect(await get(host)).toBe(403);
      await host.restart('fetcher');
      expect(await get(host)).toBe(403);

      // A controller that ends without a clean stop (its state.json left behind).
      const saved = readFileSync(home.stateFile, 'utf8');
      expect(JSON.parse(saved).plugins.fetcher.permissions).toEqual({ revokedHosts: [`${web}:8080`] });
      await host.close();
      writeFileSync(home.stateFile, saved);
      host = await controller();
      expect(await get(host)).toBe(403);

      const before = host.status('fetcher').containerId;
      await host.grantHost('fetcher', `${web}:8080`);
      expect(host.status('fetcher')).toMatchObject({ state: 'ready' });
      expect(host.status('fetcher').containerId).not.toBe(before); // recreated with its full list
      expect(await get(host)).toBe(200);
      await vi.waitFor(() =>
        expect(readAudit(home.auditFile).map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}`)).toEqual(
          expect.arrayContaining([`operator revoke fetcher:host:${web}:8080 revoked`, `controller revoke fetcher:host:${web}:8080 revoked`, `operator grant fetcher:host:${web}:8080 granted`]),
        ),
      );
    } finally {
      await host.close();
    }
    expect(await leftovers(inst)).toBe(0);
  }, 180_000);
});
