import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { chmodSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/io.js';
import { LogoMeshError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { loadPolicy, NO_POLICY, type Policy } from '../../src/policy/policy.js';
import { generateKeyFiles, keyIdOf, signPlugin, verifyPlugin, type SignatureFile } from '../../src/signing/index.js';
import { dedent, MAIN_PY, PluginFolders, symlink } from './support/plugin-folder.js';

const folders = new PluginFolders();
const keysDir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-keys-'));
afterAll(() => {
  folders.removeAll();
  rmSync(keysDir, { recursive: true, force: true });
});

const MANIFEST = dedent(`
  id: signed-plugin
  version: 1.0.0
  runtime: python
  entrypoint: main.py
`);

let trusted: ReturnType<typeof generateKeyFiles>;
let stranger: ReturnType<typeof generateKeyFiles>;
/** Requires signatures and trusts `trusted` only. */
let required: Policy;
/** Trusts `trusted` but does not require signatures. */
let optional: Policy;

function writePolicy(name: string, body: string): Policy {
  const file = path.join(keysDir, name);
  writeFileSync(file, body);
  return loadPolicy(file);
}

beforeAll(() => {
  trusted = generateKeyFiles(path.join(keysDir, 'trusted'));
  stranger = generateKeyFiles(path.join(keysDir, 'stranger'));
  required = writePolicy('required.yaml', 'signatures:\n  required: true\n  trustedKeys: [trusted.pub]\n');
  optional = writePolicy('optional.yaml', 'signatures:\n  trustedKeys: [trusted.pub]\n');
});

/** A plugin folder with a manifest, an entrypoint and a file in a sub-folder, signed by `trusted`. */
function signedPlugin(extra: Record<string, ReturnType<typeof symlink> | string> = {}): string {
  const dir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY, 'lib/util.py': 'X = 1\n', ...extra });
  signPlugin(dir, trusted.keyFile);
  return dir;
}

function sigOf(dir: string): SignatureFile {
  return JSON.parse(readFileSync(path.join(dir, 'plugin.sig'), 'utf8')) as SignatureFile;
}

/** The LM_SIGNATURE error verifyPlugin throws for `dir` under `policy`. */
function refusal(dir: string, policy: Policy = required): LogoMeshError {
  try {
    verifyPlugin(loadManifest(dir), policy);
  } catch (err) {
    expect(err).toBeInstanceOf(LogoMeshError);
    expect((err as LogoMeshError).code).toBe('LM_SIGNATURE');
    return err as LogoMeshError;
  }
  throw new Error(`${dir} was not refused`);
}

function signingError(fn: () => unknown): LogoMeshError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LogoMeshError);
    expect((err as LogoMeshError).code).toBe('LM_SIGNING');
    return err as LogoMeshError;
  }
  throw new Error('no LM_SIGNING error');
}

