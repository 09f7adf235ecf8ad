import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/load.js';
import { helperBinaries } from '../../src/monitor/cgwatch-binary.js';
import { stageContainerMounts } from '../../src/sandbox/container-mounts.js';
import { holdRealPath } from '../../src/sandbox/host-paths.js';
import { MountHelper, MountHelperError, mountHelper, useMountHelper } from '../../src/sandbox/mount-helper.js';
import { MountStaging } from '../../src/sandbox/mount-staging.js';
import { copyFixture, docker, tempDir, until } from './support.js';

/**
 * lm-mount, the mount staging's helper (images/cgwatch/lm-mount.c), in the host's mount
 * namespace as the controller uses it: what it mounts and with which flags, what it refuses,
 * and what happens when it dies. Needs root (as staging does).
 */
const PREFIX = path.join(os.tmpdir(), `lm-mounts-${process.pid}-`);
let binary: string;

/** The mount options of `target` in this process's mount table, or undefined when nothing is mounted there. */
function mountOptions(target: string): string[] | undefined {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === target);
  return line?.split(' ')[5]?.split(',');
}

function stagingDir(): string {
  return mkdtempSync(PREFIX);
}

beforeAll(async () => {
  const found = await helperBinaries(await docker(), silentLogger);
  expect(found.mount, 'the cgwatch image builds lm-mount').toBeDefined();
  binary = found.mount!;
}, 600_000);

afterAll(() => useMountHelper(undefined));

