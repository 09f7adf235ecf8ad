import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LogoMeshError, ManifestRejectedError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { DEFAULT_SANDBOX_RUNTIME, enforcePolicy, ociRuntimeFor, policyViolations } from '../../src/policy/decisions.js';
import { loadPolicy, NO_POLICY, PolicyRejectedError } from '../../src/policy/policy.js';
import { runtimeImage } from '../../src/runtimes/index.js';
import { containerSpec, GVISOR_HOST_THREADS } from '../../src/sandbox/container-spec.js';
import { checkRuntime, checkRuntimeNetwork, engineRuntimes } from '../../src/sandbox/oci-runtime.js';
import { deniedSyscalls, killedSyscalls, parseSeccompProfile, pluginSeccompProfile, profileAllowing, seccompProfile, type SeccompProfile } from '../../src/seccomp/profiles.js';

const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'logomesh-isolation-')));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function policy(text: string) {
  const file = path.join(dir, `policy-${++n}.yaml`);
  writeFileSync(file, text);
  return loadPolicy(file);
}

function folderWith(id: string, extra: string): string {
  const p = path.join(dir, `plugin-${++n}`);
  mkdirSync(p);
  writeFileSync(path.join(p, 'main.py'), 'print(1)\n');
  writeFileSync(path.join(p, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n${extra}`);
  return p;
}

const plugin = (id: string, extra = '') => loadManifest(folderWith(id, extra));

function rejected(fn: () => unknown): { code: string; path: string; expected?: string; found?: string }[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ManifestRejectedError || err instanceof PolicyRejectedError) return err.issues.map((i) => ({ code: i.code, path: i.path, expected: i.expected, found: i.found }));
    throw err;
  }
  throw new Error('accepted');
}

const verdict = (p: SeccompProfile, name: string) => p.syscalls.filter((r) => r.names.includes(name)).map((r) => r.action);

describe('manifest security section', () => {
  it('defaults to no extra system call and isolation level 1', () => {
    expect(plugin('plain').manifest.security).toEqual({ syscalls: [], isolationLevel: 1 });
  });

  it('accepts system calls on the deny list and levels 1 to 3', () => {
    expect(plugin('numa', 'security: { syscalls: [get_mempolicy, mbind], isolationLevel: 3 }\n').manifest.security).toEqual({ syscalls: ['get_mempolicy', 'mbind'], isolationLevel: 3 });
  });

  it('refuses a name that is not on the deny list, with its path (allowed already, unknown, or never allowable)', () => {
    const issues = rejected(() => plugin('bad', 'security:\n  syscalls: [get_mempolicy, read, frobnicate, Mount]\n'));
    expect(issues.map((i) => [i.code, i.path])).toEqual([
      ['LM_MANIFEST_INVALID', '/security/syscalls/1'],
      ['LM_MANIFEST_INVALID', '/security/syscalls/2'],
      ['LM_MANIFEST_INVALID', '/security/syscalls/3'],
    ]);
    expect(issues[0]!.expected).toContain('get_mempolicy');
    expect(issues[0]!.found).toBe('"read"');
  });

  it('refuses level 4, unknown fields and duplicates', () => {
    const issues = rejected(() => plugin('bad', 'security: { isolationLevel: 4, syscalls: [mbind, mbind], seccomp: unconfined }\n'));
    expect(issues.map((i) => i.path).sort()).toEqual(['/security/isolationLevel', '/security/seccomp', '/security/syscalls']);
    expect(issues.every((i) => i.code === 'LM_MANIFEST_INVALID')).toBe(true);
  });
});

describe('policy allowedSyscalls', () => {
  const numa = () => plugin('numa', 'security: { syscalls: [get_mempolicy] }\n');

  it('with no policy, every requested system call is refused', () => {
    const v = policyViolations(numa(), NO_POLICY);
    expect(v).toEqual([{ path: '/security/syscalls/0', rule: '(no policy) /capabilities/allowedSyscalls', expected: 'a system call the policy allows (none)', found: "'get_mempolicy'" }]);
    expect(() => enforcePolicy(numa(), NO_POLICY)).toThrow(expect.objectContaining({ code: 'LM_POLICY_DENIED' }));
  });

  it('a policy without allowedSyscalls refuses too; listing it allows it', () => {
    expect(policyViolations(numa(), policy('capabilities: { maxMemoryMB: 512 }\n'))).toHaveLength(1);
    expect(policyViolations(numa(), policy('capabilities: { allowedSyscalls: [get_mempolicy] }\n'))).toEqual([]);
  });

  it('per-plugin overrides replace the policy-wide list, and the rule named is the one in force', () => {
    const p = policy('capabilities: { allowedSyscalls: [mbind] }\nplugins:\n  numa: { capabilities: { allowedSyscalls: [get_mempolicy] } }\n  other: { capabilities: {} }\n');
    expect(policyViolations(numa(), p)).toEqual([]);
    const other = plugin('other', 'security: { syscalls: [mbind] }\n');
    const v = policyViolations(other, p);
    expect(v.map((x) => x.rule)).toEqual([`${p.file} /plugins/other/capabilities/allowedSyscalls`]);
    try {
      enforcePolicy(other, p);
      throw new Error('allowed');
    } catch (err) {
      expect(err).toBeInstanceOf(LogoMeshError);
      expect((err as LogoMeshError).details).toMatchObject({ path: '/security/syscalls/0', rule: `${p.file} /plugins/other/capabilities/allowedSyscalls` });
    }
  });

  it('a policy may only list system calls on the deny list', () => {
    const issues = rejected(() => policy('capabilities: { allowedSyscalls: [get_mempolicy, execve] }\nplugins:\n  x: { capabilities: { allowedSyscalls: [nope] } }\n'));
    expect(issues.map((i) => [i.code, i.path])).toEqual([
      ['LM_POLICY_INVALID', '/capabilities/allowedSyscalls/1'],
      ['LM_POLICY_INVALID', '/plugins/x/capabilities/allowedSyscalls/0'],
    ]);
  });
});

describe('profileAllowing', () => {
  const base = seccompProfile('no-network');

  it('moves the names from the EPERM rule to an allow rule and changes nothing else', () => {
    const before = parseSeccompProfile(base, 'base');
    const after = parseSeccompProfile(profileAllowing(base, ['mbind', 'get_mempolicy']), 'after');
    expect(verdict(before, 'get_mempolicy')).toEqual(['SCMP_ACT_ERRNO']);
    expect(verdict(after, 'get_mempolicy')).toEqual(['SCMP_ACT_ALLOW']);
    expect(verdict(after, 'mbind')).toEqual(['SCMP_ACT_ALLOW']);
    expect(after.syscalls.at(-1)).toMatchObject({ names: ['get_mempolicy', 'mbind'], action: 'SCMP_ACT_ALLOW', args: [] });
    // Every other denied name stays denied; the rest of the profile is the same.
    for (const name of deniedSyscalls().filter((x) => x !== 'mbind' && x !== 'get_mempolicy')) expect(verdict(after, name), name).toEqual(verdict(before, name));
    expect(after.defaultAction).toBe(before.defaultAction);
    expect(after.archMap).toEqual(before.archMap);
    expect(after.syscalls.slice(0, -1).filter((r) => !r.comment?.startsWith('LogoMesh: never'))).toEqual(before.syscalls.filter((r) => !r.comment?.startsWith('LogoMesh: never')));
  });

  it('is deterministic and a no-op without names', () => {
    expect(profileAllowing(base, [])).toBe(base);
    expect(profileAllowing(base, ['mbind', 'get_mempolicy'])).toBe(profileAllowing(base, ['get_mempolicy', 'mbind', 'mbind']));
  });

  it('refuses a name that is not denied by LogoMesh', () => {
    expect(() => profileAllowing(base, ['execve'])).toThrow(expect.objectContaining({ code: 'LM_SECCOMP_PROFILE' }));
  });

  it('moves a name from the kill rule too, and drops a rule it empties', () => {
    const after = parseSeccompProfile(profileAllowing(base, [...killedSyscalls()]), 'after');
    for (const name of killedSyscalls()) expect(verdict(after, name), name).toEqual(['SCMP_ACT_ALLOW']);
    expect(after.syscalls.filter((r) => r.action === 'SCMP_ACT_KILL_PROCESS' && r.comment?.startsWith('LogoMesh: never'))).toEqual([]);
    expect(verdict(after, 'bpf')).toEqual(['SCMP_ACT_ERRNO']);
  });

  it('the deny list holds the kernel attack surface, not personality', () => {
    expect(deniedSyscalls()).toEqual(expect.arrayContaining(['mount', 'bpf', 'io_uring_setup', 'get_mempolicy']));
    expect(deniedSyscalls()).not.toContain('personality');
  });

  it('containerSpec carries the profile the plugin gets', () => {
    const loaded = plugin('numa', 'security: { syscalls: [get_mempolicy] }\n');
    const spec = containerSpec({ loaded, runtime: runtimeImage('python'), instance: 'i', seccompProfile: pluginSeccompProfile(false, loaded.manifest.security.syscalls) });
    const opt = spec.HostConfig!.SecurityOpt!.find((o: string) => o.startsWith('seccomp='))!;
    expect(verdict(JSON.parse(opt.slice('seccomp='.length)) as SeccompProfile, 'get_mempolicy')).toEqual(['SCMP_ACT_ALLOW']);
    expect(pluginSeccompProfile(true, [])).toBe(seccompProfile('network'));
  });
});

describe('OCI runtime per plugin', () => {
  const info = { Runtimes: { runc: { path: 'runc' }, 'io.containerd.runc.v2': { path: 'runc' } }, DefaultRuntime: 'runc' };

  it('no policy and level 1: the engine default, no HostConfig.Runtime', () => {
    const loaded = plugin('plain');
    const d = ociRuntimeFor(NO_POLICY, loaded);
    expect(d).toMatchObject({ sandboxing: false });
    expect(d.runtime).toBeUndefined();
    expect(checkRuntime(d, engineRuntimes(info), 'plain')).toBeUndefined();
    expect(containerSpec({ loaded, runtime: runtimeImage('python'), instance: 'i' }).HostConfig).not.toHaveProperty('Runtime');
  });

  it('level 3 with no runtime in the policy asks for runsc', () => {
    const loaded = plugin('vault', 'security: { isolationLevel: 3 }\n');
    expect(ociRuntimeFor(NO_POLICY, loaded)).toEqual({ runtime: DEFAULT_SANDBOX_RUNTIME, sandboxing: true, rule: `${loaded.file} /security/isolationLevel` });
    expect(policyViolations(loaded, NO_POLICY)).toEqual([]);
  });

  it('the policy-wide runtime, replaced by a per-plugin override', () => {
    const p = policy('isolation: { runtime: kata }\nplugins:\n  vault: { isolation: { runtime: runsc } }\n  plain: { isolation: {} }\n');
    expect(ociRuntimeFor(p, plugin('other'))).toEqual({ runtime: 'kata', sandboxing: true, rule: `${p.file} /isolation/runtime` });
    expect(ociRuntimeFor(p, plugin('vault'))).toEqual({ runtime: 'runsc', sandboxing: true, rule: `${p.file} /plugins/vault/isolation/runtime` });
    // An empty override means the engine's default for that plugin.
    expect(ociRuntimeFor(p, plugin('plain')).runtime).toBeUndefined();
  });

  it('level 3 under a policy that assigns an ordinary runtime is refused at load', () => {
    const p = policy('isolation: { runtime: runc }\n');
    const v = policyViolations(plugin('vault', 'security: { isolationLevel: 3 }\n'), p);
    expect(v).toEqual([expect.objectContaining({ path: '/security/isolationLevel', rule: `${p.file} /isolation/runtime`, found: "'runc'" })]);
    expect(policyViolations(plugin('vault', 'security: { isolationLevel: 2 }\n'), p)).toEqual([]);
  });

  it('a runtime the engine has goes to HostConfig.Runtime', () => {
    const p = policy('isolation: { runtime: io.containerd.runc.v2 }\n');
    const loaded = plugin('plain');
    const name = checkRuntime(ociRuntimeFor(p, loaded), engineRuntimes(info), 'plain');
    expect(name).toBe('io.containerd.runc.v2');
    expect(containerSpec({ loaded, runtime: runtimeImage('python'), instance: 'i', ociRuntime: name! }).HostConfig!.Runtime).toBe('io.containerd.runc.v2');
  });

  it('a runtime the engine lacks: LM_RUNTIME_ISOLATION naming it and the available ones', () => {
    const loaded = plugin('vault', 'security: { isolationLevel: 3 }\n');
    expect(engineRuntimes(info)).toEqual(['runc', 'io.containerd.runc.v2']);
    try {
      checkRuntime(ociRuntimeFor(NO_POLICY, loaded), engineRuntimes(info), 'vault');
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(LogoMeshError);
      const e = err as LogoMeshError;
      expect(e.code).toBe('LM_RUNTIME_ISOLATION');
      expect(e.message).toContain("'runsc'");
      expect(e.message).toContain('available: runc, io.containerd.runc.v2');
      expect(e.details).toMatchObject({ runtime: 'runsc', available: ['runc', 'io.containerd.runc.v2'] });
    }
  });

  it('runsc registered with --network=none refuses a plugin with network, and takes one without', () => {
    const registration = { path: '/usr/bin/runsc', runtimeArgs: ['--network=none', '--fsgofer-host-uds'] };
    expect(() => checkRuntimeNetwork('runsc', registration, '/srv/fetcher/plugin.yaml', 'fetcher')).toThrow(
      expect.objectContaining({ code: 'LM_RUNTIME_ISOLATION', details: expect.objectContaining({ plugin: 'fetcher', file: '/srv/fetcher/plugin.yaml', path: '/capabilities', found: "'runsc' with --network=none" }) }),
    );
    expect(() => checkRuntimeNetwork('runsc', registration, undefined, 'vault')).not.toThrow();
    expect(() => checkRuntimeNetwork('runsc', { path: '/usr/bin/runsc' }, '/srv/fetcher/plugin.yaml', 'fetcher')).not.toThrow();
  });

  it("under runsc the pids limit leaves room for gVisor's own host threads", () => {
    const loaded = plugin('vault', 'security: { isolationLevel: 3 }\nresources: { maxProcesses: 16 }\n');
    expect(containerSpec({ loaded, runtime: runtimeImage('python'), instance: 'i', ociRuntime: 'runsc' }).HostConfig!.PidsLimit).toBe(16 + GVISOR_HOST_THREADS);
    expect(containerSpec({ loaded, runtime: runtimeImage('python'), instance: 'i' }).HostConfig!.PidsLimit).toBe(16);
  });

  it('the policy refuses a runtime name that is not a plain name', () => {
    expect(rejected(() => policy('isolation: { runtime: "../runc" }\n')).map((i) => i.path)).toEqual(['/isolation/runtime']);
  });
});
