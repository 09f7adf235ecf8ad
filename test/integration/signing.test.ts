import { appendFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LABEL } from '../../src/labels.js';
import { copyFixture, docker, instance, tempDir, runCli, type CliExit } from './support.js';

/** Run the real `logomesh` CLI (from source) as a child process. */
function logomesh(args: string[], env: Record<string, string> = {}): Promise<CliExit> {
  return runCli(args, { env });
}

/** Containers the engine created with this instance label since `since` (ms). */
async function containersCreated(inst: string, since: number): Promise<number> {
  const stream = (await (await docker()).getEvents({
    since: Math.floor(since / 1000) - 1,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: JSON.stringify({ type: ['container'], event: ['create'], label: [`${LABEL.instance}=${inst}`] }),
  })) as NodeJS.ReadableStream;
  let text = '';
  for await (const chunk of stream) text += String(chunk);
  return text.split('\n').filter((l) => l.trim()).length;
}

/** A key pair, a policy requiring signatures from it, and a signed copy of hello-python. */
async function signedHello(): Promise<{ dir: string; policy: string }> {
  const keys = tempDir('lm-keys-');
  const keygen = await logomesh(['keygen', path.join(keys, 'release')]);
  expect(keygen.code, keygen.stderr).toBe(0);
  const policy = path.join(keys, 'policy.yaml');
  writeFileSync(policy, 'signatures:\n  required: true\n  trustedKeys: [release.pub]\n');
  const dir = copyFixture('hello-python');
  const sign = await logomesh(['sign', dir, '--key', path.join(keys, 'release.key')]);
  expect(sign.code, sign.stderr).toBe(0);
  expect(sign.stdout).toContain(`signed ${path.join(dir, 'plugin.sig')} (2 file(s), key id `);
  return { dir, policy };
}

describe('logomesh run with signed plugins', () => {
  it('runs a signed plugin under a policy that requires signatures', async () => {
    const { dir, policy } = await signedHello();
    const inst = `${instance()}-signed`;
    const since = Date.now();
    const r = await logomesh(['run', '--policy', policy, dir], { LOGOMESH_INSTANCE: inst });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('hello from hello-python');
    expect(await containersCreated(inst, since)).toBe(1);
    const left = await (await docker()).listContainers({ all: true, filters: JSON.stringify({ label: [`${LABEL.instance}=${inst}`] }) });
    expect(left).toEqual([]);
  });

  it('refuses an altered copy with LM_SIGNATURE before any container is created', async () => {
    const { dir, policy } = await signedHello();
    appendFileSync(path.join(dir, 'main.py'), 'print("and something the signer never saw")\n');
    const inst = `${instance()}-altered`;
    const since = Date.now();
    // The policy from the environment this time.
    const r = await logomesh(['run', dir], { LOGOMESH_INSTANCE: inst, LOGOMESH_POLICY: policy });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^LM_SIGNATURE: ${dir}: plugin hello-python refused: files changed since signing: main\\.py changed$`, 'm'));
    expect(r.stdout).toBe('');
    expect(await containersCreated(inst, since)).toBe(0);
    // And without ever reaching the engine: an unreachable one changes nothing.
    const offline = await logomesh(['run', '--policy', policy, dir], { DOCKER_HOST: 'unix:///nonexistent/docker.sock' });
    expect(offline.code).toBe(1);
    expect(offline.stderr).toContain('LM_SIGNATURE:');
    expect(offline.stderr).not.toContain('LM_ENGINE_UNAVAILABLE');
  });

  it('refuses an unsigned plugin when the policy requires signatures', async () => {
    const { policy } = await signedHello();
    const r = await logomesh(['run', '--policy', policy, copyFixture('hello-python')], { DOCKER_HOST: 'unix:///nonexistent/docker.sock' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^LM_SIGNATURE: .*plugin hello-python refused: unsigned: there is no plugin\.sig/m);
  });
});