describe('sign and verify', () => {
  it('verifies an untouched signed plugin with a trusted key', () => {
    const dir = signedPlugin();
    expect(verifyPlugin(loadManifest(dir), required)).toMatchObject({ status: 'verified', keyId: trusted.keyId, key: trusted.pubFile, files: 3, signed: { mutable: [] } });
    expect(verifyPlugin(loadManifest(dir), optional).status).toBe('verified');
  });

  it('writes plugin.sig as documented: every file but itself, sorted, signed over canonical {files, keyId, version}', () => {
    const dir = signedPlugin();
    const sig = sigOf(dir);
    expect(Object.keys(sig)).toEqual(['version', 'algorithm', 'keyId', 'files', 'signature']);
    expect(sig.version).toBe(1);
    expect(sig.algorithm).toBe('ed25519');
    const pub = createPublicKey(readFileSync(trusted.pubFile, 'utf8'));
    expect(sig.keyId).toBe(keyIdOf(pub));
    expect(sig.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(Object.keys(sig.files)).toEqual(['lib/util.py', 'main.py', 'plugin.yaml']);
    expect(sig.files['main.py']).toBe(createHash('sha256').update(MAIN_PY).digest('hex'));
    expect(sig.files['plugin.yaml']).toBe(createHash('sha256').update(MANIFEST).digest('hex'));
    // The signed bytes, spelled out: an independent implementation must produce exactly these.
    const files = Object.entries(sig.files).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
    const canonical = `{"files":{${files}},"keyId":"${sig.keyId}","version":1}`;
    expect(verify(null, Buffer.from(canonical), pub, Buffer.from(sig.signature, 'base64'))).toBe(true);
  });

  it('refuses a changed file, naming it', () => {
    const dir = signedPlugin();
    writeFileSync(path.join(dir, 'lib/util.py'), 'X = 2\n');
    const err = refusal(dir);
    expect(err.message).toBe(`${dir}: plugin signed-plugin refused: files changed since signing: lib/util.py changed`);
    expect(err.details).toMatchObject({ file: dir, plugin: 'signed-plugin', changed: ['lib/util.py'], added: [], removed: [] });
  });

  it('refuses an added file, naming it', () => {
    const dir = signedPlugin();
    writeFileSync(path.join(dir, 'extra.py'), 'import os\n');
    expect(refusal(dir).message).toContain('files changed since signing: extra.py added');
  });

  it('refuses a removed file, naming it', () => {
    const dir = signedPlugin();
    unlinkSync(path.join(dir, 'lib/util.py'));
    expect(refusal(dir).message).toContain('files changed since signing: lib/util.py removed');
  });

  it('refuses a changed manifest', () => {
    const dir = signedPlugin();
    writeFileSync(path.join(dir, 'plugin.yaml'), `${MANIFEST}resources:\n  maxMemoryMB: 4096\n`);
    expect(refusal(dir).message).toContain('files changed since signing: plugin.yaml changed');
  });

  it('lists every change at once', () => {
    const dir = signedPlugin();
    writeFileSync(path.join(dir, 'main.py'), 'print("evil")\n');
    writeFileSync(path.join(dir, 'a.py'), '\n');
    unlinkSync(path.join(dir, 'lib/util.py'));
    expect(refusal(dir).message).toContain('files changed since signing: main.py changed, a.py added, lib/util.py removed');
  });

  it('refuses a plugin signed by a key the policy does not trust, when signatures are required', () => {
    const dir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY });
    signPlugin(dir, stranger.keyFile);
    expect(refusal(dir).message).toBe(`${dir}: plugin signed-plugin refused: unknown key id ${stranger.keyId}: not one of the policy's trusted keys`);
    // Not required: the files are checked, the unknown signer is reported but not refused.
    expect(verifyPlugin(loadManifest(dir), optional)).toMatchObject({ status: 'untrusted-key', keyId: stranger.keyId, files: 2 });
    expect(verifyPlugin(loadManifest(dir), NO_POLICY).status).toBe('untrusted-key');
  });

  it('refuses a corrupted signature, whether or not signatures are required', () => {
    const dir = signedPlugin();
    const sig = sigOf(dir);
    const bytes = Buffer.from(sig.signature, 'base64');
    bytes[10] = (bytes[10] ?? 0) ^ 0xff;
    writeFileSync(path.join(dir, 'plugin.sig'), JSON.stringify({ ...sig, signature: bytes.toString('base64') }));
    const message = `${dir}: plugin signed-plugin refused: bad signature: it does not verify with the trusted key ${trusted.keyId} (${trusted.pubFile})`;
    expect(refusal(dir).message).toBe(message);
    expect(refusal(dir, optional).message).toBe(message);
  });

  it('refuses a file list edited to match changed files (the signature no longer verifies)', () => {
    const dir = signedPlugin();
    writeFileSync(path.join(dir, 'main.py'), 'print("evil")\n');
    const sig = sigOf(dir);
    const files = { ...sig.files, 'main.py': createHash('sha256').update('print("evil")\n').digest('hex') };
    writeFileSync(path.join(dir, 'plugin.sig'), JSON.stringify({ ...sig, files }));
    const err = refusal(dir);
    expect(err.message).toContain('bad signature: it does not verify');
    expect(err.message).not.toContain('files changed'); // the list matches the folder; only the signature gives it away
  });

  it('refuses a signature whose keyId was swapped for a trusted one', () => {
    const dir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY });
    signPlugin(dir, stranger.keyFile);
    writeFileSync(path.join(dir, 'plugin.sig'), JSON.stringify({ ...sigOf(dir), keyId: trusted.keyId }));
    expect(refusal(dir).message).toContain(`bad signature: it does not verify with the trusted key ${trusted.keyId}`);
  });

  it('refuses a malformed plugin.sig even with no policy at all', () => {
    const dir = signedPlugin();
    writeFileSync(path.join(dir, 'plugin.sig'), '{"version": 1,');
    expect(refusal(dir, NO_POLICY).message).toMatch(/bad signature: plugin\.sig is malformed: not JSON/);
    writeFileSync(path.join(dir, 'plugin.sig'), JSON.stringify({ ...sigOf(signedPlugin()), extra: true }));
    expect(refusal(dir, NO_POLICY).message).toContain('unknown field(s) extra');
  });

  it('refuses changed files under no policy when a plugin.sig is present', () => {
    const dir = signedPlugin();
    writeFileSync(path.join(dir, 'main.py'), 'print("evil")\n');
    expect(refusal(dir, NO_POLICY).message).toContain('files changed since signing: main.py changed');
  });

  it('refuses an unsigned plugin when the policy requires signatures, and accepts it otherwise', () => {
    const dir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY });
    const err = refusal(dir);
    expect(err.message).toBe(`${dir}: plugin signed-plugin refused: unsigned: there is no plugin.sig, and the policy ${required.file} requires signatures (sign it with logomesh sign)`);
    expect(verifyPlugin(loadManifest(dir), optional)).toEqual({ status: 'unsigned' });
    expect(verifyPlugin(loadManifest(dir), NO_POLICY)).toEqual({ status: 'unsigned' });
  });

  it('records symlinks by their target without following them', () => {
    const dir = signedPlugin({ 'alias.py': symlink('main.py'), 'secret-link': symlink('../outside/secret.txt') });
    const sig = sigOf(dir);
    expect(sig.files['alias.py']).toBe('symlink:main.py');
    expect(sig.files['secret-link']).toBe('symlink:../outside/secret.txt');
    // What the link points to outside the folder is not covered...
    writeFileSync(path.join(dir, '..', 'outside', 'secret.txt'), 'changed\n');
    expect(verifyPlugin(loadManifest(dir), required).status).toBe('verified');
    // ...but where it points is.
    unlinkSync(path.join(dir, 'alias.py'));
    symlinkSync('lib/util.py', path.join(dir, 'alias.py'));
    expect(refusal(dir).message).toContain('files changed since signing: alias.py changed');
  });

  it('refuses a manifest that is a symlink, whose contents the signature does not cover', () => {
    const dir = folders.create({ 'real.yaml': MANIFEST, 'plugin.yaml': symlink('real.yaml'), 'main.py': MAIN_PY });
    signPlugin(dir, trusted.keyFile);
    expect(refusal(dir).message).toContain('the manifest plugin.yaml is a symlink');
  });

  it('covers a plugin.sig in a sub-folder like any other file', () => {
    const dir = signedPlugin({ 'sub/plugin.sig': 'not the signature\n' });
    expect(Object.keys(sigOf(dir).files)).toContain('sub/plugin.sig');
    writeFileSync(path.join(dir, 'sub/plugin.sig'), 'changed\n');
    expect(refusal(dir).message).toContain('sub/plugin.sig changed');
  });

  it('re-signing replaces plugin.sig and leaves no temporary file', () => {
    const dir = signedPlugin();
    writeFileSync(path.join(dir, 'main.py'), 'print("v2")\n');
    signPlugin(dir, trusted.keyFile);
    expect(verifyPlugin(loadManifest(dir), required).status).toBe('verified');
    expect(Object.keys(sigOf(dir).files)).toEqual(['lib/util.py', 'main.py', 'plugin.yaml']);
  });

  it('refuses to sign a folder holding a special file, and verification refuses it too', async () => {
    const dir = signedPlugin();
    const server = createServer();
    await new Promise<void>((r) => server.listen(path.join(dir, 'control.sock'), r));
    try {
      expect(signingError(() => signPlugin(dir, trusted.keyFile)).message).toContain('cannot sign a plugin folder holding control.sock (a socket)');
      expect(refusal(dir).message).toContain('files that cannot be signed: control.sock (a socket)');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('refuses to sign with a key inside the plugin folder, or a key that is not ed25519', () => {
    const dir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY });
    writeFileSync(path.join(dir, 'release.key'), readFileSync(trusted.keyFile), { mode: 0o600 });
    expect(signingError(() => signPlugin(dir, path.join(dir, 'release.key'))).message).toContain('the private key is inside the plugin folder');
    unlinkSync(path.join(dir, 'release.key'));
    const rsa = path.join(keysDir, 'rsa.key');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expect(signingError(() => signPlugin(dir, rsa)).message).toContain('expected an ed25519 private key');
    expect(signingError(() => signPlugin(dir, path.join(keysDir, 'nope.key'))).message).toContain('ENOENT');
    expect(lstatSync(path.join(dir, 'plugin.sig'), { throwIfNoEntry: false })).toBeUndefined();
  });

  it('refuses a private key its group or other users can read or change, and says how to fix it', () => {
    const dir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY });
    const shared = path.join(keysDir, 'shared.key');
    writeFileSync(shared, readFileSync(trusted.keyFile));
    for (const [mode, who] of [
      [0o644, 'its group'],
      [0o604, 'other users'],
      [0o620, 'its group'],
    ] as const) {
      chmodSync(shared, mode);
      const err = signingError(() => signPlugin(dir, shared));
      expect(err.message).toBe(`${shared}: expected a private key file only its owner can read (mode 0600 or 0400), found mode 0${mode.toString(8)}, which lets ${who} read or change it; run 'chmod 600 ${shared}'`);
      expect(err.details).toMatchObject({ file: shared, expected: 'a private key file only its owner can read (mode 0600 or 0400)' });
    }
    expect(lstatSync(path.join(dir, 'plugin.sig'), { throwIfNoEntry: false })).toBeUndefined();
    chmodSync(shared, 0o400);
    expect(signPlugin(dir, shared).keyId).toBe(trusted.keyId);
  });

  it('does not sign a plugin whose manifest is rejected', () => {
    const dir = folders.create({ 'plugin.yaml': MANIFEST.replace('python', 'cobol'), 'main.py': MAIN_PY });
    expect(() => signPlugin(dir, trusted.keyFile)).toThrow(/LM_MANIFEST_INVALID|manifest rejected/);
  });
});

