import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import { parseState, StateStore } from '../../src/controller/state-store.js';
import { ExpiryTimers } from '../../src/grants/expiry.js';
import { Grants } from '../../src/grants/grants.js';
import type { SavedPermissions } from '../../src/grants/saved.js';
import { silentLogger } from '../../src/log.js';
import type { LoadedManifest } from '../../src/manifest/types.js';
import { loadPolicy, type Policy } from '../../src/policy/policy.js';

/**
 * The operator's permissions on their own: no controller, no engine, no hub. Timers are
 * vitest's fake ones, so an expiry happens exactly when the clock says, never by luck.
 */
const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-grants-')));
const shared = path.join(dir, 'shared');
let policy: Policy;

function manifest(id: string, c: { consumes?: string[]; publishes?: string[]; subscribes?: string[]; hosts?: string[] } = {}): LoadedManifest {
  const capabilities = c.hosts ? [{ id: 'web', scope: 'network', hosts: c.hosts }] : [];
  const coordination = { exposesMethods: [], consumesMethods: c.consumes ?? [], publishes: c.publishes ?? [], subscribes: c.subscribes ?? [], messaging: true, sharedMemory: false };
  return { file: path.join(dir, 'plugins', id, 'plugin.yaml'), pluginDir: path.join(dir, 'plugins', id), manifest: { id, capabilities, coordination } } as unknown as LoadedManifest;
}

const PLUGINS = [manifest('caller', { consumes: ['other.a', 'other.b'], publishes: ['news.*'], subscribes: ['weather'] }), manifest('fetcher', { hosts: ['api.example.com:443', 'cdn.example.com:443'] })];

let audit: Omit<AuditEntry, 'time'>[];
let changes: number;
let expired: string[];

function grants(): Grants {
  return new Grants({
    log: silentLogger,
    audit: (e) => audit.push(e),
    plugin: (id) => PLUGINS.find((p) => p.manifest.id === id) ?? (() => { throw Object.assign(new Error(`no plugin ${id}`), { code: 'LM_PLUGIN_NOT_FOUND' }); })(),
    plugins: () => PLUGINS,
    homeDir: path.join(dir, 'home'),
    policy: () => policy,
    idsOf: () => [process.getuid?.() ?? 0, process.getgid?.() ?? 0],
    onChange: () => changes++,
    onPathExpired: (id, name) => expired.push(`${id}:${name}`),
  });
}

