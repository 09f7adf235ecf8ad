import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError } from '../errors.js';

/**
 * Where a container's cgroups are, found from one of its processes the way the kernel
 * reports them (/proc/<pid>/cgroup and /proc/self/mountinfo), so the cgroupfs and systemd
 * drivers, v1, v2 and hybrid hosts all work without knowing Docker's naming.
 */
export interface CgroupDirs {
  /**
   * 1: the v1 controllers hold the limits and counters (a hybrid host's unified dir, if any,
   * adds PSI files, cgroup.events and cgroup.kill). 2: the unified dir holds everything.
   */
  readonly version: 1 | 2;
  readonly memory?: string;
  readonly cpu?: string;
  readonly cpuacct?: string;
  readonly pids?: string;
  readonly blkio?: string;
  readonly unified?: string;
}

interface Mount {
  readonly root: string;
  readonly point: string;
  readonly type: string;
  readonly options: readonly string[];
}

function mounts(mountinfo: string): Mount[] {
  const out: Mount[] = [];
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [type, , superOptions = ''] = line.slice(sep + 3).split(' ');
    if (type !== 'cgroup' && type !== 'cgroup2') continue;
    out.push({ root: unescape(left[3] ?? '/'), point: unescape(left[4] ?? ''), type, options: superOptions.split(',') });
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** A cgroup path as the process sees it, made a host path under the mount that holds it. */
function under(m: Mount, cgroupPath: string): string | undefined {
  const rel = path.posix.relative(m.root, cgroupPath);
  if (rel.startsWith('..')) return undefined;
  return path.join(m.point, rel);
}

/** Pure: the dirs from the text of /proc/<pid>/cgroup and of /proc/self/mountinfo. */
export function parseCgroupDirs(procCgroup: string, mountinfo: string): CgroupDirs {
  return cgroupDirsIn(procCgroup, mounts(mountinfo));
}

function cgroupDirsIn(procCgroup: string, all: readonly Mount[]): CgroupDirs {
  const dirs: { -readonly [K in keyof CgroupDirs]?: CgroupDirs[K] } = {};
  for (const line of procCgroup.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, hierarchy, controllers = '', cgroupPath = '/'] = m;
    if (hierarchy === '0' && controllers === '') {
      const mount = all.find((x) => x.type === 'cgroup2');
      if (mount) dirs.unified = under(mount, cgroupPath);
      continue;
    }
    for (const c of controllers.split(',')) {
      if (c !== 'memory' && c !== 'cpu' && c !== 'cpuacct' && c !== 'pids' && c !== 'blkio') continue;
      const mount = all.find((x) => x.type === 'cgroup' && x.options.includes(c));
      const dir = mount && under(mount, cgroupPath);
      if (dir) dirs[c] = dir;
    }
  }
  return { ...dirs, version: dirs.memory ? 1 : 2 };
}

/**
 * The cgroup mounts of /proc/self/mountinfo, by proc root, kept from one container to the
 * next: the kernel builds that file under the mount namespace's lock, and with 200 containers
 * (their root filesystems, the staging mounts) reading it for each new plugin took about 5 ms
 * of the controller's main thread each (0.95 s of a profiled `up` of 200). The cgroup mounts themselves do not
 * change; read again when the kept ones do not hold a process's cgroup dir.
 */
const cgroupMounts = new Map<string, readonly Mount[]>();

/**
 * The cgroup dirs of the container whose process `pid` is (Docker's State.Pid). Throws
 * LM_MONITOR_UNAVAILABLE when the process is gone or its cgroups are not mounted here
 * (a controller in a container without the host's /sys/fs/cgroup and pid namespace).
 */
export function cgroupDirsOf(pid: number, proc = '/proc'): CgroupDirs {
  let text: string;
  try {
    text = readFileSync(path.join(proc, String(pid), 'cgroup'), 'utf8');
  } catch (err) {
    throw unavailable(pid, proc, err);
  }
  // The cgroup mounts of the last read, if they still hold this process's cgroups.
  const kept = cgroupMounts.get(proc);
  if (kept) {
    const dirs = cgroupDirsIn(text, kept);
    const needed = dirs.version === 1 ? dirs.memory : dirs.unified;
    if (needed && existsSync(needed)) return dirs;
  }
  let mountinfo: string;
  try {
    mountinfo = readFileSync(path.join(proc, 'self', 'mountinfo'), 'utf8');
  } catch (err) {
    throw unavailable(pid, proc, err);
  }
  const all = mounts(mountinfo);
  cgroupMounts.set(proc, all);
  const dirs = cgroupDirsIn(text, all);
  const needed = dirs.version === 1 ? dirs.memory : dirs.unified;
  if (!needed) {
    throw new LogoMeshError('LM_MONITOR_UNAVAILABLE', `the cgroups of process ${pid} are not mounted in this mount namespace`, {
      file: '/proc/self/mountinfo',
      expected: "a cgroup v1 memory hierarchy or a cgroup2 mount holding the process's cgroup",
      found: text.trim().split('\n').slice(0, 3).join('; '),
    });
  }
  return dirs;
}

function unavailable(pid: number, proc: string, err: unknown): LogoMeshError {
  return new LogoMeshError('LM_MONITOR_UNAVAILABLE', `cannot find the cgroups of process ${pid}: ${(err as Error).message}`, {
    file: path.join(proc, String(pid), 'cgroup'),
    expected: 'a running process of the container, seen in this pid namespace',
    found: (err as NodeJS.ErrnoException).code ?? 'an error',
  });
}
