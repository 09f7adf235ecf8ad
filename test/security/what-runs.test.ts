import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { LABEL } from '../../src/labels.js';
import { silentLogger } from '../../src/log.js';
import { removeStagingLeftovers } from '../../src/sandbox/mount-staging.js';
import { pluginGid, pluginUid } from '../../src/runtimes/runtime.js';
import { docker, instance, report, runCaptured, tempDir } from '../integration/support.js';
import { copyAttack } from './support.js';

/**
 * What was checked is what runs, under `logomesh run` (runPlugin): the host paths a plugin
 * mounts are resolved right before its container is created, from descriptors, and the
 * engine mounts those very folders. The swaps are made by test hooks at fixed points, never
 * by timing.
 */

/** A host folder with a secret no plugin was granted, and an empty host folder a plugin must not write into. */
function hostTargets(): { secretDir: string; hostDir: string } {
  const secretDir = tempDir('lm-host-secret-');
  writeFileSync(path.join(secretDir, 'secret.txt'), 'host secret');
  const hostDir = tempDir('lm-host-tmp-');
  return { secretDir, hostDir };
}

/** Replace `dir/name` with a symlink to `target`, keeping the real folder aside as `name.old`. */
function swapForSymlink(dir: string, name: string, target: string): void {
  renameSync(path.join(dir, name), path.join(dir, `${name}.old`));
  symlinkSync(target, path.join(dir, name));
}

/** The probe's own user and group under this test run's instance. */
const IDS = [pluginUid(instance(), 'attack-swap-probe'), pluginGid(instance(), 'attack-swap-probe')] as const;

function probe(): string {
  const dir = copyAttack('swap-probe');
  chownSync(path.join(dir, 'out'), ...IDS);
  return dir;
}

async function containersOfProbe(): Promise<number> {
  const filters = { label: [`${LABEL.instance}=${instance()}`, `${LABEL.plugin}=attack-swap-probe`] };
  return (await (await docker()).listContainers({ all: true, filters: JSON.stringify(filters) })).length;
}

/** Staging folders this process left: none once a run is over. */
function leftoverStaging(): string[] {
  const mine = `lm-mounts-${process.pid}-`;
  const dirs = readdirSync(os.tmpdir()).filter((n) => n.startsWith(mine));
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`/${mine}`));
  return [...dirs, ...mounts];
}

