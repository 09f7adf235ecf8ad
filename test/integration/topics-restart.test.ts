import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { readAudit } from '../../src/audit/audit-log.js';
import { resolveHome } from '../../src/controller/home.js';
import { labelFilter } from '../../src/labels.js';
import { docker, instance, REPO, runCli, sleep, tempDir } from './support.js';

const FIX = path.join(REPO, 'test', 'fixtures', 'controller');

function plugin(root: string, id: string, publishes: string[], subscribes: string[]): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, 'topic-probe.mjs'), path.join(dir, 'main.mjs'));
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    ['id: ' + id, 'version: 1.0.0', 'runtime: node', 'entrypoint: main.mjs', 'resources: { maxMemoryMB: 96, maxCpuPercent: 50 }', 'coordination:', '  exposesMethods: [subscribe, emit, broadcast, seen]', `  messaging: ${publishes.length > 0}`, `  publishes: ${list(publishes)}`, `  subscribes: ${list(subscribes)}`].join('\n'),
  );
}

/**
 * `logomesh revoke|grant <plugin> topic <pattern>` in real containers, through the control
 * socket of a controller run by `up -d`, which is then killed with SIGKILL: the next
 * controller of the same home adopts the plugins with the revocation in force before their
 * first message, and gives the topic back when told to.
 */
describe('topic revocations through the control socket, across a controller killed with SIGKILL', () => {
  it('a revoked topic stays revoked for the adopted plugins; a grant gives it back', async () => {
    const root = tempDir('lm-topics-restart-');
    plugin(root, 'news', ['news.*'], []);
    plugin(root, 'reader', [], ['news.flash']);
    const inst = `${instance()}-topics-restart`;
    const env = { LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: inst };
    const home = resolveHome(env);
    const cli = async (...args: string[]) => {
      const r = await runCli(args, { env, timeoutMs: 120_000 });
      expect(r.code, `logomesh ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const call = async (target: string, data: unknown) => JSON.parse(await cli('call', target, JSON.stringify(data))) as unknown;
    const heard = async () => ((await call('reader.seen', {})) as { from: string; data: unknown }[]).map((s) => `${s.from}: ${String(s.data)}`);
    const up = async () => {
      const r = await runCli(['up', '-d', root], { env, timeoutMs: 120_000 });
      expect(r.code, r.stderr).toBe(0);
      return Number(/\(pid (\d+)\)/.exec(r.stderr)?.[1]);
    };
    try {
      const pid = await up();
      expect(pid).toBeGreaterThan(0);
      const refused = { code: 'LM_PERMISSION_DENIED', message: expect.stringContaining("the operator revoked 'news.flash'") };
      expect(await cli('revoke', 'reader', 'topic', 'news.flash')).toBe('reader: topic news.flash revoked\n');
      expect(await call('reader.subscribe', { topic: 'news.flash' })).toMatchObject(refused);
      // Only a pattern as the manifest lists it: a typo must not look done.
      const undeclared = await runCli(['revoke', 'reader', 'topic', 'news.*'], { env });
      expect(undeclared.code).toBe(1);
      expect(undeclared.stderr).toMatch(/^LM_PERMISSION_DENIED: plugin reader does not list 'news\.\*' under coordination\.publishes or coordination\.subscribes/m);
      const before = JSON.parse(await cli('ps', '--json')) as { id: string; containerId: string }[];

      process.kill(pid, 'SIGKILL');
      expect(JSON.parse(readFileSync(home.stateFile, 'utf8')).plugins.reader.permissions).toEqual({ revokedTopics: ['news.flash'] });
      await up();
      // Adopted, not recreated, and the revocation is in force for them.
      expect((JSON.parse(await cli('ps', '--json')) as { id: string; containerId: string }[]).map((p) => p.containerId)).toEqual(before.map((p) => p.containerId));
      expect(await call('reader.subscribe', { topic: 'news.flash' })).toMatchObject(refused);
      await call('news.emit', { topic: 'news.flash', data: 'while revoked' });
      await call('news.emit', { topic: 'news.flash', data: 'to the reader, while revoked', to: ['reader'] });
      await sleep(300);
      expect(await heard()).toEqual([]);

      expect(await cli('grant', 'reader', 'topic', 'news.flash')).toBe('reader: topic news.flash granted\n');
      expect(await call('reader.subscribe', { topic: 'news.flash' })).toEqual({ ok: true });
      await call('news.emit', { topic: 'news.flash', data: 'granted again' });
      await vi.waitFor(async () => expect(await heard()).toEqual(['news: granted again']), { timeout: 10_000 });
      const trail = readAudit(home.auditFile).map((e) => `${e.who} ${e.action} ${e.resource} ${e.result}`);
      expect(trail).toEqual(expect.arrayContaining(['operator revoke reader:topic:news.flash revoked', 'controller revoke reader:topic:news.flash revoked', 'operator grant reader:topic:news.flash granted']));
    } finally {
      await runCli(['down'], { env, timeoutMs: 60_000 });
    }
    expect((await (await docker()).listContainers({ all: true, filters: JSON.stringify(labelFilter(inst)) })).length).toBe(0);
  }, 240_000);
});
