import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { parseGrantTarget } from '../../src/grants/path-grants.js';
import { loadManifest } from '../../src/manifest/index.js';
import { enforcePolicy, hostCovered, hostPathRuleFor, policyAllowsHost, policyViolations } from '../../src/policy/decisions.js';
import { loadPolicy, NO_POLICY, PolicyRejectedError } from '../../src/policy/policy.js';

const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-decisions-')));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function policy(text: string) {
  const file = path.join(dir, `policy-${++n}.yaml`);
  writeFileSync(file, text);
  return loadPolicy(file);
}

function issues(text: string): { path: string; expected: string; found: string }[] {
  const file = path.join(dir, `bad-${++n}.yaml`);
  writeFileSync(file, text);
  try {
    loadPolicy(file);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyRejectedError);
    return (err as PolicyRejectedError).issues.map((i) => ({ path: i.path, expected: i.expected!, found: i.found! }));
  }
  throw new Error('accepted');
}

function plugin(id: string, extra: string) {
  const p = path.join(dir, `plugin-${++n}`);
  mkdirSync(p);
  writeFileSync(path.join(p, 'main.py'), 'print(1)\n');
  writeFileSync(path.join(p, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n${extra}`);
  return loadManifest(p);
}

const NET = 'capabilities:\n  - { id: web, scope: network, hosts: ["api.example.com:443", "*.cdn.example.com:443"] }\n';

describe('policy capabilities, hosts, hostPaths and overrides', () => {
  it('reads every new section and freezes it', () => {
    const data = path.join(dir, 'data');
    mkdirSync(data);
    symlinkSync(data, path.join(dir, 'data-link'));
    const p = policy(
      [
        'capabilities: { allowedScopes: [network, filesystem], maxMemoryMB: 256, maxCpuPercent: 50 }',
        'hosts: ["*.example.com"]',
        'hostPaths:',
        `  - { path: ${path.join(dir, 'data-link')}, permissions: [read], plugins: [reader] }`,
        'plugins:',
        '  big: { capabilities: { maxMemoryMB: 1024 } }',
      ].join('\n'),
    );
    expect(p.capabilities).toEqual({ allowedScopes: ['network', 'filesystem'], maxMemoryMB: 256, maxCpuPercent: 50 });
    expect(p.hosts).toEqual(['*.example.com']);
    expect(p.hostPaths).toEqual([{ path: data, declared: path.join(dir, 'data-link'), permissions: ['read'], plugins: ['reader'], at: '/hostPaths/0' }]);
    expect(p.plugins.big).toEqual({ capabilities: { maxMemoryMB: 1024 } });
    expect(Object.isFrozen(p.capabilities) && Object.isFrozen(p.hostPaths) && Object.isFrozen(p.hostPaths[0]) && Object.isFrozen(p.plugins)).toBe(true);
  });

  it('defaults: no ceilings, no host limit, no host paths', () => {
    const p = policy('signatures: { required: false }\n');
    expect(p.capabilities).toEqual({});
    expect(p.hosts).toBeUndefined();
    expect(p.hostPaths).toEqual([]);
    expect(NO_POLICY.hostPaths).toEqual([]);
  });

  it('rejects bad sections, each with its JSON path, expected and found', () => {
    const got = issues(
      [
        'capabilities: { allowedScopes: [network, telepathy], maxMemoryMB: 0, colour: 1 }',
        'hosts: ["http://x"]',
        'hostPaths:',
        '  - { path: relative/dir, permissions: [read] }',
        `  - { path: ${path.join(dir, 'missing')}, permissions: [read] }`,
        '  - { path: /tmp, permissions: [execute] }',
        '  - { permissions: [read] }',
        'plugins: { Bad_Id: {} }',
      ].join('\n'),
    );
    const paths = got.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining(['/capabilities/allowedScopes/1', '/capabilities/maxMemoryMB', '/capabilities/colour', '/hosts/0', '/hostPaths/2/permissions/0', '/hostPaths/3/path']),
    );
    expect(got.find((i) => i.path === '/capabilities/allowedScopes/1')).toMatchObject({ expected: expect.stringContaining('"filesystem"'), found: '"telepathy" (string)' });
    expect(got.find((i) => i.path === '/capabilities/maxMemoryMB')).toMatchObject({ expected: 'an integer from 1 to 1048576' });
    expect(got.find((i) => i.path === '/hostPaths/3/path')).toMatchObject({ expected: "the required field 'path'", found: 'it is missing' });
    expect(got.some((i) => i.path.startsWith('/plugins'))).toBe(true);
    // Semantic checks run once the schema passes.
    const semantic = issues(`hostPaths:\n  - { path: relative/dir, permissions: [read] }\n  - { path: ${path.join(dir, 'missing')}, permissions: [read] }\n`);
    expect(semantic).toEqual([
      { path: '/hostPaths/0/path', expected: 'an absolute host path', found: '"relative/dir"' },
      { path: '/hostPaths/1/path', expected: 'an existing host folder or file', found: `${path.join(dir, 'missing')}: ENOENT` },
    ]);
  });
});

describe('decisions', () => {
  it('host patterns: wildcards, ports, case', () => {
    expect(hostCovered('*.example.com', 'api.example.com:443')).toBe(true);
    expect(hostCovered('*.example.com', 'example.com')).toBe(false);
    expect(hostCovered('*.example.com', '*.cdn.example.com')).toBe(true);
    expect(hostCovered('api.example.com', '*.example.com')).toBe(false);
    expect(hostCovered('api.example.com:443', 'api.example.com:80')).toBe(false);
    expect(hostCovered('api.example.com:443', 'api.example.com')).toBe(false);
    expect(hostCovered('API.example.com', 'api.EXAMPLE.com:8080')).toBe(true);
    expect(hostCovered('*.example.com', 'evilexample.com')).toBe(false);
  });

  it('policyAllowsHost: unlimited without rules, the override for a plugin, the reason', () => {
    expect(policyAllowsHost(NO_POLICY, 'anything.test').allowed).toBe(true);
    const p = policy('hosts: ["*.example.com"]\nplugins:\n  fetcher: { hosts: ["api.other.org:443"] }\n');
    expect(policyAllowsHost(p, 'a.example.com')).toEqual({ allowed: true, reason: `covered by '*.example.com' (policy rule ${p.file} /hosts)` });
    expect(policyAllowsHost(p, 'a.example.com', 'fetcher').allowed).toBe(false);
    expect(policyAllowsHost(p, 'api.other.org:443', 'fetcher')).toMatchObject({ allowed: true, reason: expect.stringContaining('/plugins/fetcher/hosts') });
    expect(policyAllowsHost(policy('hosts: []\n'), 'a.example.com').allowed).toBe(false);
  });

  it('a manifest within the policy passes; scopes, ceilings and hosts beyond it are refused with LM_POLICY_DENIED', () => {
    const ok = plugin('fine', `${NET}resources: { maxMemoryMB: 128, maxNetworkConnections: 2 }\n`);
    const p = policy('capabilities: { allowedScopes: [network], maxMemoryMB: 256 }\nhosts: ["*.example.com"]\n');
    expect(policyViolations(ok, p)).toEqual([]);
    expect(() => enforcePolicy(ok, p)).not.toThrow();

    const bad = plugin(
      'greedy',
      'capabilities:\n  - { id: web, scope: network, hosts: ["api.example.com:443", "evil.test:443"] }\n  - { id: screen, scope: ui }\nresources: { maxMemoryMB: 512, maxNetworkConnections: 2 }\n',
    );
    let err: LogoMeshError | undefined;
    try {
      enforcePolicy(bad, p);
    } catch (e) {
      err = e as LogoMeshError;
    }
    expect(err?.code).toBe('LM_POLICY_DENIED');
    expect(err?.details).toMatchObject({ plugin: 'greedy', file: bad.file, path: '/capabilities/0/hosts/1', rule: `${p.file} /hosts`, policy: p.file });
    expect((err?.details.violations as { path: string; rule: string }[]).map((v) => [v.path, v.rule])).toEqual([
      ['/capabilities/0/hosts/1', `${p.file} /hosts`],
      ['/capabilities/1/scope', `${p.file} /capabilities/allowedScopes`],
      ['/resources/maxMemoryMB', `${p.file} /capabilities/maxMemoryMB`],
    ]);
    expect(err?.message).toContain(`${bad.file} /resources/maxMemoryMB: expected at most 256, found 512 (policy rule ${p.file} /capabilities/maxMemoryMB)`);
  });

  it('a per-plugin override replaces the policy-wide rule', () => {
    const p = policy('capabilities: { maxMemoryMB: 128 }\nplugins:\n  big: { capabilities: { maxMemoryMB: 1024 } }\n');
    expect(policyViolations(plugin('big', 'resources: { maxMemoryMB: 512 }\n'), p)).toEqual([]);
    expect(policyViolations(plugin('small', 'resources: { maxMemoryMB: 512 }\n'), p)).toHaveLength(1);
  });

  it('minVersion pins the lowest version of a plugin by semver precedence: an older one is refused, whatever signed it', () => {
    const p = policy('plugins:\n  pinned: { minVersion: 2.1.0 }\n');
    const at = (version: string) => {
      const pl = path.join(dir, `pinned-${++n}`);
      mkdirSync(pl);
      writeFileSync(path.join(pl, 'main.py'), 'print(1)\n');
      writeFileSync(path.join(pl, 'plugin.yaml'), `id: pinned\nversion: ${version}\nruntime: python\nentrypoint: main.py\n`);
      return loadManifest(pl);
    };
    for (const ok of ['2.1.0', '2.1.1', '2.10.0', '3.0.0-rc.1']) expect(policyViolations(at(ok), p)).toEqual([]);
    for (const old of ['2.0.9', '1.99.99', '2.1.0-rc.9', '0.0.1']) {
      expect(policyViolations(at(old), p)).toEqual([
        { path: '/version', rule: `${p.file} /plugins/pinned/minVersion`, expected: 'version 2.1.0 or later (the policy pins the lowest version of pinned)', found: `'${old}'` },
      ]);
    }
    const old = at('2.0.0');
    expect(() => enforcePolicy(old, p)).toThrow(`${old.file} /version: expected version 2.1.0 or later (the policy pins the lowest version of pinned), found '2.0.0' (policy rule ${p.file} /plugins/pinned/minVersion)`);
    // Other plugins are not pinned; a pin must be a semantic version.
    expect(policyViolations(plugin('other', ''), p)).toEqual([]);
    expect(issues('plugins:\n  x: { minVersion: "2.1" }\n')[0]).toMatchObject({ path: '/plugins/x/minVersion' });
  });

  it('hostPathRuleFor: inside the path, with the permission, for the listed plugins', () => {
    const shared = path.join(dir, 'shared');
    mkdirSync(path.join(shared, 'sub'), { recursive: true });
    const p = policy(`hostPaths:\n  - { path: ${shared}, permissions: [read] }\n  - { path: ${path.join(shared, 'sub')}, permissions: [read, write], plugins: [writer] }\n`);
    expect(hostPathRuleFor(p, 'any', path.join(shared, 'sub'), 'read')?.at).toBe('/hostPaths/0');
    expect(hostPathRuleFor(p, 'any', path.join(shared, 'sub'), 'write')).toBeUndefined();
    expect(hostPathRuleFor(p, 'writer', path.join(shared, 'sub', 'x'), 'write')?.at).toBe('/hostPaths/1');
    expect(hostPathRuleFor(p, 'any', `${shared}-other`, 'read')).toBeUndefined();
    expect(hostPathRuleFor(NO_POLICY, 'any', shared, 'read')).toBeUndefined();
  });

  it('parseGrantTarget: host path, optional /grants/<name> or name', () => {
    expect(parseGrantTarget('/srv/data')).toEqual({ requested: '/srv/data', name: 'data' });
    expect(parseGrantTarget('/srv/data:/grants/in')).toEqual({ requested: '/srv/data', name: 'in' });
    expect(parseGrantTarget('/srv/data:in')).toEqual({ requested: '/srv/data', name: 'in' });
    for (const bad of ['relative/x', '/srv/data:/etc', '/srv/data:/grants/a/b', '/srv/data:..', '/']) {
      expect(() => parseGrantTarget(bad), bad).toThrow(expect.objectContaining({ code: 'LM_GRANT_PATH' }));
    }
  });
});

describe('grant/revoke path on the command line', () => {
  it('refuses bad combinations before reaching a controller', async () => {
    const { main } = await import('../../src/cli/main.js');
    const errs: string[] = [];
    const io = { out: () => {}, err: (t: string) => errs.push(t), stdout: process.stdout, stderr: process.stderr } as unknown as import('../../src/cli/io.js').CliIo;
    expect(await main(['grant', 'files', 'path', '/srv/data', '--read', '--write'], io)).toBe(2);
    expect(await main(['revoke', 'files', 'path', '/srv/data', '--ttl', '5'], io)).toBe(2);
    expect(await main(['grant', 'files', 'path'], io)).toBe(2);
    expect(await main(['grant', 'files', 'beta.echo', '--write'], io)).toBe(2);
    expect(errs.every((e) => e.startsWith('LM_USAGE: '))).toBe(true);
  });
});
