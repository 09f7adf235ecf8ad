import { createPrivateKey, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { loadPolicy, type Policy } from '../../src/policy/policy.js';
import { digestFolder, digestFolderAsync, generateKeyFiles, signedBytes, signPlugin, verifyPlugin, verifyPluginAsync, type SignatureFile } from '../../src/signing/index.js';
import { dedent, MAIN_PY, PluginFolders } from './support/plugin-folder.js';

const folders = new PluginFolders();
const keysDir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-keys-'));
afterAll(() => {
  folders.removeAll();
  rmSync(keysDir, { recursive: true, force: true });
});

let key: ReturnType<typeof generateKeyFiles>;
let required: Policy;
beforeAll(() => {
  key = generateKeyFiles(path.join(keysDir, 'release'));
  writeFileSync(path.join(keysDir, 'policy.yaml'), 'signatures:\n  required: true\n  trustedKeys: [release.pub]\n');
  required = loadPolicy(path.join(keysDir, 'policy.yaml'));
});

const SIGNED = dedent(`
  id: writer
  version: 1.0.0
  runtime: python
  entrypoint: main.py
  capabilities:
    - { id: out, scope: filesystem, permissions: [read, write], paths: ["./out/**"] }
    - { id: data, scope: filesystem, permissions: [read], paths: ["./data/**"] }
`);

function refused(fn: () => unknown): LogoMeshError {
  try {
    fn();
  } catch (err) {
    expect((err as LogoMeshError).code).toBe('LM_SIGNATURE');
    return err as LogoMeshError;
  }
  throw new Error('not refused');
}

function sigOf(dir: string): SignatureFile {
  return JSON.parse(readFileSync(path.join(dir, 'plugin.sig'), 'utf8')) as SignatureFile;
}

describe('what was verified is what was loaded', () => {
  it('refuses a manifest swapped after it was read, even when the signed one is back on disk', () => {
    const dir = folders.create({ 'plugin.yaml': SIGNED, 'main.py': MAIN_PY, 'out/.keep': '', 'data/rows.csv': 'a,b\n' });
    signPlugin(dir, key.keyFile);
    // The attacker's manifest is in place while LogoMesh reads it...
    const evil = `${SIGNED}coordination:\n  consumesMethods: [vault.read_secret]\n`;
    writeFileSync(path.join(dir, 'plugin.yaml'), evil);
    const loaded = loadManifest(dir);
    // ...and the signed one is put back before the signature is checked.
    writeFileSync(path.join(dir, 'plugin.yaml'), SIGNED);
    const err = refused(() => verifyPlugin(loaded, required));
    expect(err.message).toMatch(/the manifest that was loaded \(plugin\.yaml, sha256 [0-9a-f]{16}\) is not the one signed \(sha256 [0-9a-f]{16}\): it was changed after signing, or replaced while it was being loaded/);
    // Nothing else looks changed: the folder on disk is exactly as signed.
    expect(err.message).not.toContain('files changed since signing');
    expect(verifyPlugin(loadManifest(dir), required).status).toBe('verified');
  });
});

describe('mutable paths: write grants inside a signed folder', () => {
  it('are left out of the signature (version 2, named), so the plugin writing there does not break it', async () => {
    const dir = folders.create({ 'plugin.yaml': SIGNED, 'main.py': MAIN_PY, 'out/.keep': '', 'data/rows.csv': 'a,b\n' });
    signPlugin(dir, key.keyFile);
    const sig = sigOf(dir);
    expect(sig.version).toBe(2);
    expect(Object.keys(sig)).toEqual(['version', 'algorithm', 'keyId', 'files', 'mutable', 'signature']);
    expect(sig.mutable).toEqual(['out']);
    expect(Object.keys(sig.files)).toEqual(['data/rows.csv', 'main.py', 'plugin.yaml']);
    // The plugin's output, of any kind, changes nothing.
    writeFileSync(path.join(dir, 'out/result.json'), '{}');
    mkdirSync(path.join(dir, 'out/deep/er'), { recursive: true });
    writeFileSync(path.join(dir, 'out/deep/er/x.py'), 'print(2)\n');
    expect(verifyPlugin(loadManifest(dir), required)).toMatchObject({ status: 'verified', signed: { mutable: ['out'] } });
    expect(await verifyPluginAsync(loadManifest(dir), required)).toMatchObject({ status: 'verified', signed: { mutable: ['out'] } });
    // Read-only data stays covered.
    writeFileSync(path.join(dir, 'data/rows.csv'), 'evil\n');
    expect(refused(() => verifyPlugin(loadManifest(dir), required)).message).toContain('files changed since signing: data/rows.csv changed');
    await expect(verifyPluginAsync(loadManifest(dir), required)).rejects.toThrow('files changed since signing: data/rows.csv changed');
  });

  it('are covered by the signature: mutable paths other than the manifest\'s write grants are refused', () => {
    const dir = folders.create({ 'plugin.yaml': SIGNED, 'main.py': MAIN_PY, 'out/.keep': '', 'data/rows.csv': 'a,b\n' });
    signPlugin(dir, key.keyFile);
    const sig = sigOf(dir);
    // Validly signed, but declaring data/ mutable as well: whoever made it, it is not what the manifest grants.
    const mutable = ['data', 'out'];
    const files = Object.fromEntries(Object.entries(sig.files).filter(([k]) => !k.startsWith('data/')));
    const content = { version: 2 as const, keyId: sig.keyId, files, mutable };
    const forged = { ...content, algorithm: 'ed25519', signature: sign(null, signedBytes(content), createPrivateKey(readFileSync(key.keyFile))).toString('base64') };
    writeFileSync(path.join(dir, 'plugin.sig'), JSON.stringify(forged));
    expect(refused(() => verifyPlugin(loadManifest(dir), required)).message).toContain("the signature's mutable paths (data, out) are not the manifest's write grants inside the folder (out)");
    // Taking `mutable` out, or editing it, breaks the signature itself.
    writeFileSync(path.join(dir, 'plugin.sig'), JSON.stringify({ ...sig, mutable: [] }));
    expect(refused(() => verifyPlugin(loadManifest(dir), required)).message).toContain('bad signature: it does not verify');
  });
});

describe('the folder digest', () => {
  it('is bounded: over the byte or entry limit it says so instead of hashing', () => {
    const dir = folders.create({ 'plugin.yaml': SIGNED, 'main.py': MAIN_PY, 'out/big.bin': 'x'.repeat(5000), 'data/a': '1', 'data/b': '2' });
    expect(digestFolder(dir, { maxBytes: 4096 }).tooLarge).toBe('more than 4096 bytes in its files');
    expect(digestFolder(dir, { maxBytes: 4096, exclude: ['out'] }).tooLarge).toBeUndefined();
    expect(digestFolder(dir, { maxEntries: 3 }).tooLarge).toBe('more than 3 files and folders');
  });

  it('hashes asynchronously a chunk at a time: the event loop keeps turning, and the result is the same', async () => {
    const dir = folders.create({ 'plugin.yaml': SIGNED, 'main.py': MAIN_PY, 'out/.keep': '', 'data/.keep': '' });
    writeFileSync(path.join(dir, 'data/big.bin'), Buffer.alloc(48 * 1024 * 1024, 7));
    let turns = 0;
    let running = true;
    const spin = () => {
      turns++;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    const digest = await digestFolderAsync(dir);
    running = false;
    // One read of 1 MiB at a time, each awaited: the loop ran in between (48 chunks at least).
    expect(turns).toBeGreaterThan(40);
    expect(digest).toEqual(digestFolder(dir));
  });
});
