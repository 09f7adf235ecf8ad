import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { pluginGid, pluginUid } from '../../src/runtimes/runtime.js';
import { copyFixture, instance, report, runCaptured, tempDir } from './support.js';

interface Probe {
  uid: number;
  gid: number;
  euid: number;
  status: Record<string, string>;
  writeRoot: string;
  writeEtc: string;
  writeUsr: string;
  writePluginCode: string;
  writeTmp: string;
  tmpFill: { writtenMB: number; error: string | null };
  interfaces: string[];
}

describe('the sandbox as seen from inside a real container', () => {
  let probe: Probe;
  beforeAll(async () => {
    const r = await runCaptured(copyFixture('sandbox-probe'));
    expect(r.exitCode, r.stderr).toBe(0);
    probe = report<Probe>(r.stdout);
  });

  it('the root filesystem and the plugin code are read-only', () => {
    expect(probe.writeRoot).toBe('EROFS');
    expect(probe.writeEtc).toBe('EROFS');
    expect(probe.writeUsr).toBe('EROFS');
    expect(probe.writePluginCode).toBe('EROFS');
  });

  it('/tmp is writable and limited to maxTmpMB', () => {
    expect(probe.writeTmp).toBe('ok');
    expect(probe.tmpFill.error).toBe('ENOSPC');
    expect(probe.tmpFill.writtenMB).toBeLessThanOrEqual(8);
    expect(probe.tmpFill.writtenMB).toBeGreaterThanOrEqual(6);
  });

  it('runs as a non-root user with an empty capability set, no-new-privileges and seccomp', () => {
    // A user and a group of its own (the kernel names the group when it logs a seccomp kill), and no other group.
    expect(probe.uid).toBe(pluginUid(instance(), 'sandbox-probe'));
    expect(probe.euid).toBe(pluginUid(instance(), 'sandbox-probe'));
    expect(probe.gid).toBe(pluginGid(instance(), 'sandbox-probe'));
    expect(probe.status.Groups?.trim()).toBe(String(pluginGid(instance(), 'sandbox-probe')));
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) expect(probe.status[set], set).toBe('0000000000000000');
    expect(probe.status.NoNewPrivs).toBe('1');
    expect(probe.status.Seccomp).toBe('2'); // 2 = filter mode: a seccomp profile is loaded
  });

  it('has no network interface but loopback', () => {
    expect(probe.interfaces).toEqual(['lo']);
  });
});

describe('granted paths', () => {
  it('a read grant is readable, not writable; a write grant is writable; an ungranted host path is invisible', async () => {
    const dir = copyFixture('mounts-probe');
    const secretDir = tempDir('lm-secret-');
    const secret = path.join(secretDir, 'secret.txt');
    writeFileSync(secret, 'host secret');
    writeFileSync(path.join(dir, 'inputs', 'secret-path'), secret);
    // A bind mount keeps host ownership: the write grant must be writable by the plugin's uid.
    chownSync(path.join(dir, 'outputs'), pluginUid(instance(), 'mounts-probe'), pluginGid(instance(), 'mounts-probe'));

    const r = await runCaptured(dir);
    expect(r.exitCode, r.stderr).toBe(0);
    const p = report<Record<string, { ok: boolean; value?: string; error?: string } | boolean>>(r.stdout);
    expect(p.readInput).toEqual({ ok: true, value: 'granted input\n' });
    expect(p.writeInput).toEqual({ ok: false, error: 'EROFS' });
    expect(p.createInInputs).toEqual({ ok: false, error: 'EROFS' });
    expect(p.writeOutput).toEqual({ ok: true, value: 'written by plugin' });
    expect(readFileSync(path.join(dir, 'outputs', 'result.txt'), 'utf8')).toBe('written by plugin');
    expect(readFileSync(path.join(dir, 'inputs', 'data.txt'), 'utf8')).toBe('granted input\n');
    expect(p.readSecret).toEqual({ ok: false, error: 'ENOENT' });
    expect(p.secretInMountinfo).toBe(false);
  });

  it('a write grant on a folder the plugin user cannot write is refused before start', async () => {
    const dir = copyFixture('mounts-probe');
    writeFileSync(path.join(dir, 'inputs', 'secret-path'), '/nonexistent');
    await expect(runCaptured(dir)).rejects.toMatchObject({ code: 'LM_PATH_NOT_WRITABLE' });
  });
});
