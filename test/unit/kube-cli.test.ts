import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { main } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/io.js';
import { KubeFixtures } from './support/kube-fixtures.js';
import { schemaErrors } from './support/kube-schemas.js';

const fx = new KubeFixtures();
afterAll(() => fx.remove());

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const sink = (f: (s: string) => void) => new Writable({ write: (chunk, _e, cb) => (f(String(chunk)), cb()) }) as unknown as NodeJS.WriteStream;
  const io: CliIo = { out: (l) => (out += `${l}\n`), err: (l) => (err += `${l}\n`), stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)) };
  const code = await main(args, io);
  return { code, out, err };
}

describe('logomesh kube render', () => {
  it('prints one YAML stream that kubectl apply takes, every object valid, in the namespace asked for', async () => {
    const dir = fx.folder();
    const { file } = fx.policy();
    const r = await run(['kube', 'render', dir, '--policy', file, '--namespace', 'team-a', '--registry', 'registry.example.com/lm', '--pod-cidr', '10.42.0.0/16']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const objects = parseAllDocuments(r.out).map((d) => d.toJS());
    expect(objects.flatMap((o) => schemaErrors(o))).toEqual([]);
    expect(objects.filter((o) => o.metadata.namespace !== undefined).every((o) => o.metadata.namespace === 'team-a')).toBe(true);
    const plain = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'lm-plugin-plain');
    expect(plain.spec.template.spec.containers[0].image).toMatch(/^registry\.example\.com\/lm\/plugin-plain:1\.0\.0-[0-9a-f]{12}$/);
    const proxyConfig = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'lm-egress-fetcher');
    expect(JSON.parse(proxyConfig.data['config.json']).subnet).toBe('10.42.0.0/16');
  });

  it("the image tag follows the plugin folder's content", async () => {
    const dir = fx.folder(['plain']);
    const image = async () => (await run(['kube', 'render', dir])).out.match(/image: (\S*plugin-plain\S*)/)![1];
    const before = await image();
    expect(await image()).toBe(before);
    writeFileSync(path.join(dir, 'plain', 'main.py'), 'print(2)\n');
    expect(await image()).not.toBe(before);
  });

  it('a folder that fails validation prints nothing on stdout and the manifest error', async () => {
    const dir = fx.folder(['plain', 'bad'], { bad: { files: { 'main.py': '\n' }, manifest: 'runtime: java\nentrypoint: main.py\n' } });
    const r = await run(['kube', 'render', dir]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^LM_MANIFEST_INVALID: .*bad\/plugin\.yaml/);
  });

  it('a policy requiring signatures refuses an unsigned plugin (LM_SIGNATURE), as logomesh up does', async () => {
    const dir = fx.folder(['plain']);
    const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const { file } = fx.policy(`signatures: { required: true, trustedKeys: [${JSON.stringify(pem)}] }\n`);
    const r = await run(['kube', 'render', dir, '--policy', file]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^LM_SIGNATURE: /);
  });

  it.each([
    [['--namespace', 'Team_A'], /--namespace 'Team_A'/],
    [['--arch', 's390x'], /--arch: expected one of amd64, arm64/],
    [['--pod-cidr', '10.244.0.0'], /--pod-cidr: expected an IPv4 network/],
    [['--registry', 'Registry/LM:1'], /--registry: expected an image name prefix/],
  ])('option %j: LM_KUBE_RENDER naming it, exit 1', async (opt, message) => {
    const r = await run(['kube', 'render', fx.folder(['plain']), ...opt]);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^LM_KUBE_RENDER: /);
    expect(r.err).toMatch(message);
  });

  it.each([
    [['kube'], /kube needs a subcommand: render/],
    [['kube', 'apply', 'x'], /unknown kube subcommand 'apply'/],
    [['kube', 'render'], /kube render needs one folder/],
    [['kube', 'render', 'a', 'b'], /kube render needs one folder/],
    [['kube', 'render', 'a', '--colour'], /colour/],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^LM_USAGE: /);
    expect(r.err).toMatch(message);
  });
});

describe('plugin image names', () => {
  it('a semver build suffix becomes a valid tag, and a long version is cut to fit 128 characters', async () => {
    const { pluginImageRef } = await import('../../src/kubernetes/plugin-image.js');
    const [plain] = fx.load(['plain']);
    const withVersion = (version: string) => ({ ...plain!, manifest: { ...plain!.manifest, version } });
    expect(pluginImageRef('r.example/lm', withVersion('1.2.3-rc.1+build.7'), 'ab'.repeat(32))).toBe('r.example/lm/plugin-plain:1.2.3-rc.1_build.7-abababababab');
    const tag = pluginImageRef('r', withVersion(`1.0.0-${'a'.repeat(200)}`), 'cd'.repeat(32)).split(':')[1]!;
    expect(tag).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/);
    expect(tag.endsWith('-cdcdcdcdcdcd')).toBe(true);
  });
});
