import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cgroupDirsOf } from '../../src/monitor/cgroups.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-cgmounts-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A /proc of its own: processes' cgroup files and a mountinfo naming `cgroupRoot` as the cgroup2 mount. */
function fakeProc(cgroupRoot: string): string {
  const proc = mkdtempSync(path.join(dir, 'proc-'));
  mkdirSync(path.join(proc, 'self'));
  writeFileSync(path.join(proc, 'self', 'mountinfo'), `30 1 0:26 / ${cgroupRoot} rw,nosuid - cgroup2 cgroup2 rw\n`);
  return proc;
}

function addProcess(proc: string, pid: number, cgroup: string): void {
  mkdirSync(path.join(proc, String(pid)), { recursive: true });
  writeFileSync(path.join(proc, String(pid), 'cgroup'), `0::${cgroup}\n`);
}

describe('cgroupDirsOf', () => {
  it('reads mountinfo once for many containers, and again when the kept mounts do not hold a cgroup', () => {
    const root = mkdtempSync(path.join(dir, 'cgroupfs-'));
    const proc = fakeProc(root);
    for (const pid of [11, 12]) {
      mkdirSync(path.join(root, 'docker', `c${pid}`), { recursive: true });
      addProcess(proc, pid, `/docker/c${pid}`);
    }
    expect(cgroupDirsOf(11, proc)).toEqual({ version: 2, unified: path.join(root, 'docker', 'c11') });
    // mountinfo gone: the kept mounts answer for the next container.
    rmSync(path.join(proc, 'self', 'mountinfo'));
    expect(cgroupDirsOf(12, proc)).toEqual({ version: 2, unified: path.join(root, 'docker', 'c12') });
    // A cgroup the kept mounts do not hold (its dir is not there): mountinfo is read again.
    const moved = mkdtempSync(path.join(dir, 'cgroupfs-'));
    mkdirSync(path.join(moved, 'docker', 'c13'), { recursive: true });
    addProcess(proc, 13, '/docker/c13');
    writeFileSync(path.join(proc, 'self', 'mountinfo'), `30 1 0:26 / ${moved} rw,nosuid - cgroup2 cgroup2 rw\n`);
    expect(cgroupDirsOf(13, proc)).toEqual({ version: 2, unified: path.join(moved, 'docker', 'c13') });
  });

  it('a process gone is LM_MONITOR_UNAVAILABLE, kept mounts or not', () => {
    const proc = fakeProc(mkdtempSync(path.join(dir, 'cgroupfs-')));
    expect(() => cgroupDirsOf(99, proc)).toThrow(expect.objectContaining({ code: 'LM_MONITOR_UNAVAILABLE' }));
  });
});
