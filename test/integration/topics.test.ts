import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { docker, REPO, sleep, tempDir } from './support.js';

/**
 * Who may hear whom, in real containers under a controller: three Node plugins whose
 * manifests declare their topics, one of them trying every way to hear or publish what it
 * did not declare.
 */
const FIX = path.join(REPO, 'test', 'fixtures', 'controller');
const METHODS = ['subscribe', 'emit', 'broadcast', 'seen'];

function plugin(root: string, id: string, publishes: string[], subscribes: string[]): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, 'topic-probe.mjs'), path.join(dir, 'main.mjs'));
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    ['id: ' + id, 'version: 1.0.0', 'runtime: node', 'entrypoint: main.mjs', 'resources: { maxMemoryMB: 96, maxCpuPercent: 50 }', 'coordination:', `  exposesMethods: ${list(METHODS)}`, `  messaging: ${publishes.length > 0}`, `  publishes: ${list(publishes)}`, `  subscribes: ${list(subscribes)}`].join('\n'),
  );
}

describe('topic access control in real containers', () => {
  let host: Controller;
  const seen = async (id: string) => (await host.call(id, 'seen', {})) as { type: string; topic: string; from: string; data: unknown }[];
  const denied = (who: string) => readAudit(host.home.auditFile, { plugin: who }).filter((e) => e.who === who && e.result === 'denied').map((e) => `${e.action} ${e.resource}`);

  beforeAll(async () => {
    const root = tempDir('lm-topics-');
    plugin(root, 'news', ['news.*'], []);
    plugin(root, 'reader', [], ['news.flash']);
    plugin(root, 'snoop', ['snoop.*'], ['snoop.*']);
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${inject('instance')}-topics` });
    host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000 });
    host.loadDirectory(root);
    await host.startAll();
    expect(await host.call('reader', 'subscribe', { topic: 'news.flash' })).toEqual({ ok: true });
  });
  afterAll(async () => {
    await host?.close();
  });

  it('a plugin that subscribes to *, to another plugin\'s topic and to an undeclared prefix is refused each time, and hears nothing', async () => {
    for (const topic of ['*', 'news.flash', 'news.*', 'reader.*']) {
      expect(await host.call('snoop', 'subscribe', { topic }), topic).toMatchObject({ code: 'LM_PERMISSION_DENIED', message: expect.stringContaining(`may not subscribe to '${topic}'`) });
    }
    await host.call('news', 'emit', { topic: 'news.flash', data: { text: 'for readers only' } });
    await host.call('news', 'broadcast', { topic: 'news.flash', data: 'also' });
    await vi.waitFor(async () => expect((await seen('reader')).map((s) => s.data)).toEqual([{ text: 'for readers only' }, 'also']));
    await sleep(300);
    expect(await seen('snoop')).toEqual([]);
    await vi.waitFor(() => expect(denied('snoop').filter((d) => d.startsWith('subscribe')).sort()).toEqual(['subscribe *', 'subscribe news.*', 'subscribe news.flash', 'subscribe reader.*']));
  });

  it('a plugin that emits or broadcasts under a topic it does not own is refused and audited; the subscriber hears only the true sender', async () => {
    await host.call('snoop', 'emit', { topic: 'news.flash', data: 'forged' });
    await host.call('snoop', 'emit', { topic: 'news.flash', data: 'forged, to the reader', to: ['reader'] });
    await host.call('snoop', 'broadcast', { topic: 'news.flash', data: 'forged broadcast' });
    await host.call('news', 'emit', { topic: 'news.flash', data: 'real' });
    await vi.waitFor(async () => expect(await seen('reader')).toEqual([{ type: 'event', topic: 'news.flash', from: 'news', data: 'real' }]));
    await vi.waitFor(() => expect(denied('snoop')).toEqual(expect.arrayContaining(['event news.flash', 'broadcast news.flash'])));
  });

  it('a revocation bites on the next message, and a grant gives the topic back', async () => {
    host.revokeTopic('reader', 'news.flash');
    await host.call('news', 'emit', { topic: 'news.flash', data: 'after the revocation' });
    await sleep(300);
    expect(await seen('reader')).toEqual([]);
    host.grantTopic('reader', 'news.flash');
    await host.call('news', 'emit', { topic: 'news.flash', data: 'granted again' });
    await vi.waitFor(async () => expect((await seen('reader')).map((s) => s.data)).toEqual(['granted again']));
  });
});
