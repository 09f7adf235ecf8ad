import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ioBytes, keyValues, pressure, single } from '../../src/monitor/cgroup-file.js';
import { parseCgroupDirs } from '../../src/monitor/cgroups.js';
import { kernelWatches } from '../../src/monitor/kernel-watches.js';
import { cgroupPids, fileHandles, isContainerInit, openFiles, ProcessList } from '../../src/monitor/procfs.js';
import { CgroupSampler } from '../../src/monitor/sampler.js';
import { toUsage } from '../../src/monitor/usage.js';

const V2 = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/cgroup-v2');
const V2_DIR = path.join(V2, 'docker-4f2a.scope');

/** This host's own layout (cgroup v1 with a unified tree beside it), as /proc shows it. */
const HYBRID_MOUNTINFO = [
  '25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755',
  '26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw',
  '30 25 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory',
  '31 25 0:28 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids',
  '32 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct',
  '33 25 0:30 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,blkio',
].join('\n');
const HYBRID_CGROUP = ['12:pids:/docker/abc', '9:memory:/docker/abc', '5:cpu,cpuacct:/docker/abc', '4:blkio:/docker/abc', '1:name=systemd:/docker/abc', '0::/docker/abc'].join('\n');

describe('finding a container cgroups from /proc', () => {
  it('on a hybrid host: the v1 controllers, and the unified dir for PSI', () => {
    expect(parseCgroupDirs(HYBRID_CGROUP, HYBRID_MOUNTINFO)).toEqual({
      version: 1,
      memory: '/sys/fs/cgroup/memory/docker/abc',
      pids: '/sys/fs/cgroup/pids/docker/abc',
      cpu: '/sys/fs/cgroup/cpu,cpuacct/docker/abc',
      cpuacct: '/sys/fs/cgroup/cpu,cpuacct/docker/abc',
      blkio: '/sys/fs/cgroup/blkio/docker/abc',
      unified: '/sys/fs/cgroup/unified/docker/abc',
    });
  });

  it('on a cgroup v2 host (systemd driver): one dir', () => {
    const dirs = parseCgroupDirs(readFileSync(path.join(V2, 'pid-cgroup'), 'utf8'), readFileSync(path.join(V2, 'mountinfo'), 'utf8'));
    expect(dirs).toEqual({ version: 2, unified: '/sys/fs/cgroup/system.slice/docker-4f2a.scope' });
  });

  it('under a cgroup namespace root, and with escaped mount points', () => {
    const mi = '40 1 0:50 /docker/abc /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw';
    expect(parseCgroupDirs('0::/docker/abc/sub', mi).unified).toBe('/sys/fs/my cgroup/sub');
    // A path outside the mount's root is not visible here.
    expect(parseCgroupDirs('0::/other', mi).unified).toBeUndefined();
  });
});

describe('reading cgroup v2 files (recorded fixtures)', () => {
  const sampler = new CgroupSampler({ version: 2, unified: V2_DIR });
  const s = sampler.sample();

  it('reads every figure from its v2 file', () => {
    expect(s).toMatchObject({
      memoryUsage: 23068672,
      inactiveFile: 3145728,
      memoryPeak: 47185920,
      memoryLimit: 64 << 20,
      oomKills: 1,
      cpuUsageNs: 1_830_000_000,
      cpuLimitPercent: 50,
      cpuPeriods: 240,
      cpuThrottled: 96,
      pids: 5,
      pidsMax: 32,
      pidsRefused: 3,
      ioRead: 1048576 + 4096,
      ioWrite: 524288,
    });
    expect(sampler.memoryUsed()).toBe(23068672 - 3145728);
    expect(sampler.pids()).toEqual({ current: 5, max: 32 });
    expect(cgroupPids(V2_DIR)).toEqual([4242, 4250]);
    expect(new ProcessList(path.join(V2, 'no-such-cgroup')).pids(1)).toEqual([]);
  });

  it('makes the spec ResourceUsage of two samples', () => {
    const prev = { ...s, at: s.at - 1000, cpuUsageNs: s.cpuUsageNs - 250_000_000 };
    const limits = { memoryBytes: 64 << 20, cpuPercent: 50, processes: 32, fileHandles: 64, tmpBytes: 4 << 20, networkConnections: 2 };
    const u = toUsage('p', prev, s, limits, { fileHandles: 9, networkConnections: 1, violations: [], timestamp: 5 });
    expect(u).toEqual({
      pluginId: 'p',
      timestamp: 5,
      memory: { used: 23068672 - 3145728, peak: 47185920, limit: 64 << 20 },
      cpu: { percent: 25, limit: 50 },
      io: { fileHandles: 9, networkConnections: 1, diskReadBytes: 1052672, diskWriteBytes: 524288 },
      violations: [],
    });
  });

  it('watches memory.events and pids.events through inotify, PSI by trigger, and polls memory thresholds', () => {
    const plan = kernelWatches({ version: 2, unified: V2_DIR }, { thresholds: [1000], pidsPollMs: 20, pressure: [{ resource: 'memory', trigger: 'some 1 2', name: 'psi.memory.alert' }] });
    expect(plan.pollMemory).toBe(true);
    expect(plan.watches.map((w) => [w.name, w.spec.type, 'file' in w.spec ? path.basename(w.spec.file) : ''])).toEqual([
      ['oom', 'notify', 'memory.events'],
      ['pids', 'notify', 'pids.events'],
      ['psi.memory.alert', 'psi', 'memory.pressure'],
    ]);
  });

  it('watches v1 through eventfds, and pids.events (which v1 does not notify) from the kernel log and by polling', () => {
    const dirs = parseCgroupDirs(HYBRID_CGROUP, HYBRID_MOUNTINFO);
    const plan = kernelWatches(dirs, { thresholds: [100, 100, 200], pidsPollMs: 20, pressure: [] });
    expect(plan.pollMemory).toBe(false);
    expect(plan.watches.map((w) => [w.name, w.spec.type])).toEqual([
      ['oom', 'eventfd'],
      ['mem100', 'eventfd'],
      ['mem200', 'eventfd'],
      ['pids', 'poll'],
    ]);
    expect(plan.watches[1]!.spec).toMatchObject({ control: '/sys/fs/cgroup/memory/docker/abc/cgroup.event_control', args: '100' });
    // Read when the kernel log names the cgroup's first refused fork, then every 20 ms.
    expect(plan.watches[3]!.spec).toEqual({ type: 'poll', file: '/sys/fs/cgroup/pids/docker/abc/pids.events', intervalMs: 20, kernelLog: true });
  });
});

