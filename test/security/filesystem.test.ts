import { chownSync, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/manifest/index.js';
import { pluginGid, pluginUid } from '../../src/runtimes/runtime.js';
import { instance } from '../integration/support.js';
import { tempDir } from '../integration/support.js';
import { attack, copyAttack } from './support.js';

type Attempt = { ok: true; value: unknown } | { ok: false; error: string };

/** A host file no plugin was granted, with content the tests look for. */
function hostSecret(): { dir: string; file: string } {
  const dir = tempDir('lm-host-secret-');
  const file = path.join(dir, 'secret.txt');
  writeFileSync(file, 'host secret');
  return { dir, file };
}

describe('the filesystem', () => {
  it('nothing outside /tmp, /dev/shm and the write grants is writable; no device nodes; nothing runs from /tmp', async () => {
    const { report } = await attack('write-outside');
    expect(report).toEqual({
      etcPasswd: 'EROFS',
      usrBin: 'EROFS',
      usrLib: 'EROFS',
      pluginCode: 'EROFS',
      pluginNewFile: 'EROFS',
      root: 'EROFS',
      varTmp: 'EROFS',
      run: 'EROFS',
      mkdirOpt: 'EROFS',
      renameEtc: 'EROFS',
      mknodDevice: 'EPERM',
      execFromTmp: 'EACCES',
      // By design: both are size-limited RAM that counts against the memory limit.
      tmp: 'ok',
      devShm: 'ok',
    });
  });

  it('a host path that was never granted does not exist for the plugin, by any route', async () => {
    const secret = hostSecret();
    const { report } = await attack<Record<string, Attempt | boolean | string>>('read-ungranted', (dir) => writeFileSync(path.join(dir, 'target'), secret.file));
    expect(report).toEqual({
      read: { ok: false, error: 'ENOENT' },
      list: { ok: false, error: 'ENOENT' },
      viaProcRoot: { ok: false, error: 'ENOENT' },
      inMountinfo: false,
      // The container's own /etc/hostname: the plugin id, not the host's name.
      hostname: 'attack-read-ungranted',
    });
  });

  it("symlinks in granted folders resolve inside the container: they lead to the container's files, never the host's", async () => {
    const secret = hostSecret();
    const { report } = await attack<Record<string, Attempt>>('symlink-escape', (dir) => {
      writeFileSync(path.join(dir, 'target'), secret.file);
      symlinkSync(secret.file, path.join(dir, 'data', 'secret-link'));
      symlinkSync('/', path.join(dir, 'data', 'root-link'));
      chownSync(path.join(dir, 'out'), pluginUid(instance(), 'attack-symlink-escape'), pluginGid(instance(), 'attack-symlink-escape'));
    });
    expect(report).toEqual({
      dataSecretLink: { ok: false, error: 'ENOENT' },
      dataRootLinkHostname: { ok: true, value: 'attack-symlink-escape' },
      dataRootLinkSecret: { ok: false, error: 'ENOENT' },
      outSecretLink: { ok: false, error: 'ENOENT' },
      outRootLinkHostname: { ok: true, value: 'attack-symlink-escape' },
      writeThroughSecretDirLink: { ok: false, error: 'ENOENT' },
      writeThroughRootLink: { ok: false, error: 'EROFS' },
    });
    // Nothing was written next to the host secret, and it is unchanged.
    expect(readdirSync(secret.dir)).toEqual(['secret.txt']);
    expect(readFileSync(secret.file, 'utf8')).toBe('host secret');
  });

  it('a grant that is itself a symlink out of the plugin folder is refused before anything runs', () => {
    const secret = hostSecret();
    const dir = copyAttack('symlink-escape');
    const manifest = path.join(dir, 'plugin.yaml');
    writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('./out/**', './escape/**'));
    symlinkSync(secret.dir, path.join(dir, 'escape'));
    expect(() => loadManifest(dir)).toThrow(expect.objectContaining({ code: 'LM_MANIFEST_PATH' }));
    expect(existsSync(path.join(secret.dir, 'pwned'))).toBe(false);
  });
});
