import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { docker, REPO, runCli, sleep, tempDir } from '../integration/support.js';

/**
 * A forbidden system call under a controller, as `logomesh up` runs plugins: the kernel kills
 * the process that made it, logs the kill, and the controller reads the log, ties the kill
 * to its plugin (by the plugin's own group), audits it with the system call's name and stops
 * the plugin for good. A bystander keeps answering. Runs as root, as CI does: reading the
 * kernel log needs CAP_SYSLOG.
 */
const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

function plugin(root: string, id: string, file: string, runtime: 'python' | 'node', exposes: string[], resources = '{ maxMemoryMB: 128, maxCpuPercent: 50 }'): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  const entry = runtime === 'python' ? 'main.py' : 'main.mjs';
  copyFileSync(path.join(FIX, file), path.join(dir, entry));
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    [
      `id: ${id}`,
      'version: 1.0.0',
      `runtime: ${runtime}`,
      `entrypoint: ${entry}`,
      `resources: ${resources}`,
      // The most a restart policy can ask: a violation must still not be restarted.
      'restart: { policy: always, backoffMs: 100, maxRetries: 5 }',
      'coordination:',
      `  exposesMethods: [${exposes.join(', ')}]`,
      // probe.mjs subscribes to news.* in its hello.
      ...(file === 'probe.mjs' ? ['  subscribes: [news.*]'] : []),
    ].join('\n'),
  );
}