describe('declared paths are resolved right before the container is created, and mounted from descriptors', () => {
  it('a folder swapped for a symlink after verification is refused with LM_PATH_CHANGED, and no container is created', async () => {
    const dir = probe();
    const { secretDir } = hostTargets();
    let err: unknown;
    try {
      await runCaptured(dir, { hooks: { beforeMounts: () => swapForSymlink(dir, 'data', secretDir) } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LogoMeshError);
    expect((err as LogoMeshError).code).toBe('LM_PATH_CHANGED');
    expect((err as LogoMeshError).message).toBe(
      `plugin attack-swap-probe: the path data its manifest grants (${path.join(dir, 'data')}) no longer resolves as it did when it was checked: expected a folder or regular file at ${path.join(dir, 'data')}, found a symlink (to ${secretDir}); the container is not created`,
    );
    expect(await containersOfProbe()).toBe(0);
    expect(leftoverStaging()).toEqual([]);
  });

  it('the plugin folder itself swapped for a symlink is refused the same way', async () => {
    const dir = probe();
    const { secretDir } = hostTargets();
    const parent = path.dirname(dir);
    const err = await runCaptured(dir, { hooks: { beforeMounts: () => swapForSymlink(parent, path.basename(dir), secretDir) } }).catch((e: unknown) => e);
    expect((err as LogoMeshError).code).toBe('LM_PATH_CHANGED');
    expect((err as LogoMeshError).message).toContain(`plugin attack-swap-probe: the plugin folder ${dir} no longer resolves as it did when it was checked`);
    expect(await containersOfProbe()).toBe(0);
  });

  it('folders swapped for symlinks between the check and the create: the container gets the folders that were checked, nothing of the host', async () => {
    const dir = probe();
    const { secretDir, hostDir } = hostTargets();
    const sources: string[] = [];
    const run = await runCaptured(dir, {
      hooks: {
        afterMounts: () => {
          swapForSymlink(dir, 'data', secretDir);
          swapForSymlink(dir, 'out', hostDir);
        },
      },
      onCreated: async (c) => {
        for (const m of (await c.inspect()).Mounts) sources.push(m.Source);
      },
    });
    expect(run.exitCode, run.stderr).toBe(0);
    const r = report<Record<string, unknown>>(run.stdout);
    expect(r.dataList).toEqual({ ok: true, value: ['data.txt'] });
    expect(r.dataRead).toEqual({ ok: true, value: "the plugin's own data\n" });
    expect(r.outWrite).toEqual({ ok: true, value: 'by the plugin' });
    // The writes went to the plugin's own out folder (now out.old), none to the host folder.
    expect(readFileSync(path.join(dir, 'out.old', 'written.txt'), 'utf8')).toBe('by the plugin');
    expect(readdirSync(hostDir)).toEqual([]);
    expect(readdirSync(secretDir)).toEqual(['secret.txt']);
    // The engine was given the controller's staging mounts, not the host paths.
    expect(sources.filter((s) => s.startsWith(path.join(os.tmpdir(), `lm-mounts-${process.pid}-`)))).toHaveLength(3);
    expect(leftoverStaging()).toEqual([]);
  });
});

describe('staging mounts', () => {
  it('those a killed run or controller left are unmounted and removed by the next one, never deleted through', async () => {
    // A process that is gone, and a staging folder of its with a folder still mounted in it.
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
    const leftover = mkdtempSync(path.join(os.tmpdir(), `lm-mounts-${dead}-`));
    const kept = tempDir('lm-kept-');
    writeFileSync(path.join(kept, 'precious.txt'), 'still here');
    mkdirSync(path.join(leftover, '0'));
    expect(spawnSync('mount', ['--bind', kept, path.join(leftover, '0')]).status).toBe(0);
    await removeStagingLeftovers(silentLogger);
    expect(existsSync(leftover)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(leftover);
    expect(readFileSync(path.join(kept, 'precious.txt'), 'utf8')).toBe('still here');
  });
});

describe('write grants', () => {
  it('are mounted nosuid, nodev, noexec: a planted setuid copy of a binary does not even run', async () => {
    const dir = probe();
    const run = await runCaptured(dir);
    expect(run.exitCode, run.stderr).toBe(0);
    const r = report<Record<string, unknown>>(run.stdout);
    expect(r.outOptions).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev', 'noexec']));
    expect(r.dataOptions).toEqual(expect.arrayContaining(['ro']));
    // The owner may set the bits (no capability is needed for that)...
    expect(r.plantSetuid).toEqual({ ok: true, value: '0o6755' });
    // ...but nothing runs from the folder, setuid or not.
    expect(r.runPlanted).toEqual({ ok: false, error: 'EACCES' });
    expect(existsSync(path.join(dir, 'out', 'planted'))).toBe(true);
  });
});

describe('a plugin that writes into a folder holding another declared path', () => {
  it('cannot turn that path into a symlink for the next start: it is a mount point (EBUSY), and a symlink there would be refused', async () => {
    const dir = probe();
    mkdirSync(path.join(dir, 'out', 'cache'));
    writeFileSync(path.join(dir, 'out', 'cache', 'kept.txt'), 'cached');
    chownSync(path.join(dir, 'out', 'cache'), ...IDS);
    const manifest = path.join(dir, 'plugin.yaml');
    writeFileSync(manifest, `${readFileSync(manifest, 'utf8')}  - id: cache\n    scope: filesystem\n    permissions: [read]\n    paths: ["./out/cache/**"]\n`);
    writeFileSync(
      path.join(dir, 'main.py'),
      [
        'import json, os',
        'from attempt import attempt',
        'print(json.dumps({',
        '  "rename": attempt(lambda: os.rename("/plugin/out/cache", "/plugin/out/gone")),',
        '  "rmdir": attempt(lambda: os.rmdir("/plugin/out/cache")),',
        '  "symlinkOver": attempt(lambda: os.symlink("/", "/plugin/out/cache")),',
        '}))',
      ].join('\n'),
    );
    const first = await runCaptured(dir);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(report(first.stdout)).toEqual({
      rename: { ok: false, error: 'EBUSY' },
      rmdir: { ok: false, error: 'EBUSY' },
      symlinkOver: { ok: false, error: 'EEXIST' },
    });
    // Had it managed (here the host does it, once the manifest is loaded: a load would refuse
    // the link already), the next start refuses to follow it.
    const err = await runCaptured(dir, { hooks: { beforeMounts: () => swapForSymlink(path.join(dir, 'out'), 'cache', '/') } }).catch((e: unknown) => e);
    expect((err as LogoMeshError).code).toBe('LM_PATH_CHANGED');
    expect((err as LogoMeshError).message).toContain('the path out/cache its manifest grants');
  });
});
