import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  loadSeccompProfile,
  parseSeccompProfile,
  SECCOMP_DIR,
  SECCOMP_FILES,
  seccompProfile,
  seccompVariant,
  type SeccompProfile,
  type SeccompRule,
} from '../../src/seccomp/profiles.js';

const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;
const AF_UNIX = 1;
/** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

/** What no plugin may call, whatever the profile's rules say otherwise. */
const NEVER = [
  'mount', 'umount', 'umount2', 'ptrace', 'process_vm_readv', 'process_vm_writev', 'kexec_load', 'kexec_file_load',
  'bpf', 'perf_event_open', 'userfaultfd', 'keyctl', 'add_key', 'request_key', 'unshare', 'setns',
  'io_uring_setup', 'io_uring_enter', 'io_uring_register', 'init_module', 'finit_module', 'delete_module', 'reboot',
  'swapon', 'swapoff', 'clock_settime', 'clock_adjtime', 'settimeofday', 'adjtimex', 'stime', 'acct', 'quotactl',
  'lookup_dcookie', 'open_by_handle_at', 'name_to_handle_at', 'pivot_root', 'chroot', 'syslog', 'vhangup', 'iopl', 'ioperm',
];

/** What only an attack calls: the caller is killed (SIGSYS) and the kernel logs it. */
const KILLED = [
  'mount', 'umount', 'umount2', 'pivot_root', 'chroot', 'fsopen', 'fsconfig', 'fsmount', 'fspick', 'move_mount', 'open_tree',
  'mount_setattr', 'quotactl', 'quotactl_fd', 'swapon', 'swapoff', 'unshare', 'setns', 'ptrace', 'process_vm_readv',
  'process_vm_writev', 'init_module', 'finit_module', 'delete_module', 'kexec_load', 'kexec_file_load', 'clock_settime',
  'clock_settime64', 'settimeofday', 'stime', 'reboot', 'acct', 'iopl', 'ioperm', 'open_by_handle_at',
];

const plugin = parseSeccompProfile(seccompProfile('network'), SECCOMP_FILES.network);
const noNetwork = parseSeccompProfile(seccompProfile('no-network'), SECCOMP_FILES['no-network']);

const allowing = (p: SeccompProfile, name: string): SeccompRule[] => p.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW' && r.names.includes(name));
/** Rules that apply on x86_64, the architecture the profiles are verified on. */
const onAmd64 = (r: SeccompRule) => !(r.excludes?.arches ?? []).includes('amd64') && ((r.includes?.arches ?? []).length === 0 || (r.includes?.arches ?? []).includes('amd64'));

