import { describe, expect, it } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { seccompProfileObject, spoSpec, type SpoSyscall } from '../../src/kubernetes/seccomp-profiles.js';
import { killedSyscalls, seccompProfile, type SeccompProfile } from '../../src/seccomp/profiles.js';

const docker = JSON.parse(seccompProfile('network')) as SeccompProfile;
const amd64 = spoSpec(seccompProfile('network'), 'amd64', 'plugin.json');
const arm64 = spoSpec(seccompProfile('network'), 'arm64', 'plugin.json');

const actionOf = (rules: readonly SpoSyscall[], name: string) => rules.filter((r) => r.names.includes(name)).map((r) => r.action);

describe("LogoMesh's Docker seccomp profile as an SPO SeccompProfile", () => {
  it('keeps the deny-by-default action and resolves the architecture for the node', () => {
    expect(amd64.defaultAction).toBe(docker.defaultAction);
    expect(amd64.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(amd64.architectures).toEqual(['SCMP_ARCH_X86_64']);
    expect(arm64.architectures).toEqual(['SCMP_ARCH_AARCH64']);
  });

  it("keeps a rule only where Docker would apply it on that architecture", () => {
    expect(actionOf(amd64.syscalls, 'arch_prctl')).toEqual(['SCMP_ACT_ALLOW']);
    expect(actionOf(arm64.syscalls, 'arch_prctl')).toEqual([]);
    expect(actionOf(arm64.syscalls, 'arm_fadvise64_64')).toEqual(['SCMP_ACT_ALLOW']);
    expect(actionOf(amd64.syscalls, 'arm_fadvise64_64')).toEqual([]);
    expect(actionOf(amd64.syscalls, 's390_runtime_instr')).toEqual([]);
    // clone: the non-s390 rule (flags in argument 0) only.
    expect(amd64.syscalls.filter((r) => r.names.includes('clone') && r.args).map((r) => r.args![0]!.index)).toEqual([0]);
  });

  it('keeps errno values: clone3 answers ENOSYS (38), so glibc falls back to clone', () => {
    expect(amd64.syscalls.filter((r) => r.names.includes('clone3'))).toEqual([{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  });

  it("keeps every LogoMesh deny rule: EPERM for what runtimes probe, a kill for what only an attack calls", () => {
    for (const name of killedSyscalls()) expect(actionOf(amd64.syscalls, name), name).toContain('SCMP_ACT_KILL_PROCESS');
    expect(actionOf(amd64.syscalls, 'bpf')).toEqual(['SCMP_ACT_ERRNO']);
    expect(actionOf(amd64.syscalls, 'mount')).toEqual(['SCMP_ACT_KILL_PROCESS']);
  });

  it("drops Docker-only fields (comment, includes, excludes) that SPO's schema does not have", () => {
    for (const r of amd64.syscalls) expect(Object.keys(r).every((k) => ['names', 'action', 'errnoRet', 'args'].includes(k)), JSON.stringify(r)).toBe(true);
  });

  it('allows nothing the Docker profile does not: every allowed name on amd64 is allowed by a Docker rule for amd64', () => {
    const dockerAllowed = new Set(
      docker.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW' && (!r.includes?.arches?.length || r.includes.arches.includes('amd64')) && !r.excludes?.arches?.includes('amd64')).flatMap((r) => r.names),
    );
    const allowed = amd64.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names);
    expect(allowed.filter((n) => !dockerAllowed.has(n))).toEqual([]);
    expect(allowed.length).toBeGreaterThan(250);
  });

  it('names the object by its content and architecture: the same profile, the same cluster-wide object', () => {
    const a = seccompProfileObject(amd64, 'amd64', 'x');
    expect(a.metadata.name).toMatch(/^logomesh-amd64-[0-9a-f]{12}$/);
    expect(seccompProfileObject(spoSpec(seccompProfile('network'), 'amd64', 'again'), 'amd64', 'y').metadata.name).toBe(a.metadata.name);
    expect(seccompProfileObject(arm64, 'arm64', 'x').metadata.name).not.toBe(a.metadata.name);
  });

  it('a profile without an entry for the node architecture is LM_SECCOMP_PROFILE naming archMap', () => {
    const text = JSON.stringify({ ...docker, archMap: [{ architecture: 'SCMP_ARCH_S390X', subArchitectures: [] }] });
    try {
      spoSpec(text, 'amd64', 'broken.json');
      throw new Error('converted');
    } catch (err) {
      expect(err).toBeInstanceOf(LogoMeshError);
      expect((err as LogoMeshError).details).toMatchObject({ file: 'broken.json', path: '/archMap', found: 'SCMP_ARCH_S390X' });
    }
  });
});
