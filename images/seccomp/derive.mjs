#!/usr/bin/env node
// Derives LogoMesh's plugin seccomp profiles from Docker's (moby's) default profile.
//
//   node images/seccomp/derive.mjs <moby>/profiles/seccomp/default.json
//
// writes plugin.json and plugin-no-network.json next to this script. The steps, and why
// each system call is denied, are documented in docs/security.md (section "Seccomp").
// Re-run it on a newer default.json to pick up the allowlist's additions, then review the
// diff: a new system call is allowed only if moby's default allows it.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const EPERM = 1;
const EAFNOSUPPORT = 97;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_PACKET = 17;
const SOCK_RAW = 3;
/** The socket type's bits in socket(2)'s second argument (SOCK_NONBLOCK and SOCK_CLOEXEC are above them). */
const SOCK_TYPE_MASK = 0xf;

/**
 * System calls no plugin needs. Removed from every allow rule and listed in an explicit
 * EPERM rule, so the profile says what it denies instead of leaving it implicit.
 */
export const DENIED = [
  // Filesystems and mount namespaces (incl. the new mount API).
  'mount', 'umount', 'umount2', 'pivot_root', 'chroot', 'fsopen', 'fsconfig', 'fsmount', 'fspick',
  'move_mount', 'open_tree', 'mount_setattr', 'quotactl', 'quotactl_fd', 'swapon', 'swapoff',
  // Namespaces.
  'unshare', 'setns',
  // Inspecting or modifying other processes.
  'ptrace', 'process_vm_readv', 'process_vm_writev', 'process_madvise', 'pidfd_getfd', 'kcmp',
  // Kernel code, kernel attack surface with a record of exploits.
  'init_module', 'finit_module', 'delete_module', 'kexec_load', 'kexec_file_load', 'bpf',
  'perf_event_open', 'userfaultfd', 'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  // The kernel keyring: not namespaced.
  'keyctl', 'add_key', 'request_key',
  // The host's clock: not namespaced.
  'clock_settime', 'clock_settime64', 'clock_adjtime', 'clock_adjtime64', 'settimeofday', 'adjtimex', 'stime',
  // Host administration.
  'reboot', 'acct', 'syslog', 'vhangup', 'iopl', 'ioperm', 'sethostname', 'setdomainname',
  'lookup_dcookie', 'open_by_handle_at', 'name_to_handle_at', 'fanotify_init',
  // NUMA memory policy.
  'get_mempolicy', 'set_mempolicy', 'mbind',
];

/**
 * The part of DENIED that only an attack calls: breaking out of the container (mounts,
 * namespaces, chroot, handles to the host's files), reaching into other processes, loading
 * kernel code, or acting on the whole host (clock, reboot, swap, accounting, I/O ports). No
 * runtime or library probes these, so the process that calls one is killed (SIGSYS) instead
 * of being answered EPERM. The kernel logs every kill (audit type 1326: pid, uid, syscall)
 * where the controller reads it, so the attempt leaves an audit entry; an EPERM leaves
 * nothing (Docker 20.10 cannot set SECCOMP_FILTER_FLAG_LOG, and logging every EPERM would
 * also log every clone3 probe of glibc). What runtimes do probe (io_uring, bpf, perf,
 * userfaultfd, keyctl, adjtimex's read-only query, NUMA, ...) stays EPERM.
 */
export const KILLED = [
  'mount', 'umount', 'umount2', 'pivot_root', 'chroot', 'fsopen', 'fsconfig', 'fsmount', 'fspick',
  'move_mount', 'open_tree', 'mount_setattr', 'quotactl', 'quotactl_fd', 'swapon', 'swapoff',
  'unshare', 'setns',
  'ptrace', 'process_vm_readv', 'process_vm_writev',
  'init_module', 'finit_module', 'delete_module', 'kexec_load', 'kexec_file_load',
  'clock_settime', 'clock_settime64', 'settimeofday', 'stime',
  'reboot', 'acct', 'iopl', 'ioperm', 'open_by_handle_at',
];

/** personality(2) values still allowed: PER_LINUX (no change) and 0xffffffff (query). */
const PERSONALITY_KEPT = new Set([0, 0xffffffff]);

