import { appendFileSync, chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { labelFilter } from '../../src/labels.js';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { loadPolicy, type Policy } from '../../src/policy/policy.js';
import { generateKeyFiles } from '../../src/signing/keys.js';
import { signPlugin } from '../../src/signing/signature.js';
import { pluginGid, pluginUid } from '../../src/runtimes/index.js';
import { docker, instance, REPO, runCli, tempDir } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

function filesPlugin(root: string, id: string): string {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, 'files.mjs'), path.join(dir, 'main.mjs'));
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    [`id: ${id}`, 'version: 1.0.0', 'runtime: node', 'entrypoint: main.mjs', 'resources: { maxMemoryMB: 96, maxCpuPercent: 50 }', 'coordination:', '  exposesMethods: [read, write, exists, list]'].join('\n'),
  );
  return dir;
}

async function hostFor(suffix: string, policy: Policy): Promise<Controller> {
  const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-${suffix}` });
  return Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000, policy });
}

async function containersOf(inst: string): Promise<number> {
  return (await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) })).length;
}

describe('operator path grants in real containers', () => {
  let host: Controller;
  let shared: string;
  let ro: string;
  let rw: string;
  let outside: string;
  const call = (method: string, data: unknown) => host.call('files', method, data) as Promise<{ ok?: unknown; code?: string }>;

  beforeAll(async () => {
    shared = realpathSync(tempDir('lm-shared-'));
    ro = path.join(shared, 'ro');
    rw = path.join(shared, 'rw');
    mkdirSync(ro);
    mkdirSync(rw);
    writeFileSync(path.join(ro, 'hello.txt'), 'granted by the operator\n');
    chownSync(rw, pluginUid(`${instance()}-grants`, 'files'), pluginGid(`${instance()}-grants`, 'files'));
    outside = realpathSync(tempDir('lm-outside-'));
    const policyFile = path.join(tempDir('lm-policy-'), 'policy.yaml');
    writeFileSync(policyFile, `hostPaths:\n  - { path: ${shared}, permissions: [read] }\n  - { path: ${rw}, permissions: [read, write], plugins: [files] }\n`);
    host = await hostFor('grants', loadPolicy(policyFile));
    host.loadDirectory(filesPlugin(tempDir('lm-plugins-'), 'files'));
    await host.startAll();
  });
  afterAll(async () => {
    const inst = host ? host.home.instance : undefined;
    await host?.close();
    if (inst) expect(await containersOf(inst)).toBe(0);
  });

  it('a read grant is readable at /grants/<name>, read-only; a write grant is writable; each recreates the container', async () => {
    const before = host.status('files').containerId;
    const g = await host.grantPath('files', `${ro}:/grants/in`);
    expect(g).toMatchObject({ name: 'in', hostPath: ro, containerPath: '/grants/in', writable: false });
    const after = host.status('files');
    expect(after.state).toBe('ready');
    expect(after.containerId).not.toBe(before);
    expect(await call('read', { path: '/grants/in/hello.txt' })).toEqual({ ok: 'granted by the operator\n' });
    expect(await call('write', { path: '/grants/in/x', data: 'no' })).toMatchObject({ code: 'EROFS' });

    await host.grantPath('files', rw, { write: true });
    expect(await call('write', { path: '/grants/rw/out.txt', data: 'written inside' })).toEqual({ ok: true });
    expect(readFileSync(path.join(rw, 'out.txt'), 'utf8')).toBe('written inside');
    expect(await call('read', { path: '/grants/in/hello.txt' })).toMatchObject({ ok: expect.any(String) }); // both mounts now

    expect(host.checkCapability('files', 'read', path.join(ro, 'hello.txt'))).toMatchObject({ allowed: true });
    expect(host.checkCapability('files', 'write', path.join(ro, 'hello.txt'))).toMatchObject({ allowed: false });
    expect(host.checkCapability('files', 'write', path.join(rw, 'out.txt'))).toMatchObject({ allowed: true });
  });

  it('revocation recreates the container without the mount', async () => {
    const before = host.status('files').containerId;
    await host.revokePath('files', 'in');
    expect(host.status('files')).toMatchObject({ state: 'ready' });
    expect(host.status('files').containerId).not.toBe(before);
    expect(await call('exists', { path: '/grants/in' })).toBe(false);
    expect(await call('read', { path: '/grants/in/hello.txt' })).toMatchObject({ code: 'ENOENT' });
    expect(await call('list', { path: '/grants' })).toEqual({ ok: ['rw'] });
    expect(host.checkCapability('files', 'read', path.join(ro, 'hello.txt'))).toMatchObject({ allowed: false });
    await vi.waitFor(() => {
      const audit = readAudit(host.home.auditFile, { plugin: 'files' }).map((e) => `${e.action} ${e.resource} ${e.result}`);
      expect(audit).toEqual(expect.arrayContaining(['grant files:path:in granted', 'mount files:path:in allowed', 'revoke files:path:in revoked', 'recreate files ready']));
    });
  });

  it('a grant the policy does not cover is refused, and the container is left alone', async () => {
    const before = host.status('files').containerId;
    await expect(host.grantPath('files', outside)).rejects.toMatchObject({ code: 'LM_POLICY_DENIED' });
    await expect(host.grantPath('files', ro, { write: true })).rejects.toMatchObject({ code: 'LM_POLICY_DENIED' });
    await expect(host.grantPath('files', path.join(shared, 'nothing-here'))).rejects.toMatchObject({ code: 'LM_GRANT_PATH' });
    expect(host.status('files')).toMatchObject({ state: 'ready', containerId: before });
    // The audit trail is appended asynchronously.
    await vi.waitFor(() =>
      expect(readAudit(host.home.auditFile, { plugin: 'files' }).filter((e) => e.action === 'grant' && e.result === 'denied').map((e) => e.code)).toEqual([
        'LM_POLICY_DENIED',
        'LM_POLICY_DENIED',
        'LM_GRANT_PATH',
      ]),
    );
  });

  it('a symlink swapped between the grant and the container creation is refused', async () => {
    await host.stop('files');
    const link = path.join(shared, 'current');
    symlinkSync(ro, link);
    await host.grantPath('files', link); // stopped: recorded, mounted at the next start
    rmSync(link);
    symlinkSync(outside, link);
    await expect(host.start('files')).rejects.toMatchObject({ code: 'LM_GRANT_PATH' });
    expect(host.status('files')).toMatchObject({ state: 'failed', lastError: { code: 'LM_GRANT_PATH' } });
    expect(host.status('files').lastError?.message).toContain(`resolved to ${ro} when granted but to ${outside} now`);
    await host.revokePath('files', 'current');
    await host.start('files');
    expect(host.status('files').state).toBe('ready');
  });
});

describe('signatures verified again at every start', () => {
  let host: Controller;
  afterAll(async () => {
    const inst = host ? host.home.instance : undefined;
    await host?.close();
    if (inst) expect(await containersOf(inst)).toBe(0);
  });

  it('a restart after the signed plugin was altered is refused with LM_SIGNATURE and the plugin ends failed', async () => {
    const keys = tempDir('lm-keys-');
    const key = generateKeyFiles(path.join(keys, 'release'));
    const policyFile = path.join(keys, 'policy.yaml');
    writeFileSync(policyFile, 'signatures:\n  required: true\n  trustedKeys: [release.pub]\n');
    const dir = filesPlugin(tempDir('lm-plugins-'), 'files');
    signPlugin(dir, key.keyFile);
    host = await hostFor('resign', loadPolicy(policyFile));
    host.loadDirectory(dir);
    await host.startAll();
    expect(host.status('files').state).toBe('ready');
    appendFileSync(path.join(dir, 'main.mjs'), '// changed after signing\n');
    await expect(host.restart('files')).rejects.toMatchObject({ code: 'LM_SIGNATURE', message: expect.stringContaining('main.mjs changed') });
    expect(host.status('files')).toMatchObject({ state: 'failed', lastError: { code: 'LM_SIGNATURE' } });
    expect(existsSync(path.join(dir, 'plugin.sig'))).toBe(true);
    await vi.waitFor(() => expect(readAudit(host.home.auditFile, { plugin: 'files' }).some((e) => e.action === 'verify' && e.result === 'denied' && e.code === 'LM_SIGNATURE')).toBe(true));
  });
});

describe('logomesh up --policy, grant/revoke path through the control socket', () => {
  it('refuses a plugin above a ceiling at load, grants and revokes a path by CLI, and leaves nothing', async () => {
    const shared = realpathSync(tempDir('lm-shared-cli-'));
    chmodSync(shared, 0o755); // mkdtemp makes it 0700: the plugin's user could not enter it
    writeFileSync(path.join(shared, 'note.txt'), 'from the CLI grant\n');
    const policyFile = path.join(tempDir('lm-policy-cli-'), 'policy.yaml');
    writeFileSync(policyFile, `capabilities: { maxMemoryMB: 128 }\nhostPaths:\n  - { path: ${shared}, permissions: [read] }\n`);
    const env = { LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-cli-grant` };

    const greedy = tempDir('lm-greedy-');
    filesPlugin(greedy, 'files');
    writeFileSync(path.join(greedy, 'files', 'plugin.yaml'), readFileSync(path.join(greedy, 'files', 'plugin.yaml'), 'utf8').replace('maxMemoryMB: 96', 'maxMemoryMB: 512'));
    const refused = await runCli(['up', '--policy', policyFile, greedy], { env, timeoutMs: 60_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('LM_POLICY_DENIED: plugin files refused by the policy:');
    expect(refused.stderr).toContain(`${path.join(greedy, 'files', 'plugin.yaml')} /resources/maxMemoryMB: expected at most 128, found 512 (policy rule ${policyFile} /capabilities/maxMemoryMB)`);

    const up = await runCli(['up', '-d', '--policy', policyFile, filesPlugin(tempDir('lm-plugins-'), 'files')], { env, timeoutMs: 60_000 });
    expect(up.code, up.stderr).toBe(0);
    try {
      const grant = await runCli(['grant', 'files', 'path', `${shared}:/grants/shared`, '--read'], { env });
      expect(grant.code, grant.stderr).toBe(0);
      expect(grant.stdout.trim()).toBe(`files: ${shared} granted at /grants/shared (read-only); plugin ready`);
      const read = await runCli(['call', 'files.read', '{"path":"/grants/shared/note.txt"}'], { env });
      expect(JSON.parse(read.stdout)).toEqual({ ok: 'from the CLI grant\n' });
      const denied = await runCli(['grant', 'files', 'path', shared, '--write'], { env });
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/^LM_POLICY_DENIED: plugin files refused: the policy .* does not allow granting .* for write/m);
      const revoke = await runCli(['revoke', 'files', 'path', 'shared'], { env });
      expect(revoke.stdout.trim()).toBe(`files: ${shared} (shared) revoked; plugin ready`);
      const gone = await runCli(['call', 'files.exists', '{"path":"/grants/shared"}'], { env });
      expect(JSON.parse(gone.stdout)).toBe(false);
      const methods = await runCli(['revoke', 'files', 'files.read'], { env }); // the method kind still works
      expect(methods.code, methods.stderr).toBe(0);
    } finally {
      const down = await runCli(['down'], { env, timeoutMs: 60_000 });
      expect(down.code, down.stderr).toBe(0);
    }
    expect(await containersOf(env.LOGOMESH_INSTANCE)).toBe(0);
  });
});
