import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogoMeshError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { loadPolicy, NO_POLICY, PolicyRejectedError, type Policy, type PolicyIssue } from '../../src/policy/policy.js';
import { generateKeyFiles, signPlugin, verifyPlugin } from '../../src/signing/index.js';
import { dedent, MAIN_PY, PluginFolders } from './support/plugin-folder.js';

/**
 * Issue 12, "apply the same to the policy file and plugin.sig": neither can hang, flood or
 * fool its reader, and the policy holds to the same closed set of YAML as a manifest.
 */

const dir = mkdtempSync(path.join(os.tmpdir(), 'logomesh-policy-files-'));
const folders = new PluginFolders();
const servers: net.Server[] = [];
let key: ReturnType<typeof generateKeyFiles>;
let requiring: Policy;
beforeAll(() => {
  key = generateKeyFiles(path.join(dir, 'release'));
  writeFileSync(path.join(dir, 'requiring.yaml'), 'signatures:\n  required: true\n  trustedKeys: [release.pub]\n');
  requiring = loadPolicy(path.join(dir, 'requiring.yaml'));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  folders.removeAll();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
const fresh = (ext = 'yaml'): string => path.join(dir, `policy-${++n}.${ext}`);

/** The issues of a refused policy, refused within a time bound. */
function policyIssues(file: string): PolicyIssue[] {
  const started = performance.now();
  try {
    loadPolicy(file);
  } catch (err) {
    expect(performance.now() - started).toBeLessThan(5000);
    expect(err).toBeInstanceOf(PolicyRejectedError);
    const issues = [...(err as PolicyRejectedError).issues];
    for (const i of issues) expect(i).toMatchObject({ code: 'LM_POLICY_INVALID', file, expected: expect.stringMatching(/\S/), found: expect.stringMatching(/\S/) });
    return issues;
  }
  throw new Error(`${file} was accepted`);
}

describe('the policy file is read as safely as a manifest', () => {
  it.each<[string, (file: string) => void, RegExp]>([
    ['a folder', (f) => mkdirSync(f), /^a folder$/],
    ['a FIFO', (f) => execFileSync('mkfifo', [f]), /^a FIFO \(named pipe\)$/],
    ['a symlink to /dev/zero', (f) => symlinkSync('/dev/zero', f), /^a character device \(\/dev\/zero\)$/],
    ['a symlink to /proc/self/mem', (f) => symlinkSync('/proc/self/mem', f), /^a file that cannot be read \(EIO\)$/],
    ['nothing at all', () => undefined, /^nothing$/],
  ])('%s -> LM_POLICY_INVALID naming it', (_name, make, found) => {
    const file = fresh();
    make(file);
    expect(policyIssues(file)).toEqual([expect.objectContaining({ path: '', found: expect.stringMatching(found) })]);
  });

  it('a Unix socket', async () => {
    const file = fresh();
    const server = net.createServer().listen(file);
    servers.push(server);
    await new Promise((r) => server.once('listening', r));
    expect(policyIssues(file)).toEqual([expect.objectContaining({ found: 'a Unix socket' })]);
  });

  it('a trusted key file that is a FIFO or a device is refused unopened, named at its line', () => {
    execFileSync('mkfifo', [path.join(dir, 'fifo.pub')]);
    symlinkSync('/dev/zero', path.join(dir, 'zero.pub'));
    const file = fresh();
    writeFileSync(file, 'signatures:\n  trustedKeys: [fifo.pub, zero.pub]\n');
    const issues = policyIssues(file);
    expect(issues.map((i) => [i.path, i.found])).toEqual([
      ['/signatures/trustedKeys/0', `${path.join(dir, 'fifo.pub')}: a FIFO (named pipe)`],
      ['/signatures/trustedKeys/1', `${path.join(dir, 'zero.pub')}: a character device (/dev/zero)`],
    ]);
  });

  it.each<[string, string, string, RegExp]>([
    ['an alias', 'signatures:\n  required: &r false\nplugins: {a: {hosts: [x.example:443]}, b: {hosts: *r}}\n', '/plugins/b/hosts', /^the alias \*r$/],
    ['a !!omap tag', 'signatures: !!omap [{required: false}]\n', '/signatures', /^the tag !!omap$/],
    ['%YAML 1.1', '%YAML 1.1\n---\nsignatures: {required: no}\n', '', /^%YAML 1\.1$/],
    ['a plugin id as a number key (quote it)', 'plugins:\n  2048: {hosts: []}\n', '/plugins', /^the key 2048 \(number\)$/],
  ])('YAML outside the accepted set: %s', (_name, text, pointer, found) => {
    const file = fresh();
    writeFileSync(file, text);
    expect(policyIssues(file)).toContainEqual(expect.objectContaining({ path: pointer, found: expect.stringMatching(found) }));
  });

  it('a quoted numeric plugin id is an ordinary key', () => {
    const file = fresh();
    writeFileSync(file, 'plugins:\n  "2048": {hosts: ["x.example:443"]}\n');
    expect(Object.keys(loadPolicy(file).plugins)).toEqual(['2048']);
  });

  it('a JSON policy with bare-CR line breaks is accepted', () => {
    const file = fresh('json');
    writeFileSync(file, JSON.stringify({ signatures: { required: false } }, null, 2).replace(/\n/g, '\r'));
    expect(loadPolicy(file).signatures.required).toBe(false);
  });
});

describe('plugin.sig is read only as a regular file in the plugin folder', () => {
  const MANIFEST = dedent(`
    id: signed-plugin
    version: 1.0.0
    runtime: python
    entrypoint: main.py
  `);

  /** A signed plugin whose plugin.sig is then replaced by `make`. */
  function withSig(make: (sig: string, pluginDir: string) => void): string {
    const pluginDir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY });
    signPlugin(pluginDir, key.keyFile);
    const sig = path.join(pluginDir, 'plugin.sig');
    unlinkSync(sig);
    make(sig, pluginDir);
    return pluginDir;
  }

  function sigRefusal(pluginDir: string, policy: Policy = requiring): string {
    const started = performance.now();
    try {
      verifyPlugin(loadManifest(pluginDir), policy);
    } catch (err) {
      expect(performance.now() - started).toBeLessThan(5000);
      expect(err).toBeInstanceOf(LogoMeshError);
      expect((err as LogoMeshError).code).toBe('LM_SIGNATURE');
      return (err as LogoMeshError).message;
    }
    throw new Error(`${pluginDir} was not refused`);
  }

  it.each<[string, (sig: string, pluginDir: string) => void, RegExp]>([
    ['a FIFO', (s) => execFileSync('mkfifo', [s]), /plugin\.sig is not a regular file .*: found a FIFO \(named pipe\)/],
    ['a folder', (s) => mkdirSync(s), /found a folder/],
    ['a symlink to /dev/zero', (s) => symlinkSync('/dev/zero', s), /found a symlink \(to \/dev\/zero\)/],
    ['a symlink to a real signature inside the folder', (s, d) => {
      writeFileSync(path.join(d, 'real.sig'), '{}');
      symlinkSync('real.sig', s);
    }, /found a symlink \(to real\.sig\)/],
  ])('%s -> LM_SIGNATURE (bad signature), whatever the policy', (_name, make, found) => {
    const pluginDir = withSig(make);
    expect(sigRefusal(pluginDir)).toMatch(found);
    expect(sigRefusal(pluginDir, NO_POLICY)).toMatch(found);
  });

  it('a Unix socket', async () => {
    let sock = '';
    const pluginDir = withSig((s) => (sock = s));
    const server = net.createServer().listen(sock);
    servers.push(server);
    await new Promise((r) => server.once('listening', r));
    expect(sigRefusal(pluginDir)).toMatch(/found a Unix socket/);
  });

  it.skipIf(!existsSync('/dev/tty'))('a symlink to a tty', () => {
    expect(sigRefusal(withSig((s) => symlinkSync('/dev/tty', s)))).toMatch(/found a symlink \(to \/dev\/tty\)/);
  });

  it('a hard-linked plugin.sig is still a regular file and is verified as one', () => {
    const pluginDir = folders.create({ 'plugin.yaml': MANIFEST, 'main.py': MAIN_PY });
    signPlugin(pluginDir, key.keyFile);
    linkSync(path.join(pluginDir, 'plugin.sig'), path.join(path.dirname(pluginDir), 'outside', 'plugin.sig'));
    expect(verifyPlugin(loadManifest(pluginDir), requiring).status).toBe('verified');
  });
});