export function derivePlugin(moby) {
  const denied = new Set(DENIED);
  const syscalls = [];
  for (const rule of moby.syscalls) {
    // Rules that apply only with a capability: every plugin runs with none (CapDrop ALL).
    if ((rule.includes?.caps ?? []).length > 0) continue;
    const out = structuredClone(rule);
    // Rules that apply unless a capability is held always applied: make them unconditional.
    if (out.excludes?.caps) delete out.excludes.caps;
    if (out.action === 'SCMP_ACT_ALLOW') {
      out.names = out.names.filter((n) => !denied.has(n));
      if (out.names.length === 0) continue;
      if (out.names.includes('personality') && !(out.args.length === 1 && PERSONALITY_KEPT.has(out.args[0].value))) continue;
    }
    syscalls.push(out);
  }
  const killed = new Set(KILLED);
  syscalls.push(
    {
      names: DENIED.filter((n) => !killed.has(n)),
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: [],
      comment: 'LogoMesh: never needed by a plugin; denied with EPERM (see docs/security.md)',
      includes: {},
      excludes: {},
    },
    {
      names: DENIED.filter((n) => killed.has(n)),
      action: 'SCMP_ACT_KILL_PROCESS',
      args: [],
      comment: 'LogoMesh: never needed by a plugin, only called by an attack; the process is killed and the kernel logs it (see docs/security.md)',
      includes: {},
      excludes: {},
    },
  );
  // Native 64-bit code only: no 32-bit (x86, arm, ...) or x32 sub-architecture in the filter,
  // so the kernel kills a process that makes a system call through those ABIs (SIGSYS).
  // On x86 the 32-bit ABI reaches sockets through socketcall(2), whose arguments seccomp
  // cannot read: with it, the no-network profile's AF_UNIX-only rule could be bypassed.
  const archMap = moby.archMap.map((a) => ({ architecture: a.architecture, subArchitectures: [] }));
  return { defaultAction: moby.defaultAction, archMap, syscalls };
}

/** The plugin profile for a plugin without network: sockets only in the AF_UNIX family. */
export function deriveNoNetwork(plugin) {
  const filtered = ['socket', 'socketpair'];
  // socketcall (32-bit x86) multiplexes every socket call behind a pointer seccomp cannot
  // read, so it cannot be limited to AF_UNIX: it goes entirely.
  const removed = new Set([...filtered, 'socketcall']);
  const syscalls = [];
  for (const rule of plugin.syscalls) {
    const out = structuredClone(rule);
    if (out.action === 'SCMP_ACT_ALLOW') {
      out.names = out.names.filter((n) => !removed.has(n));
      if (out.names.length === 0) continue;
    }
    syscalls.push(out);
  }
  syscalls.push(
    {
      names: filtered,
      action: 'SCMP_ACT_ALLOW',
      args: [{ index: 0, value: AF_UNIX, valueTwo: 0, op: 'SCMP_CMP_EQ' }],
      comment: 'LogoMesh no-network: sockets in the AF_UNIX family only (the hub socket)',
      includes: {},
      excludes: {},
    },
    {
      names: filtered,
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EAFNOSUPPORT,
      args: [{ index: 0, value: AF_UNIX, valueTwo: 0, op: 'SCMP_CMP_NE' }],
      comment: 'LogoMesh no-network: any other address family does not exist here (EAFNOSUPPORT)',
      includes: {},
      excludes: {},
    },
    // Raw sockets forge or sniff packets and need CAP_NET_RAW, which no plugin holds; no
    // runtime or library opens one to probe (they probe AF_INET/AF_INET6 streams and
    // datagrams, and netlink, which stay EAFNOSUPPORT). Trying is an attack: the caller is
    // killed and the kernel logs it, like the calls of KILLED. These rules win over the
    // EAFNOSUPPORT one where both match (libseccomp takes the stricter action).
    ...[
      { comment: 'a packet socket (raw frames)', args: [{ index: 0, value: AF_PACKET, valueTwo: 0, op: 'SCMP_CMP_EQ' }] },
      ...[AF_INET, AF_INET6].map((family) => ({
        comment: `a raw ${family === AF_INET ? 'IPv4' : 'IPv6'} socket`,
        args: [
          { index: 0, value: family, valueTwo: 0, op: 'SCMP_CMP_EQ' },
          { index: 1, value: SOCK_TYPE_MASK, valueTwo: SOCK_RAW, op: 'SCMP_CMP_MASKED_EQ' },
        ],
      })),
    ].map(({ comment, args }) => ({
      names: ['socket'],
      action: 'SCMP_ACT_KILL_PROCESS',
      args,
      comment: `LogoMesh no-network: ${comment} is an attack; the process is killed and the kernel logs it`,
      includes: {},
      excludes: {},
    })),
  );
  return { ...plugin, syscalls };
}

function write(file, profile) {
  writeFileSync(file, `${JSON.stringify(profile, null, 2)}\n`);
  console.log(`wrote ${file}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const source = process.argv[2];
  if (!source) {
    console.error('usage: node images/seccomp/derive.mjs <moby>/profiles/seccomp/default.json');
    process.exit(2);
  }
  const here = path.dirname(fileURLToPath(import.meta.url));
  const plugin = derivePlugin(JSON.parse(readFileSync(source, 'utf8')));
  write(path.join(here, 'plugin.json'), plugin);
  write(path.join(here, 'plugin-no-network.json'), deriveNoNetwork(plugin));
}