describe('cgroup file formats', () => {
  it('parses key-value files, single values and max', () => {
    expect(keyValues('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n').get('oom_kill')).toBe(3);
    expect(single('max\n')).toBe(Infinity);
    expect(single('4096\n')).toBe(4096);
  });

  it('parses PSI lines', () => {
    expect(pressure(readFileSync(path.join(V2_DIR, 'memory.pressure'), 'utf8'))).toEqual({ some: { avg10: 12.5, total: 912345 }, full: { avg10: 4, total: 301234 } });
  });

  it('parses v1 blkio and v2 io.stat byte counts', () => {
    expect(ioBytes('8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n')).toEqual({ read: 4096, write: 8192 });
    expect(ioBytes('8:0 rbytes=10 wbytes=20 rios=1 wios=1\n')).toEqual({ read: 10, write: 20 });
  });
});

describe("a watch's list of processes", () => {
  it('is read again when the task count changes, and every tenth poll whatever it says; else kept', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-procs-'));
    try {
      const procs = path.join(dir, 'cgroup.procs');
      writeFileSync(procs, '10\n11\n');
      const list = new ProcessList(dir);
      expect(list.pids(5)).toEqual([10, 11]);
      writeFileSync(procs, '10\n12\n');
      // Same task count: the list read before (a process gone is the caller's cue: procfs-check.ts).
      expect(list.pids(5)).toEqual([10, 11]);
      expect(list.pids(6)).toEqual([10, 12]);
      writeFileSync(procs, '13\n');
      for (let i = 0; i < 9; i++) expect(list.pids(6)).toEqual([10, 12]);
      expect(list.pids(6)).toEqual([13]);
      writeFileSync(procs, '14\n');
      expect(list.fresh(6)).toEqual([14]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('counting open files', () => {
  it("on procfs, as many as the process's fd folder lists (from the folder's size since Linux 6.2)", async () => {
    const child = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
    try {
      await new Promise((r) => child.once('spawn', r));
      // The child may still be closing what it does not keep across exec: compared only while
      // its fd table holds still (the same listing before and after the count).
      let listed = -1;
      let counted: number | undefined;
      for (let i = 0; i < 50; i++) {
        const before = readdirSync(`/proc/${child.pid}/fd`).length;
        counted = openFiles(child.pid!);
        if (readdirSync(`/proc/${child.pid}/fd`).length === before) {
          listed = before;
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(listed).toBeGreaterThanOrEqual(5);
      expect(counted).toBe(listed);
      expect(openFiles(2 ** 22 + 1)).toBeUndefined();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('in a folder that is not procfs (a fixture), by listing: a folder size there is not a count', () => {
    const proc = mkdtempSync(path.join(os.tmpdir(), 'lm-fake-proc-'));
    try {
      mkdirSync(path.join(proc, '7', 'fd'), { recursive: true });
      for (const n of ['0', '1', '2', '3']) writeFileSync(path.join(proc, '7', 'fd', n), '');
      expect(fileHandles([7, 8], proc)).toEqual({ total: 4, most: 4, pid: 7, gone: 1 });
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });

  it("leaves out the container's init (docker-init) when told, and knows it by its name only", () => {
    const proc = mkdtempSync(path.join(os.tmpdir(), 'lm-fake-proc-'));
    try {
      for (const [pid, comm, fds] of [[1, 'docker-init', 3], [7, 'python3', 5]] as const) {
        mkdirSync(path.join(proc, String(pid), 'fd'), { recursive: true });
        writeFileSync(path.join(proc, String(pid), 'comm'), `${comm}\n`);
        for (let n = 0; n < fds; n++) writeFileSync(path.join(proc, String(pid), 'fd', String(n)), '');
      }
      expect(isContainerInit(1, proc)).toBe(true);
      expect(isContainerInit(7, proc)).toBe(false);
      expect(isContainerInit(9, proc)).toBe(false);
      expect(fileHandles([1, 7], proc, 1)).toEqual({ total: 5, most: 5, pid: 7, gone: 0 });
      expect(fileHandles([1, 7], proc)).toEqual({ total: 8, most: 5, pid: 7, gone: 0 });
    } finally {
      rmSync(proc, { recursive: true, force: true });
    }
  });
});