describe.each([
  ['plugin.json', plugin],
  ['plugin-no-network.json', noNetwork],
])('the seccomp profile %s', (_file, profile) => {
  it('is an allowlist: anything not allowed fails with EPERM', () => {
    expect(profile.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(profile).not.toHaveProperty('defaultErrnoRet');
  });

  it.each(NEVER)('never allows %s, and denies it explicitly: a kill if only an attack calls it, else EPERM', (name) => {
    expect(allowing(profile, name)).toEqual([]);
    const deny = profile.syscalls.filter((r) => r.names.includes(name) && r.action !== 'SCMP_ACT_ALLOW');
    expect(deny).toHaveLength(1);
    if (KILLED.includes(name)) expect(deny[0]).toMatchObject({ action: 'SCMP_ACT_KILL_PROCESS', args: [] });
    else expect(deny[0]).toMatchObject({ action: 'SCMP_ACT_ERRNO', errnoRet: EPERM, args: [] });
  });

  it('kills only for what no runtime probes: io_uring, bpf, perf, userfaultfd, keyctl, adjtimex and NUMA stay EPERM', () => {
    const killed = profile.syscalls.filter((r) => r.action === 'SCMP_ACT_KILL_PROCESS' && r.args?.length === 0).flatMap((r) => r.names);
    expect([...killed].sort()).toEqual([...KILLED].sort());
    for (const probed of ['io_uring_setup', 'bpf', 'perf_event_open', 'userfaultfd', 'keyctl', 'adjtimex', 'clock_adjtime', 'get_mempolicy', 'name_to_handle_at', 'syslog']) {
      expect(killed, probed).not.toContain(probed);
    }
  });

  it('has no rule that depends on a capability: plugins run with none', () => {
    for (const r of profile.syscalls) {
      expect(r.includes?.caps ?? []).toEqual([]);
      expect(r.excludes?.caps ?? []).toEqual([]);
    }
  });

  it('allows personality(2) only to query it or to reset it to PER_LINUX', () => {
    const rules = allowing(profile, 'personality');
    expect(rules.map((r) => r.args)).toEqual([[{ index: 0, value: 0, op: 'SCMP_CMP_EQ' }], [{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_EQ' }]]);
  });

  it('allows clone(2) only without namespace flags, and makes clone3(2) fail with ENOSYS so libc falls back to clone', () => {
    const clone = allowing(profile, 'clone').filter(onAmd64);
    expect(clone.map((r) => r.args)).toEqual([[{ index: 0, value: CLONE_NAMESPACE_FLAGS, op: 'SCMP_CMP_MASKED_EQ' }]]);
    expect(allowing(profile, 'clone3')).toEqual([]);
    expect(profile.syscalls.filter((r) => r.names.includes('clone3') && onAmd64(r))).toEqual([expect.objectContaining({ action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS })]);
  });

  it('covers native 64-bit code only: no 32-bit or x32 sub-architecture', () => {
    expect(profile.archMap?.map((a) => a.architecture)).toContain('SCMP_ARCH_X86_64');
    for (const a of profile.archMap ?? []) expect(a.subArchitectures).toEqual([]);
  });

  it('still allows what every runtime needs', () => {
    for (const name of ['read', 'write', 'openat', 'mmap', 'mprotect', 'futex', 'execve', 'wait4', 'epoll_pwait', 'rt_sigaction', 'arch_prctl', 'prctl', 'connect', 'getrandom']) {
      expect(allowing(profile, name).length, name).toBeGreaterThan(0);
    }
  });
});

describe('the no-network profile', () => {
  it('is plugin.json with socket(2) and socketpair(2) limited to AF_UNIX, and socketcall(2) gone', () => {
    const withoutSockets = (p: SeccompProfile) =>
      p.syscalls
        .map((r) => ({ ...r, names: r.names.filter((n) => !['socket', 'socketpair', 'socketcall'].includes(n)) }))
        .filter((r) => r.names.length > 0);
    expect(withoutSockets(noNetwork)).toEqual(withoutSockets(plugin));
    expect(noNetwork.archMap).toEqual(plugin.archMap);
    expect(allowing(plugin, 'socket')[0]?.args).toEqual([]);
  });

  it.each(['socket', 'socketpair'])('allows %s only for AF_UNIX; other families fail with EAFNOSUPPORT', (name) => {
    const rules = noNetwork.syscalls.filter((r) => r.names.includes(name) && r.action !== 'SCMP_ACT_KILL_PROCESS');
    expect(rules).toEqual([
      expect.objectContaining({ action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: AF_UNIX, valueTwo: 0, op: 'SCMP_CMP_EQ' }] }),
      expect.objectContaining({ action: 'SCMP_ACT_ERRNO', errnoRet: EAFNOSUPPORT, args: [{ index: 0, value: AF_UNIX, valueTwo: 0, op: 'SCMP_CMP_NE' }] }),
    ]);
  });

  it('kills the caller of socket(2) for a packet socket, or a raw IPv4 or IPv6 one (the type under SOCK_TYPE_MASK)', () => {
    const kills = noNetwork.syscalls.filter((r) => r.names.includes('socket') && r.action === 'SCMP_ACT_KILL_PROCESS').map((r) => r.args);
    expect(kills).toEqual([
      [{ index: 0, value: 17, valueTwo: 0, op: 'SCMP_CMP_EQ' }],
      [{ index: 0, value: 2, valueTwo: 0, op: 'SCMP_CMP_EQ' }, { index: 1, value: 0xf, valueTwo: 3, op: 'SCMP_CMP_MASKED_EQ' }],
      [{ index: 0, value: 10, valueTwo: 0, op: 'SCMP_CMP_EQ' }, { index: 1, value: 0xf, valueTwo: 3, op: 'SCMP_CMP_MASKED_EQ' }],
    ]);
    expect(plugin.syscalls.filter((r) => r.names.includes('socket') && r.action === 'SCMP_ACT_KILL_PROCESS')).toEqual([]);
  });

  it('does not allow socketcall(2), whose arguments seccomp cannot read', () => {
    expect(allowing(noNetwork, 'socketcall')).toEqual([]);
  });

  it('is the one every plugin gets, since every plugin has network mode none', () => {
    expect(seccompVariant('none')).toBe('no-network');
    expect(seccompVariant('bridge')).toBe('network');
  });
});

describe('loading a profile', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-seccomp-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const f = path.join(dir, name);
    writeFileSync(f, text);
    return f;
  };

  it('gives the profile as compact JSON, equal to the file, and the same text every time', () => {
    const text = loadSeccompProfile(path.join(SECCOMP_DIR, 'plugin.json'));
    expect(text).not.toContain('\n');
    expect(JSON.parse(text)).toEqual(plugin);
    expect(seccompProfile('network')).toBe(seccompProfile('network'));
  });

  it.each([
    ['a missing file', path.join(dir, 'nope.json'), /cannot read/],
    ['invalid JSON', file('bad.json', '{"defaultAction": '), /not valid JSON/],
    ['a JSON array', file('array.json', '[]'), /not a JSON object/],
    ['a profile that allows by default', file('allow.json', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO"}]}'), /allows by default/],
    ['a profile without rules', file('empty.json', '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[]}'), /no syscalls rules/],
    ['a malformed rule', file('rule.json', '{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":"read","action":"SCMP_ACT_ALLOW"}]}'), /malformed rule at syscalls\[0\]/],
  ])('refuses %s with LM_SECCOMP_PROFILE', (_what, f, message) => {
    expect(() => loadSeccompProfile(f)).toThrow(expect.objectContaining({ code: 'LM_SECCOMP_PROFILE', message: expect.stringMatching(message) }));
  });
});
