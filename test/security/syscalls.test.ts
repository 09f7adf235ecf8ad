import { describe, expect, it } from 'vitest';
import { attack } from './support.js';

/**
 * System calls a plugin never needs, each tried from inside a real plugin container, each in
 * a child process of its own. What only an attack calls kills the caller (SIGSYS), which the
 * kernel logs for the controller (test/security/violations.test.ts shows the audit entry);
 * what runtimes may probe fails with EPERM (docs/security.md#seccomp). The syscall numbers
 * are x86_64's.
 *
 * Resource exhaustion is tested where the limits are: a fork bomb, a memory bomb and file
 * handle exhaustion in test/integration/limits.test.ts, filling /tmp in
 * test/integration/isolation.test.ts.
 */
describe('system calls that break out of or reach past the sandbox: the caller is killed, or gets EPERM', () => {
  it('mount: a tmpfs, a bind mount of /, remounting / writable, unmounting a /proc mask, the new mount API', async () => {
    const { report } = await attack('mount');
    expect(report).toEqual({
      mountTmpfs: 'SIGSYS',
      bindRoot: 'SIGSYS',
      remountRootRw: 'SIGSYS',
      umountProcMask: 'SIGSYS',
      umountPlugin: 'SIGSYS',
      fsopen: 'SIGSYS',
      openTree: 'SIGSYS',
      mountedAtTmpM: false,
    });
  });

  it('unshare and clone: no new namespace of any kind; clone3 says ENOSYS so libc uses clone', async () => {
    const { report } = await attack<{ unshare: Record<string, string>; userNamespaceOfSelf: string; userNamespaceOfInit: string } & Record<string, unknown>>('unshare');
    expect(report.unshare).toEqual({ user: 'SIGSYS', mount: 'SIGSYS', net: 'SIGSYS', pid: 'SIGSYS', uts: 'SIGSYS', ipc: 'SIGSYS', cgroup: 'SIGSYS', time: 'SIGSYS' });
    expect(report).toMatchObject({ cloneNewUser: 'EPERM', cloneNewNet: 'EPERM', clone3NewUser: 'ENOSYS' });
    expect(report.userNamespaceOfSelf).toBe(report.userNamespaceOfInit);
  });

  it('setns: joining a namespace through /proc/<pid>/ns', async () => {
    const { report } = await attack<Record<string, string>>('setns');
    expect(Object.keys(report)).toHaveLength(10);
    for (const [ns, result] of Object.entries(report)) expect(result, ns).toBe('SIGSYS');
  });

  it('ptrace and process_vm_readv/writev: no access to another process, not even its own memory by that route', async () => {
    const { report } = await attack('ptrace');
    expect(report).toEqual({ attach: 'SIGSYS', seize: 'SIGSYS', traceme: 'SIGSYS', vmReadv: 'SIGSYS', vmWritev: 'SIGSYS', copied: '' });
  });

  it('kernel modules and kexec: init_module, finit_module, delete_module, kexec_load, kexec_file_load', async () => {
    const { report } = await attack<Record<string, unknown>>('kernel-module');
    expect(report).toMatchObject({ initModule: 'SIGSYS', finitModule: 'SIGSYS', deleteModule: 'SIGSYS', kexecLoad: 'SIGSYS', kexecFileLoad: 'SIGSYS', libModules: false });
    // /proc/sys is read-only; a kernel built without modules has no modprobe setting at all.
    expect(['EROFS', 'ENOENT']).toContain(report.modprobePath);
  });

  it("clock: clock_settime and settimeofday kill; adjtimex (even reading) and clock_adjtime fail; the host's clock is unchanged", async () => {
    const { report } = await attack<Record<string, string | number>>('clock');
    expect(report).toMatchObject({ clockSettime: 'SIGSYS', settimeofday: 'SIGSYS', adjtimexRead: 'EPERM', adjtimexOffset: 'EPERM', clockAdjtime: 'EPERM' });
    // The container reads the host's clock: an hour's jump would show.
    expect(Math.abs(Number(report.after) * 1000 - Date.now())).toBeLessThan(60_000);
  });

  it('keyctl, add_key, request_key: the kernel keyring is not namespaced', async () => {
    const { report } = await attack('keyctl');
    expect(report).toEqual({ getKeyringId: 'EPERM', joinSession: 'EPERM', addKey: 'EPERM', requestKey: 'EPERM' });
  });

  it('bpf: no map, no program', async () => {
    const { report } = await attack('bpf');
    expect(report).toEqual({ mapCreate: 'EPERM', progLoad: 'EPERM' });
  });

  it('perf_event_open: not even on itself', async () => {
    const { report } = await attack('perf-event');
    expect(report).toEqual({ selfSoftware: 'EPERM', allProcessesCpu0: 'EPERM' });
  });

  it('userfaultfd: neither the system call nor the device', async () => {
    const { report } = await attack('userfaultfd');
    expect(report).toEqual({ userfaultfd: 'EPERM', userModeOnly: 'EPERM', devUserfaultfd: 'ENOENT' });
  });

  it('io_uring: setup, enter and register', async () => {
    const { report } = await attack('io-uring');
    expect(report).toEqual({ setup: 'EPERM', enter: 'EPERM', register: 'EPERM' });
  });

  it('personality: only querying and PER_LINUX; no ASLR switch-off, READ_IMPLIES_EXEC, UNAME26 or PER_LINUX32', async () => {
    const { report } = await attack('personality');
    expect(report).toEqual({
      query: 'ok',
      perLinux: 'ok',
      addrNoRandomize: 'EPERM',
      readImpliesExec: 'EPERM',
      uname26: 'EPERM',
      perLinux32: 'EPERM',
      perLinux32Uname26: 'EPERM',
      addrCompatLayout: 'EPERM',
      mmapPageZero: 'EPERM',
      current: 0,
    });
  });

  it('reboot: power off, restart, Ctrl-Alt-Del', async () => {
    const { report } = await attack('reboot');
    expect(report).toEqual({ cadOff: 'SIGSYS', powerOff: 'SIGSYS', restart: 'SIGSYS', stillRunning: true });
  });

  it('chroot and pivot_root', async () => {
    const { report } = await attack('chroot');
    expect(report).toEqual({ chroot: 'SIGSYS', pivotRoot: 'SIGSYS', root: true });
  });

  it('"shocker": name_to_handle_at and open_by_handle_at, which open files past the mount namespace', async () => {
    const { report } = await attack('shocker');
    expect(report).toEqual({ nameToHandleAt: 'EPERM', openByHandleAt: 'SIGSYS' });
  });
});

describe('the 32-bit system call ABI', () => {
  it('is outside the filter: any system call through int 0x80 kills the process (SIGSYS), so socketcall cannot bypass the socket rules', async () => {
    const SIGSYS = 31;
    const { report } = await attack('abi32');
    expect(report).toEqual({ getpid: { signal: SIGSYS }, socketInet: { signal: SIGSYS }, socketcallInet: { signal: SIGSYS }, unshareUser: { signal: SIGSYS } });
  });
});