describe('lm-mount', () => {
  it('bind-mounts the held descriptor, nosuid,nodev,noexec, read-only unless writable, and unmounts', async () => {
    const src = tempDir('lm-helper-src-');
    writeFileSync(path.join(src, 'f.txt'), 'through the descriptor');
    const dir = stagingDir();
    const helper = new MountHelper(binary, PREFIX);
    const held = holdRealPath(src, 'directory');
    try {
      for (const [name, writable] of [['rw', true], ['ro', false]] as const) {
        const target = path.join(dir, name);
        mkdirSync(target);
        await helper.mount(held.fd, writable, target);
        expect(readFileSync(path.join(target, 'f.txt'), 'utf8')).toBe('through the descriptor');
        expect(mountOptions(target)).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec', writable ? 'rw' : 'ro']));
        await helper.umount(target);
        expect(mountOptions(target)).toBeUndefined();
        // Nothing mounted there any more: EINVAL, as umount2(2) says.
        await expect(helper.umount(target)).rejects.toMatchObject({ errno: 'EINVAL', answered: true });
        rmdirSync(target);
      }
      expect(helper.starts).toBe(1);
    } finally {
      held.close();
      helper.close();
      rmdirSync(dir);
    }
  });

  it('takes no target outside its staging prefix, no ".." and no second line, and no descriptor this process does not hold', async () => {
    const dir = stagingDir();
    mkdirSync(path.join(dir, '0'));
    const helper = new MountHelper(binary, PREFIX);
    const held = holdRealPath(tempDir('lm-helper-src-'), 'directory');
    try {
      const refused = { errno: 'EINVAL', answered: true };
      await expect(helper.mount(held.fd, true, tempDir('lm-helper-elsewhere-'))).rejects.toMatchObject(refused);
      await expect(helper.mount(held.fd, true, `${dir}/../${path.basename(dir)}/0`)).rejects.toMatchObject(refused);
      // Another process's staging folder (this pid, other digits) is outside the prefix too.
      await expect(helper.mount(held.fd, true, path.join(os.tmpdir(), `lm-mounts-${process.pid}9-x`))).rejects.toMatchObject(refused);
      await expect(helper.mount(held.fd, true, `${dir}/0\numount 9 ${dir}/0`)).rejects.toMatchObject(refused);
      await expect(helper.mount(999_999, true, path.join(dir, '0'))).rejects.toMatchObject({ answered: true, errno: expect.stringMatching(/^(ENOENT|EBADF)$/) });
      expect(mountOptions(path.join(dir, '0'))).toBeUndefined();
      // Started for another process than its parent: it refuses to run at all.
      const other = spawnSync(binary, ['1', PREFIX], { input: '' });
      expect(other.status).toBe(2);
      expect(other.stderr.toString()).toMatch(/only for the process that started it/);
    } finally {
      held.close();
      helper.close();
      rmdirSync(path.join(dir, '0'));
      rmdirSync(dir);
    }
  });

  it('killed while a mount waits: that mount fails with answered false, the next request starts a new helper', async () => {
    const dir = stagingDir();
    mkdirSync(path.join(dir, '0'));
    const helper = new MountHelper(binary, PREFIX);
    const held = holdRealPath(tempDir('lm-helper-src-'), 'directory');
    try {
      await expect(helper.umount(path.join(dir, '0'))).rejects.toMatchObject({ errno: 'EINVAL' }); // started
      const pid = helper.pid!;
      process.kill(pid, 'SIGSTOP'); // the request below waits for an answer that never comes
      const waiting = helper.mount(held.fd, true, path.join(dir, '0'));
      process.kill(pid, 'SIGKILL');
      const err = await waiting.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MountHelperError);
      expect(err).toMatchObject({ answered: false, message: expect.stringMatching(/ended \(signal SIGKILL\) before answering/) });
      await helper.mount(held.fd, true, path.join(dir, '0'));
      expect(helper.starts).toBe(2);
      expect(helper.pid).not.toBe(pid);
      await helper.umount(path.join(dir, '0'));
    } finally {
      held.close();
      helper.close();
      rmdirSync(path.join(dir, '0'));
      rmdirSync(dir);
    }
  });

  it('ends when its input ends: a controller killed leaves no helper behind', async () => {
    const helper = new MountHelper(binary, PREFIX);
    const dir = stagingDir();
    try {
      await expect(helper.umount(path.join(dir, 'none'))).rejects.toMatchObject({ errno: 'ENOENT' });
      const pid = helper.pid!;
      helper.close();
      await until('the helper to exit', () => (existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')) ? undefined : true), 10_000);
    } finally {
      rmdirSync(dir);
    }
  });
});

describe('MountStaging through lm-mount', () => {
  it('stages, verifies and releases through the process helper: the container sees the flags, nothing is left', async () => {
    useMountHelper(binary, silentLogger);
    const src = tempDir('lm-helper-src-');
    writeFileSync(path.join(src, 'f.txt'), 'x');
    const staging = new MountStaging(silentLogger);
    expect(staging.mode.staged).toBe(true);
    const rw = await staging.stage(holdRealPath(src, 'directory'), { writable: true });
    const ro = await staging.stage(holdRealPath(path.join(src, 'f.txt'), 'file'), { writable: false });
    expect(mountOptions(rw)).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev', 'noexec']));
    expect(mountOptions(ro)).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    staging.verify();
    expect(mountHelper(PREFIX)?.pid).toBeGreaterThan(0);
    await staging.release();
    expect(mountOptions(rw)).toBeUndefined();
    expect(existsSync(path.dirname(rw))).toBe(false);
  });

  it('a helper that cannot serve fails the start with a coded error, never an unstaged mount, and leaves nothing', async () => {
    // A "helper" that ends at once, as a broken or killed one would: every request fails.
    useMountHelper('/bin/false', silentLogger);
    try {
      const before = readdirSync(os.tmpdir()).filter((n) => n.startsWith(path.basename(PREFIX)));
      const denied: unknown[] = [];
      const err = await stageContainerMounts({
        log: silentLogger,
        audit: (e) => denied.push(e),
        loaded: loadManifest(copyFixture('hello-python')),
        grants: [],
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LogoMeshError);
      expect(err).toMatchObject({ code: 'LM_ENGINE_ERROR', message: expect.stringMatching(/could not prepare the mount of .* before answering/) });
      expect(denied).toHaveLength(1);
      expect(readdirSync(os.tmpdir()).filter((n) => n.startsWith(path.basename(PREFIX)))).toEqual(before);
    } finally {
      useMountHelper(binary, silentLogger);
    }
  });
});