const entries = () => audit.map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}${e.code ? ` ${e.code}` : ''}`);

beforeAll(() => {
  mkdirSync(path.join(shared, 'a'), { recursive: true });
  mkdirSync(path.join(shared, 'b'));
  const policyFile = path.join(dir, 'policy.yaml');
  writeFileSync(policyFile, `hostPaths:\n  - { path: ${shared}, permissions: [read] }\n`);
  policy = loadPolicy(policyFile);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  audit = [];
  changes = 0;
  expired = [];
  vi.useFakeTimers({ now: new Date('2030-01-01T00:00:00Z'), toFake: ['setTimeout', 'clearTimeout', 'Date'] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('methods and topics', () => {
  it('a temporary grant is revoked again when it runs out, audited as expiry, and the change is announced', () => {
    const g = grants();
    g.revokeMethod('caller', 'other.a');
    g.grantMethod('caller', 'other.a', 60_000);
    expect(g.isMethodRevoked('caller', 'other.a')).toBe(false);
    expect(g.saved('caller')).toEqual({ methodGrants: [{ method: 'other.a', expiresAt: Date.now() + 60_000 }] });
    const before = changes;
    vi.advanceTimersByTime(59_999);
    expect(g.isMethodRevoked('caller', 'other.a')).toBe(false);
    vi.advanceTimersByTime(1);
    expect(g.isMethodRevoked('caller', 'other.a')).toBe(true);
    expect(changes).toBe(before + 1);
    expect(g.saved('caller')).toEqual({ revokedMethods: ['other.a'] });
    expect(entries()).toEqual(['operator revoke caller:other.a revoked', 'operator grant caller:other.a granted', 'expiry revoke caller:other.a revoked']);
  });

  it('a new grant replaces an earlier temporary one; a revocation cancels it', () => {
    const g = grants();
    g.grantMethod('caller', 'other.b', 1_000);
    g.grantMethod('caller', 'other.b');
    vi.advanceTimersByTime(5_000);
    expect(g.isMethodRevoked('caller', 'other.b')).toBe(false);
    g.grantMethod('caller', 'other.b', 1_000);
    g.revokeMethod('caller', 'other.b');
    g.grantMethod('caller', 'other.b');
    vi.advanceTimersByTime(5_000);
    expect(g.isMethodRevoked('caller', 'other.b')).toBe(false);
    expect(g.saved('caller')).toBeUndefined();
  });

  it('the manifest bounds what can be granted: an undeclared method or topic is LM_PERMISSION_DENIED naming the field', () => {
    const g = grants();
    expect(() => g.grantMethod('caller', 'other.z')).toThrow(expect.objectContaining({ code: 'LM_PERMISSION_DENIED', details: expect.objectContaining({ path: '/coordination/consumesMethods' }) }));
    for (const pattern of ['news.flash', 'news', '*', 'weather.*']) {
      expect(() => g.revokeTopic('caller', pattern), pattern).toThrow(expect.objectContaining({ code: 'LM_PERMISSION_DENIED', message: expect.stringContaining('coordination.publishes or coordination.subscribes') }));
      expect(() => g.grantTopic('caller', pattern), pattern).toThrow(expect.objectContaining({ code: 'LM_PERMISSION_DENIED' }));
    }
    expect(() => g.revokeTopic('nobody', 'news.*')).toThrow(expect.objectContaining({ code: 'LM_PLUGIN_NOT_FOUND' }));
    expect(g.saved('caller')).toBeUndefined();
    expect(changes).toBe(0);
    expect(entries()).toEqual(['news.flash', 'news.flash', 'news', 'news', '*', '*', 'weather.*', 'weather.*'].map((p, i) => `operator ${i % 2 ? 'grant' : 'revoke'} caller:topic:${p} denied LM_PERMISSION_DENIED`));
  });

  it('topic patterns are revoked as the manifest lists them, and granted back for a time', () => {
    const g = grants();
    g.revokeTopic('caller', 'news.*');
    g.revokeTopic('caller', 'weather');
    expect(g.isTopicRevoked('caller', 'news.*')).toBe(true);
    g.grantTopic('caller', 'weather', 10_000);
    expect(g.isTopicRevoked('caller', 'weather')).toBe(false);
    expect(g.saved('caller')).toEqual({ revokedTopics: ['news.*'], topicGrants: [{ topic: 'weather', expiresAt: Date.now() + 10_000 }] });
    vi.advanceTimersByTime(10_000);
    expect(g.isTopicRevoked('caller', 'weather')).toBe(true);
    expect(entries()).toEqual(['operator revoke caller:topic:news.* revoked', 'operator revoke caller:topic:weather revoked', 'operator grant caller:topic:weather granted', 'expiry revoke caller:topic:weather revoked']);
  });
});

describe('persistence in state.json and restore', () => {
  it('what one Grants saves, another restores: every kind, through the state file', () => {
    const first = grants();
    first.revokeMethod('caller', 'other.a');
    first.grantMethod('caller', 'other.b', 600_000);
    first.revokeTopic('caller', 'news.*');
    first.grantTopic('caller', 'weather', 600_000);
    first.grantPath('caller', `${path.join(shared, 'a')}:/grants/data`);
    first.revokeHost('fetcher', 'API.Example.com.:0443');
    const file = path.join(dir, `state-${Date.now()}.json`);
    const store = new StateStore(file);
    store.write({ version: 1, folders: [], plugins: Object.fromEntries(['caller', 'fetcher'].map((id) => [id, { restarts: 0, manifestHash: 'h', permissions: first.saved(id)! }])) });
    first.close();

    audit = [];
    const read = parseState(readFileSync(file, 'utf8'))!;
    const second = grants();
    for (const id of ['caller', 'fetcher']) second.restore(id, read.plugins[id]!.permissions!, 'restored');
    expect(second.isMethodRevoked('caller', 'other.a')).toBe(true);
    expect(second.isMethodRevoked('caller', 'other.b')).toBe(false);
    expect(second.isTopicRevoked('caller', 'news.*')).toBe(true);
    expect(second.isTopicRevoked('caller', 'weather')).toBe(false);
    expect(second.paths('caller')).toMatchObject([{ name: 'data', hostPath: path.join(shared, 'a'), containerPath: '/grants/data', writable: false }]);
    expect(second.revokedHosts('fetcher')).toEqual(['api.example.com:443']);
    for (const id of ['caller', 'fetcher']) expect(second.saved(id)).toEqual(first.saved(id));
    expect(entries()).toEqual([
      'controller revoke caller:other.a revoked',
      'controller grant caller:other.b granted',
      'controller revoke caller:topic:news.* revoked',
      'controller grant caller:topic:weather granted',
      'controller grant caller:path:data granted',
      'controller revoke fetcher:host:api.example.com:443 revoked',
    ]);
    // The restored temporary grants run out at the time they were given.
    vi.advanceTimersByTime(600_000);
    expect(second.isMethodRevoked('caller', 'other.b')).toBe(true);
    expect(second.isTopicRevoked('caller', 'weather')).toBe(true);
    second.close();
  });

  it('what ran out while no controller ran is revoked at restore, audited as expiry; the rest resumes with the time it had left', () => {
    const g = grants();
    const now = Date.now();
    const saved: SavedPermissions = {
      methodGrants: [
        { method: 'other.a', expiresAt: now - 1 },
        { method: 'other.b', expiresAt: now + 300 },
      ],
      topicGrants: [{ topic: 'news.*', expiresAt: now - 1 }],
      pathGrants: [{ name: 'a', requested: path.join(shared, 'a'), hostPath: path.join(shared, 'a'), writable: false, containerPath: '/grants/a', grantedAt: now - 10, expiresAt: now - 1, rule: 'x' }],
    };
    g.restore('caller', saved, 'restored');
    expect(g.isMethodRevoked('caller', 'other.a')).toBe(true);
    expect(g.isTopicRevoked('caller', 'news.*')).toBe(true);
    expect(g.isMethodRevoked('caller', 'other.b')).toBe(false);
    expect(g.paths('caller')).toEqual([]);
    vi.advanceTimersByTime(300);
    expect(g.isMethodRevoked('caller', 'other.b')).toBe(true);
    expect(entries()).toEqual(['expiry revoke caller:other.a revoked', 'controller grant caller:other.b granted', 'expiry revoke caller:topic:news.* revoked', 'expiry revoke caller:path:a revoked', 'expiry revoke caller:other.b revoked']);
    g.close();
  });

  it('a restored path grant is checked as at grant time: one that resolves elsewhere now, or that the policy does not cover, is dropped', () => {
    const link = path.join(shared, 'link');
    symlinkSync(path.join(shared, 'a'), link);
    try {
      const g = grants();
      const outside = path.join(dir, 'outside');
      mkdirSync(outside, { recursive: true });
      const base = { writable: false, grantedAt: Date.now(), rule: 'x' };
      g.restore('caller', { pathGrants: [{ ...base, name: 'link', requested: link, hostPath: path.join(shared, 'b'), containerPath: '/grants/link' }, { ...base, name: 'out', requested: outside, hostPath: outside, containerPath: '/grants/out' }] }, 'restored');
      expect(g.paths('caller')).toEqual([]);
      expect(entries()).toEqual(['controller grant caller:path:link denied LM_GRANT_PATH', 'controller grant caller:path:out denied LM_POLICY_DENIED']);
    } finally {
      rmSync(link);
    }
  });

  it('a temporary path grant hands its end to the controller when it runs out', () => {
    const g = grants();
    g.grantPath('caller', path.join(shared, 'b'), { ttlMs: 5_000 });
    vi.advanceTimersByTime(4_999);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(expired).toEqual(['caller:b']);
  });
});

describe('expiry timers', () => {
  it('waits longer than setTimeout can (2^31-1 ms) in steps, and fires once at the time', () => {
    const timers = new ExpiryTimers();
    const fired: number[] = [];
    const at = Date.now() + 40 * 24 * 3600_000; // 40 days
    timers.schedule('k', at, () => fired.push(Date.now()));
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(at - Date.now());
    expect(fired).toEqual([at]);
    vi.advanceTimersByTime(2 ** 31);
    expect(fired).toHaveLength(1);
  });

  it('a schedule under the same key replaces the earlier one; clear cancels all', () => {
    const timers = new ExpiryTimers();
    const fired: string[] = [];
    timers.schedule('k', Date.now() + 10, () => fired.push('first'));
    timers.schedule('k', Date.now() + 20, () => fired.push('second'));
    timers.schedule('j', Date.now() + 30, () => fired.push('other'));
    vi.advanceTimersByTime(25);
    timers.clear();
    vi.advanceTimersByTime(100);
    expect(fired).toEqual(['second']);
  });
});