/** A controller of its own, running a bystander and the plugins `add` writes into the folder. */
async function controllerWith(name: string, add: (root: string) => void): Promise<Controller> {
  const root = tempDir(`lm-${name}-`);
  plugin(root, 'bystander', 'probe.mjs', 'node', ['echo', 'whoami', 'never', 'crash', 'call', 'emit', 'seen']);
  add(root);
  const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${inject('instance')}-${name}` });
  const host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000 });
  host.loadDirectory(root);
  await host.startAll();
  return host;
}

describe('a forbidden system call under a controller', () => {
  let host: Controller;
  const ATTACKER = ['echo', 'attack_self', 'attack_child'];
  const violations = (who: string) => readAudit(host.home.auditFile, { plugin: who }).filter((e) => e.who === who && e.action === 'violation' && e.code === 'LM_SECCOMP_VIOLATION');

  /** Wait (bounded) until the plugin is stopped for a violation. */
  async function stoppedForViolation(id: string): Promise<{ code: string; message: string }> {
    const until = Date.now() + 10_000;
    while (Date.now() < until && host.status(id).state !== 'failed') await sleep(50);
    const s = host.status(id);
    expect(s.state, JSON.stringify(s.lastError)).toBe('failed');
    expect(s.lastError?.code).toBe('LM_SECCOMP_VIOLATION');
    return s.lastError!;
  }

  beforeAll(async () => {
    host = await controllerWith('violations', (root) => {
      for (const id of ['attacker-self', 'attacker-child', 'attacker-raw']) plugin(root, id, 'syscall-attacker.py', 'python', ATTACKER);
    });
  });
  afterAll(async () => {
    await host?.close();
  });

  it('in the plugin process: killed, audited with the call named, stopped and not restarted; the bystander answers', async () => {
    expect(await host.call('attacker-self', 'echo', { before: true }, 5_000)).toEqual({ before: true });
    // The call fails with why, when the controller learns it in time (LM_SECCOMP_VIOLATION), else as an exit.
    await expect(host.call('attacker-self', 'attack_self', { syscall: 'mount' }, 5_000)).rejects.toMatchObject({ code: expect.stringMatching(/^LM_(PLUGIN_EXITED|PLUGIN_UNAVAILABLE|SECCOMP_VIOLATION)$/) });
    const error = await stoppedForViolation('attacker-self');
    expect(error.message).toMatch(/^plugin attacker-self: the kernel killed its process \d+ \(python3\) for calling mount\(2\) \(x86_64 system call 165\), which its seccomp profile forbids; the plugin is stopped, not restarted$/);
    await vi.waitFor(() => expect(violations('attacker-self')).toHaveLength(1));
    expect(violations('attacker-self')[0]).toMatchObject({ resource: 'attacker-self', reason: error.message });
    // Its restart policy (always) would have restarted a crash by now.
    await sleep(1_000);
    expect(host.status('attacker-self')).toMatchObject({ state: 'failed', restarts: 0 });
    expect(await host.call('bystander', 'echo', { after: 'self' }, 5_000)).toEqual({ after: 'self' });
  });

  it('in a child it forks and reaps at once: tied to the plugin all the same (by its group), audited, stopped', async () => {
    // The answer may or may not get out before the controller stops the plugin.
    await host.call('attacker-child', 'attack_child', { syscall: 'unshare' }, 5_000).catch(() => undefined);
    const error = await stoppedForViolation('attacker-child');
    expect(error.message).toMatch(/for calling unshare\(2\) \(x86_64 system call 272\)/);
    await vi.waitFor(() => expect(violations('attacker-child')).toHaveLength(1));
    expect(host.status('bystander').state).toBe('ready');
    expect(await host.call('bystander', 'echo', { after: 'child' }, 5_000)).toEqual({ after: 'child' });
  });

  it('a raw (packet) socket in a plugin without network: killed, audited, stopped', async () => {
    await host.call('attacker-raw', 'attack_self', { syscall: 'packet_socket' }, 5_000).catch(() => undefined);
    expect((await stoppedForViolation('attacker-raw')).message).toMatch(/for calling socket\(2\) \(x86_64 system call 41\)/);
    await vi.waitFor(() => expect(violations('attacker-raw')).toHaveLength(1));
  });

  it('before it is ready: its start fails with LM_SECCOMP_VIOLATION, audited', async () => {
    const root = tempDir('lm-violations-start-');
    plugin(root, 'attacker-start', 'syscall-at-start.py', 'python', ['echo']);
    host.loadDirectory(path.join(root, 'attacker-start'));
    await expect(host.start('attacker-start')).rejects.toMatchObject({ code: 'LM_SECCOMP_VIOLATION', message: expect.stringMatching(/for calling mount\(2\) \(x86_64 system call 165\)/) });
    expect(host.status('attacker-start')).toMatchObject({ state: 'failed', lastError: { code: 'LM_SECCOMP_VIOLATION' } });
    await vi.waitFor(() => expect(violations('attacker-start')).toHaveLength(1));
    expect(await host.call('bystander', 'echo', { after: 'start' }, 5_000)).toEqual({ after: 'start' });
  });

  it('the operator can start a stopped plugin again; it serves until it tries again', async () => {
    await host.start('attacker-self');
    expect(await host.call('attacker-self', 'echo', { again: true }, 5_000)).toEqual({ again: true });
    await host.call('attacker-self', 'attack_self', { syscall: 'ptrace' }, 5_000).catch(() => undefined);
    expect((await stoppedForViolation('attacker-self')).message).toMatch(/for calling ptrace\(2\) \(x86_64 system call 101\)/);
    await vi.waitFor(() => expect(violations('attacker-self')).toHaveLength(2));
  });
});

describe('a forbidden system call under `logomesh run`', () => {
  it('names the call and exits 159 (128 + SIGSYS)', async () => {
    const root = tempDir('lm-violations-run-');
    plugin(root, 'attacker-run', 'syscall-at-start.py', 'python', ['echo']);
    const r = await runCli(['run', path.join(root, 'attacker-run')]);
    expect(r.code).toBe(159);
    expect(r.stdout).not.toContain('still here');
    expect(r.stderr).toMatch(/LM_SECCOMP_VIOLATION: plugin attacker-run: the kernel killed its process \d+ \(python3\) for calling mount\(2\) \(x86_64 system call 165\)/);
  });
});

/**
 * What the kernel refuses inside the sandbox, under a controller: LogoMesh's kernel audit rules
 * (src/provision/kernel-audit.rules, loaded by provisioning) report each refusal, the controller
 * writes it to the plugin's record, and the plugin goes on serving. Needs the rules loaded
 * and syscall auditing on, as `npm test` provisions as root.
 */
describe('refusals inside the sandbox, seen through the kernel audit rules', () => {
  let host: Controller;
  const PROBER = ['echo', 'write_root', 'fill_tmp', 'exhaust_fds', 'fork_bomb', 'exec_tmp', 'become_root'];
  const denials = () => readAudit(host.home.auditFile, { plugin: 'prober' }).filter((e) => e.who === 'prober' && e.code === 'LM_SANDBOX_DENIED');
  /** Wait (bounded) for an entry whose reason matches. */
  async function denied(reason: RegExp): Promise<{ resource: string; reason?: string }> {
    const until = Date.now() + 5_000;
    let found;
    while (Date.now() < until && !(found = denials().find((e) => reason.test(e.reason ?? '')))) await sleep(50);
    expect(found, `no LM_SANDBOX_DENIED entry matching ${reason}; have:\n${denials().map((e) => e.reason).join('\n')}`).toBeDefined();
    return found!;
  }

  beforeAll(async () => {
    host = await controllerWith('denials', (root) =>
      plugin(root, 'prober', 'sandbox-denials.py', 'python', PROBER, '{ maxMemoryMB: 128, maxCpuPercent: 50, maxProcesses: 24, maxFileHandles: 128, maxTmpMB: 4 }'),
    );
  });
  afterAll(async () => {
    await host?.close();
  });
  afterEach(async () => {
    expect(host.status('prober').state).toBe('ready');
    expect(await host.call('bystander', 'echo', { still: 'up' }, 5_000)).toEqual({ still: 'up' });
  });

  it('writing to the read-only root and to /proc/sys', async () => {
    expect(await host.call('prober', 'write_root', {}, 10_000)).toEqual({ etc: 'EROFS', procSys: 'EROFS' });
    await denied(/^openat\(2\) on "\/etc\/.*" failed with EROFS: a write to a read-only place \(process \d+ python3\)$/);
    await denied(/^openat\(2\) on "\/proc\/sys\/kernel\/hostname" failed with EROFS/);
  });

  it('filling /tmp', async () => {
    expect(await host.call('prober', 'fill_tmp', {}, 10_000)).toEqual({ fill: 'ENOSPC' });
    await denied(/^write\(2\) failed with ENOSPC: \/tmp or a write grant is full/);
  });

  it('exhausting file handles', async () => {
    expect(await host.call('prober', 'exhaust_fds', {}, 10_000)).toMatchObject({ open: 'EMFILE' });
    await denied(/^openat\(2\) on "\/dev\/null" failed with EMFILE: its file-handle limit \(maxFileHandles\) is reached/);
  });

  it('a fork bomb', async () => {
    expect(await host.call('prober', 'fork_bomb', {}, 20_000)).toMatchObject({ fork: 'EAGAIN' });
    await denied(/^clone\(2\) failed with EAGAIN: its process limit \(maxProcesses\) is reached/);
  });

  it('running a file from /tmp (noexec)', async () => {
    expect(await host.call('prober', 'exec_tmp', {}, 10_000)).toEqual({ exec: 'EACCES' });
    await denied(/^execve\(2\) on "\/tmp\/true".* failed with EACCES: running a file from a noexec place/);
  });

  it('becoming root', async () => {
    expect(await host.call('prober', 'become_root', {}, 10_000)).toEqual({ setuid: 'EPERM' });
    await denied(/^setuid\(2\) failed with EPERM: a change of identity or capabilities/);
  });
});
