import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readAudit } from '../../src/audit/audit-log.js';
import { instance, REPO, runCli, sleep, tempDir } from './support.js';

const HOST_APP = path.join(REPO, 'examples', 'host-application', 'host_app.py');

function probe(root: string, id: string, consumes: string[]): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(REPO, 'test/fixtures/controller/probe.mjs'), path.join(dir, 'main.mjs'));
  // probe.mjs subscribes to news.* in its hello.
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: node\nentrypoint: main.mjs\ncoordination:\n  exposesMethods: [echo, whoami, never, crash, call, emit, seen]\n  consumesMethods: [${consumes.join(', ')}]\n  subscribes: [news.*]\n`);
}

/**
 * A host application in Python, with the standard library only (examples/host-application),
 * serves host methods to plugins of `logomesh up --host-methods`, over the hub's TCP endpoint
 * with the token: the same ACL, timeouts and audit as calls between plugins.
 */
describe('host methods served by a host application on the TCP endpoint', () => {
  it('a plugin calls the Python application; a plugin that does not declare the method is refused', async () => {
    const root = tempDir('lm-hostapp-');
    probe(root, 'asker', ['get_user', 'log_event']);
    probe(root, 'stranger', []);
    const home = tempDir('lm-hostapp-home-');
    const env = { LOGOMESH_HOME: home, LOGOMESH_INSTANCE: `${instance()}-hostapp` };
    const up = await runCli(['up', '-d', root, '--host-methods', 'get_user,log_event'], { env });
    expect(up.code, up.stderr).toBe(0);
    let app: ChildProcessByStdio<null, Readable, Readable> | undefined;
    try {
      const call = async (plugin: string, target: string, data: unknown) => JSON.parse((await runCli(['call', `${plugin}.call`, JSON.stringify({ target, data })], { env })).stdout) as Record<string, unknown>;
      // Declared, not served yet: unavailable, not unknown.
      expect(await call('asker', 'get_user', { id: 1 })).toMatchObject({ code: 'LM_PLUGIN_UNAVAILABLE' });

      app = spawn('python3', [HOST_APP, '--home', home], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      app.stdout.on('data', (c: Buffer) => (out += c.toString()));
      app.stderr.on('data', (c: Buffer) => (out += c.toString()));
      for (let i = 0; i < 200 && !out.includes('serving'); i++) await sleep(50);
      expect(out).toContain('serving get_user, log_event');

      expect(await call('asker', 'get_user', { id: 1 })).toEqual({ ok: { id: 1, name: 'Ada', askedBy: 'asker' } });
      expect(await call('asker', 'log_event', { what: 'x' })).toEqual({ ok: { logged: 1 } });
      expect(await call('asker', 'get_user', { id: 99 })).toMatchObject({ code: 'LM_PLUGIN_ERROR', message: 'LookupError: no user 99' });
      expect(await call('stranger', 'get_user', { id: 1 })).toMatchObject({ code: 'LM_PERMISSION_DENIED', message: expect.stringContaining("plugin stranger does not list host method 'get_user'") });

      // The controller is another process and writes its audit trail through a stream: a line
      // may reach the file a moment after the call's answer reached the CLI.
      const wanted = ['host register get_user,log_event allowed', 'asker call get_user allowed', 'stranger call get_user denied'];
      let trail: string[] = [];
      for (let i = 0; i < 50; i++) {
        trail = readAudit(path.join(home, 'audit.jsonl')).map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}`);
        if (wanted.every((w) => trail.includes(w))) break;
        await sleep(100);
      }
      expect(trail).toEqual(expect.arrayContaining(wanted));

      app.kill('SIGKILL');
      await new Promise((r) => app!.once('exit', r));
      // The hub sees the connection go; the names are served by nobody again.
      let after: Record<string, unknown> = {};
      for (let i = 0; i < 50; i++) {
        after = await call('asker', 'get_user', { id: 1 });
        if (after.code === 'LM_PLUGIN_UNAVAILABLE') break;
        await sleep(100);
      }
      expect(after).toMatchObject({ code: 'LM_PLUGIN_UNAVAILABLE' });
    } finally {
      app?.kill('SIGKILL');
      expect((await runCli(['down'], { env })).code).toBe(0);
    }
  });

  it('up refuses a host method list that is not method names', async () => {
    const r = await runCli(['up', '-d', tempDir('lm-hostapp-bad-'), '--host-methods', 'get-user'], { env: { LOGOMESH_HOME: tempDir('lm-hostapp-bad-home-') } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^LM_USAGE: LOGOMESH_HOST_METHODS \(or --host-methods\) lists what is not a method name: get-user/m);
  });
});