describe('keygen', () => {
  it('writes a 0600 PKCS8 private key and an SPKI public key, and returns its key id', () => {
    const k = generateKeyFiles(path.join(keysDir, 'fresh'));
    expect(statSync(k.keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(k.keyFile, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(readFileSync(k.pubFile, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const pub = createPublicKey(readFileSync(k.pubFile, 'utf8'));
    expect(pub.asymmetricKeyType).toBe('ed25519');
    expect(k.keyId).toBe(keyIdOf(pub));
  });

  it('is 0600 whatever the umask', () => {
    const old = process.umask(0o000);
    try {
      expect(statSync(generateKeyFiles(path.join(keysDir, 'open-umask')).keyFile).mode & 0o777).toBe(0o600);
    } finally {
      process.umask(old);
    }
  });

  it('refuses to overwrite either file, and then writes nothing', () => {
    const k = generateKeyFiles(path.join(keysDir, 'once'));
    const before = readFileSync(k.keyFile, 'utf8');
    expect(signingError(() => generateKeyFiles(path.join(keysDir, 'once'))).message).toContain('never overwrites');
    expect(readFileSync(k.keyFile, 'utf8')).toBe(before);
    // Only the .pub there: the .key is not created either.
    writeFileSync(path.join(keysDir, 'half.pub'), 'x');
    signingError(() => generateKeyFiles(path.join(keysDir, 'half')));
    expect(lstatSync(path.join(keysDir, 'half.key'), { throwIfNoEntry: false })).toBeUndefined();
    // A dangling symlink counts as present: nothing is written through it.
    symlinkSync(path.join(keysDir, 'elsewhere.key'), path.join(keysDir, 'link.key'));
    signingError(() => generateKeyFiles(path.join(keysDir, 'link')));
    expect(lstatSync(path.join(keysDir, 'elsewhere.key'), { throwIfNoEntry: false })).toBeUndefined();
  });

  it('reports a folder it cannot write in with LM_SIGNING', () => {
    if (process.getuid?.() === 0) return; // root writes anywhere
    const ro = mkdtempSync(path.join(keysDir, 'ro-'));
    chmodSync(ro, 0o500);
    signingError(() => generateKeyFiles(path.join(ro, 'k')));
  });
});

describe('the keygen and sign commands', () => {
  function io(): CliIo & { outs: string[]; errs: string[] } {
    const outs: string[] = [];
    const errs: string[] = [];
    return { outs, errs, out: (l) => void outs.push(l), err: (l) => void errs.push(l), stdout: process.stdout, stderr: process.stderr };
  }

  it('keygen then sign, and the usual exit codes', async () => {
    const name = path.join(keysDir, 'cli');
    const a = io();
    expect(await main(['keygen', name], a)).toBe(0);
    expect(a.outs[0]).toMatch(/^key id [0-9a-f]{16}$/);
    const b = io();
    expect(await main(['keygen', name], b)).toBe(1);
    expect(b.errs[0]).toMatch(/^LM_SIGNING: /);
    const dir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY });
    const c = io();
    expect(await main(['sign', dir, '--key', `${name}.key`], c)).toBe(0);
    expect(c.outs[0]).toBe(`signed ${path.join(dir, 'plugin.sig')} (2 file(s), ${a.outs[0]})`);
    expect(await main(['sign', dir], io())).toBe(2);
    expect(await main(['keygen'], io())).toBe(2);
  });
});
