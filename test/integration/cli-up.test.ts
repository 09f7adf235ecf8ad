import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { labelFilter } from '../../src/labels.js';
import { docker, instance, REPO, tempDir, runCli, type CliExit } from './support.js';

function logomesh(args: string[], env: Record<string, string>, onStderr?: (text: string, child: ChildProcess) => void): Promise<CliExit> {
  return runCli(args, { env, onOutput: (o, child) => onStderr?.(o.stderr, child) });
}

function pluginsDir(): string {
  const root = tempDir('lm-cli-up-');
  for (const id of ['one', 'two']) {
    const dir = path.join(root, id);
    mkdirSync(dir);
    copyFileSync(path.join(REPO, 'test/fixtures/controller/probe.mjs'), path.join(dir, 'main.mjs'));
    writeFileSync(
      path.join(dir, 'plugin.yaml'),
      `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  exposesMethods: [echo, whoami, never, crash, call, emit, seen]\n  consumesMethods: [one.echo]\n  subscribes: [news.*]\n`,
    );
  }
  return root;
}

async function leftovers(inst: string): Promise<number> {
  return (await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) })).length;
}

describe('logomesh up / ps / call / logs / restart / down', () => {
  it('up -d, then every command through the control socket, then down leaves nothing', async () => {
    const home = tempDir('lm-home-');
    const env = { LOGOMESH_HOME: home, LOGOMESH_INSTANCE: `${instance()}-cli-d` };
    const up = await logomesh(['up', '-d', pluginsDir()], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/one\s+ready\s+node/);
    try {
      const ps = await logomesh(['ps', '--json'], env);
      expect((JSON.parse(ps.stdout) as { id: string; state: string }[]).map((p) => `${p.id}:${p.state}`)).toEqual(['one:ready', 'two:ready']);

      const call = await logomesh(['call', 'two.call', '{"target":"one.echo","data":{"hi":1}}'], env);
      expect(call.code, call.stderr).toBe(0);
      expect(JSON.parse(call.stdout)).toEqual({ ok: { hi: 1 } });

      const denied = await logomesh(['call', 'one.call', '{"target":"two.echo"}'], env);
      expect(JSON.parse(denied.stdout)).toMatchObject({ code: 'LM_PERMISSION_DENIED' });

      const missing = await logomesh(['call', 'one.nothing', '{}'], env);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/^LM_PERMISSION_DENIED: /m);

      const bad = await logomesh(['call', 'one.echo', '{not json'], env);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^LM_USAGE: the arguments must be JSON/m);

      const restart = await logomesh(['restart', 'two'], env);
      expect(restart.stdout.trim()).toBe('two: ready');

      const logs = await logomesh(['logs', 'one'], env);
      expect(logs.code).toBe(0);

      const unknown = await logomesh(['stop', 'nobody'], env);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^LM_PLUGIN_NOT_FOUND: no plugin nobody is loaded/m);
    } finally {
      const down = await logomesh(['down'], env);
      expect(down.code, down.stderr).toBe(0);
    }
    expect(await leftovers(env.LOGOMESH_INSTANCE)).toBe(0);
    expect(existsSync(path.join(home, 'control.sock'))).toBe(false);
    expect(existsSync(path.join(home, 'sockets'))).toBe(false);
    const after = await logomesh(['ps'], env);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/^LM_CONTROLLER_UNAVAILABLE: /m);
  });

  it('Ctrl-C on a foreground up stops everything and leaves nothing', async () => {
    const home = tempDir('lm-home-');
    const env = { LOGOMESH_HOME: home, LOGOMESH_INSTANCE: `${instance()}-cli-fg` };
    let sent = false;
    const up = await logomesh(['up', pluginsDir()], env, (text, child) => {
      if (!sent && text.includes('plugin(s) ready')) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent, up.stderr).toBe(true);
    expect(up.code).toBe(0);
    expect(await leftovers(env.LOGOMESH_INSTANCE)).toBe(0);
    expect(existsSync(path.join(home, 'sockets'))).toBe(false);
    expect(existsSync(path.join(home, 'control.sock'))).toBe(false);
  });
});

describe('controller recovery', () => {
  it('kill -9 of the controller: the next one adopts the running plugins, no orphans, no duplicates', async () => {
    const home = tempDir('lm-home-');
    const inst = `${instance()}-adopt`;
    const env = { LOGOMESH_HOME: home, LOGOMESH_INSTANCE: inst };
    const dir = pluginsDir();
    const first = await logomesh(['up', '-d', dir], env);
    expect(first.code, first.stderr).toBe(0);
    try {
      const pid = Number(/\(pid (\d+)\)/.exec(first.stderr)?.[1]);
      expect(pid).toBeGreaterThan(0);
      const before = JSON.parse((await logomesh(['ps', '--json'], env)).stdout) as { id: string; containerId: string }[];
      process.kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 300));
      expect(await leftovers(inst)).toBe(2); // the plugins outlive their controller

      const second = await logomesh(['up', '-d', dir], env);
      expect(second.code, second.stderr).toBe(0);
      const after = JSON.parse((await logomesh(['ps', '--json'], env)).stdout) as { id: string; containerId: string; state: string }[];
      expect(after.map((p) => p.state)).toEqual(['ready', 'ready']);
      // Adopted, not recreated: the same containers, reconnected to the new hub.
      expect(after.map((p) => p.containerId)).toEqual(before.map((p) => p.containerId));
      expect(await leftovers(inst)).toBe(2);
      const call = await logomesh(['call', 'two.call', '{"target":"one.echo","data":"after"}'], env);
      expect(JSON.parse(call.stdout)).toEqual({ ok: 'after' });
    } finally {
      await logomesh(['down'], env);
    }
    expect(await leftovers(inst)).toBe(0);
  });
});
