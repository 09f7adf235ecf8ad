import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { resolveHome, type Home } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { parseState, type ControllerState } from '../../src/controller/state-store.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { loadPolicy, type Policy } from '../../src/policy/policy.js';

/**
 * What a controller saves of the operator's permission changes, and what the next controller
 * of the same home makes of it, without containers: the plugins are only loaded. A killed
 * controller is played by saving state.json, closing the controller (which leaves only the
 * permissions in it, as a clean stop does) and putting the file back.
 */
const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-restore-')));
let engine: Server;
const sock = path.join(dir, 'docker.sock');
let policy: Policy;
let shared: string;
let pluginsDir: string;

beforeAll(async () => {
  // An engine that answers the ping and nothing else: enough for load, grant and revoke.
  engine = createServer((req, res) => (req.url?.endsWith('/_ping') ? res.writeHead(200).end('OK') : res.writeHead(404).end()));
  await new Promise<void>((r) => engine.listen(sock, () => r()));
  shared = path.join(dir, 'shared');
  mkdirSync(path.join(shared, 'a'), { recursive: true });
  mkdirSync(path.join(shared, 'b'));
  const policyFile = path.join(dir, 'policy.yaml');
  writeFileSync(policyFile, `hostPaths:\n  - { path: ${shared}, permissions: [read] }\n`);
  policy = loadPolicy(policyFile);
  pluginsDir = path.join(dir, 'plugins');
  for (const id of ['caller', 'fetcher']) {
    mkdirSync(path.join(pluginsDir, id), { recursive: true });
    writeFileSync(path.join(pluginsDir, id, 'main.mjs'), '\n');
    writeFileSync(
      path.join(pluginsDir, id, 'plugin.yaml'),
      `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  consumesMethods: [other.a, other.b, other.c]\n` +
        // api.example.com listed twice, in two spellings (issue 10): one host all the same.
        (id === 'fetcher' ? 'capabilities:\n  - { id: web, scope: network, hosts: ["api.example.com:443", "cdn.example.com:443", "API.Example.com:443"] }\nresources: { maxNetworkConnections: 4 }\n' : ''),
    );
  }
});
afterAll(async () => {
  await new Promise<void>((r) => engine.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function newHome(): Home {
  return resolveHome({ LOGOMESH_HOME: path.join(dir, `home-${++n}`), LOGOMESH_INSTANCE: `restore-test-${n}` });
}

async function controller(home: Home): Promise<Controller> {
  const host = await Controller.create({ log: silentLogger, home, docker: new Docker({ socketPath: sock }), policy, engineCheckMs: 60_000 });
  host.loadDirectory(pluginsDir);
  return host;
}

function state(home: Home): ControllerState {
  return parseState(readFileSync(home.stateFile, 'utf8'))!;
}

/** Kill the controller as far as its successor can tell: its state.json stays as it was. */
async function kill(host: Controller, edit: (s: ControllerState) => ControllerState = (s) => s): Promise<void> {
  const saved = edit(state(host.home));
  await host.close();
  writeFileSync(host.home.stateFile, JSON.stringify(saved));
}

function audit(home: Home): string[] {
  return readAudit(home.auditFile).map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}${e.code ? ` ${e.code}` : ''}`);
}

const may = (host: Controller, action: string, resource: string) => host.checkCapability('caller', action, resource).allowed;

describe('operator permissions across a controller restart', () => {
  it('saves every change at once, and a new controller applies them at load', async () => {
    const home = newHome();
    const first = await controller(home);
    first.revokeMethod('caller', 'other.a');
    expect(state(home).plugins.caller?.permissions).toEqual({ revokedMethods: ['other.a'] });
    first.grantMethod('caller', 'other.b', 600_000);
    await first.grantPath('caller', `${path.join(shared, 'a')}:/grants/a`);
    expect(await first.revokeHost('fetcher', 'api.example.com:443')).toBe(false); // not running: at its next start
    const saved = state(home).plugins;
    expect(saved.caller?.permissions?.methodGrants).toEqual([{ method: 'other.b', expiresAt: expect.any(Number) }]);
    expect(saved.caller?.permissions?.pathGrants).toMatchObject([{ name: 'a', hostPath: path.join(shared, 'a'), containerPath: '/grants/a', writable: false }]);
    expect(saved.fetcher?.permissions).toEqual({ revokedHosts: ['api.example.com:443'] });
    await kill(first);

    const second = await controller(home);
    try {
      expect(second.grants.isMethodRevoked('caller', 'other.a')).toBe(true);
      expect(second.grants.isMethodRevoked('caller', 'other.b')).toBe(false);
      expect(second.grantedPaths('caller').map((g) => g.name)).toEqual(['a']);
      expect(second.checkCapability('fetcher', 'connect', 'api.example.com:443')).toMatchObject({ allowed: false, reason: "the operator revoked 'api.example.com:443'" });
      expect(second.checkCapability('fetcher', 'connect', 'cdn.example.com:443').allowed).toBe(true);
      // Written back at once: a third controller would find the same.
      expect(state(home).plugins.caller?.permissions).toEqual(saved.caller?.permissions);
      await vi.waitFor(() =>
        expect(audit(home)).toEqual(
          expect.arrayContaining(['controller revoke caller:other.a revoked', 'controller grant caller:other.b granted', 'controller grant caller:path:a granted', 'controller revoke fetcher:host:api.example.com:443 revoked']),
        ),
      );
    } finally {
      await second.close();
    }
  });

  it('a clean stop keeps the permissions and the plugin folders (and nothing to adopt); without either, it leaves no state file', async () => {
    const home = newHome();
    const first = await controller(home);
    first.revokeMethod('caller', 'other.a');
    await first.close();
    const folders = ['caller', 'fetcher'].map((id) => path.join(pluginsDir, id));
    expect(state(home)).toEqual({ version: 1, folders, plugins: { caller: { restarts: 0, manifestHash: expect.any(String), permissions: { revokedMethods: ['other.a'] } } } });
    const second = await controller(home);
    try {
      expect(second.grants.isMethodRevoked('caller', 'other.a')).toBe(true);
      second.grantMethod('caller', 'other.a');
    } finally {
      await second.close();
    }
    expect(state(home)).toEqual({ version: 1, folders, plugins: {} });
    // A controller that loads nothing and stops leaves no state file.
    const third = await Controller.create({ log: silentLogger, home, docker: new Docker({ socketPath: sock }), policy, engineCheckMs: 60_000 });
    expect(third.savedFolders()).toEqual(folders);
    await third.close();
    expect(existsSync(home.stateFile)).toBe(false);
  });

  it('revokes what ran out while no controller ran, audited as expiry', async () => {
    const home = newHome();
    const first = await controller(home);
    first.grantMethod('caller', 'other.c', 600_000);
    await first.grantPath('caller', path.join(shared, 'b'), { ttlMs: 600_000 });
    const past = Date.now() - 1_000;
    await kill(first, (s) => {
      const p = s.plugins.caller!.permissions!;
      return { ...s, plugins: { ...s.plugins, caller: { ...s.plugins.caller!, permissions: { methodGrants: p.methodGrants!.map((g) => ({ ...g, expiresAt: past })), pathGrants: p.pathGrants!.map((g) => ({ ...g, expiresAt: past })) } } } };
    });
    const second = await controller(home);
    try {
      expect(second.grants.isMethodRevoked('caller', 'other.c')).toBe(true);
      expect(second.grantedPaths('caller')).toEqual([]);
      expect(state(home).plugins.caller?.permissions).toEqual({ revokedMethods: ['other.c'] });
      await vi.waitFor(() => expect(audit(home)).toEqual(expect.arrayContaining(['expiry revoke caller:other.c revoked', 'expiry revoke caller:path:b revoked'])));
    } finally {
      await second.close();
    }
  });

  it('a restored timed grant runs out with the time it had left', async () => {
    const home = newHome();
    const first = await controller(home);
    first.grantMethod('caller', 'other.c', 600_000);
    await kill(first, (s) => ({ ...s, plugins: { ...s.plugins, caller: { ...s.plugins.caller!, permissions: { methodGrants: [{ method: 'other.c', expiresAt: Date.now() + 300 }] } } } }));
    const second = await controller(home);
    try {
      expect(may(second, 'call', 'other.c')).toBe(true);
      await vi.waitFor(() => expect(second.grants.isMethodRevoked('caller', 'other.c')).toBe(true), { timeout: 3_000 });
      expect(state(home).plugins.caller?.permissions).toEqual({ revokedMethods: ['other.c'] });
    } finally {
      await second.close();
    }
  });

  it('drops a restored path grant whose path resolves elsewhere now, or that the policy no longer allows', async () => {
    const home = newHome();
    const link = path.join(shared, 'current');
    symlinkSync(path.join(shared, 'a'), link);
    const first = await controller(home);
    await first.grantPath('caller', link);
    await first.grantPath('caller', `${path.join(shared, 'b')}:/grants/b`);
    await kill(first, (s) => {
      const p = s.plugins.caller!.permissions!;
      // A grant edited by hand to point outside the policy is checked like a new one.
      const outside = path.join(dir, 'outside');
      mkdirSync(outside, { recursive: true });
      const forged = p.pathGrants!.map((g) => (g.name === 'b' ? { ...g, requested: outside, hostPath: outside } : g));
      return { ...s, plugins: { ...s.plugins, caller: { ...s.plugins.caller!, permissions: { pathGrants: forged } } } };
    });
    rmSync(link);
    symlinkSync(path.join(shared, 'b'), link);
    const second = await controller(home);
    try {
      expect(second.grantedPaths('caller')).toEqual([]);
      expect(state(home).plugins.caller?.permissions).toBeUndefined();
      await vi.waitFor(() =>
        expect(audit(home)).toEqual(expect.arrayContaining(['controller grant caller:path:current denied LM_GRANT_PATH', 'controller grant caller:path:b denied LM_POLICY_DENIED'])),
      );
    } finally {
      await second.close();
      rmSync(link);
    }
  });

  it('keeps the saved permissions of a plugin the new controller has not loaded', async () => {
    const home = newHome();
    const first = await controller(home);
    first.revokeMethod('caller', 'other.a');
    await kill(first);
    const second = await Controller.create({ log: silentLogger, home, docker: new Docker({ socketPath: sock }), policy, engineCheckMs: 60_000 });
    try {
      second.loadDirectory(path.join(pluginsDir, 'fetcher'));
      expect(state(home).plugins.caller?.permissions).toEqual({ revokedMethods: ['other.a'] });
    } finally {
      await second.close();
    }
  });
});

describe('host revocations', () => {
  it('act on the host in whatever spelling: revoking one refuses every spelling, granting another gives it back', async () => {
    const home = newHome();
    const host = await controller(home);
    try {
      await host.revokeHost('fetcher', 'API.EXAMPLE.COM.:0443');
      expect(state(home).plugins.fetcher?.permissions).toEqual({ revokedHosts: ['api.example.com:443'] });
      for (const spelled of ['api.example.com:443', 'API.Example.com:443', 'api.example.com.:443']) {
        expect(host.checkCapability('fetcher', 'connect', spelled), spelled).toMatchObject({ allowed: false, reason: "the operator revoked 'api.example.com:443'" });
      }
      expect(host.checkCapability('fetcher', 'connect', 'cdn.example.com:443').allowed).toBe(true);
      await host.grantHost('fetcher', 'api.Example.COM:443');
      expect(host.checkCapability('fetcher', 'connect', 'API.example.com.:443').allowed).toBe(true);
      expect(state(home).plugins.fetcher?.permissions).toBeUndefined();
    } finally {
      await host.close();
    }
  });

  it('saved by an earlier version in another spelling are read in the normal form', async () => {
    const home = newHome();
    const first = await controller(home);
    await first.revokeHost('fetcher', 'api.example.com:443');
    await kill(first, (s) => ({ ...s, plugins: { ...s.plugins, fetcher: { ...s.plugins.fetcher!, permissions: { revokedHosts: ['API.Example.com.:443'] } } } }));
    const second = await controller(home);
    try {
      expect(state(home).plugins.fetcher?.permissions).toEqual({ revokedHosts: ['api.example.com:443'] });
      await second.grantHost('fetcher', 'api.example.com:443');
      expect(second.checkCapability('fetcher', 'connect', 'api.example.com:443').allowed).toBe(true);
    } finally {
      await second.close();
    }
  });

  it('stay until granted back; only manifest hosts can be revoked or granted', async () => {
    const home = newHome();
    const host = await controller(home);
    try {
      await host.revokeHost('fetcher', 'api.example.com:443');
      await expect(host.revokeHost('fetcher', 'api.example.com')).rejects.toMatchObject({ code: 'LM_PERMISSION_DENIED', details: { path: '/capabilities/0/hosts' } });
      await expect(host.grantHost('fetcher', 'evil.example.com:443')).rejects.toMatchObject({
        code: 'LM_PERMISSION_DENIED',
        details: { file: path.join(pluginsDir, 'fetcher', 'plugin.yaml'), path: '/capabilities/0/hosts', found: 'api.example.com:443, cdn.example.com:443' },
      });
      await expect(host.grantHost('caller', 'api.example.com:443')).rejects.toMatchObject({ code: 'LM_PERMISSION_DENIED', details: { path: '/capabilities' } });
      expect(host.checkCapability('fetcher', 'connect', 'api.example.com:443').allowed).toBe(false);
      await host.grantHost('fetcher', 'api.example.com:443');
      expect(host.checkCapability('fetcher', 'connect', 'api.example.com:443').allowed).toBe(true);
      expect(state(home).plugins.fetcher?.permissions).toBeUndefined();
      await vi.waitFor(() =>
        expect(audit(home)).toEqual(
          expect.arrayContaining([
            'operator revoke fetcher:host:api.example.com:443 revoked',
            'operator revoke fetcher:host:api.example.com denied LM_PERMISSION_DENIED',
            'operator grant fetcher:host:evil.example.com:443 denied LM_PERMISSION_DENIED',
            'operator grant fetcher:host:api.example.com:443 granted',
          ]),
        ),
      );
    } finally {
      await host.close();
    }
  });
});
