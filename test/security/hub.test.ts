import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { resolveHome } from '../../src/controller/home.js';
import { Controller } from '../../src/controller/controller.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/audit/audit-log.js';
import { docker, REPO, sleep, tempDir } from '../integration/support.js';

/**
 * Attacks on the hub from plugins in real containers, under a Controller as `logomesh up`
 * runs them. The attackers speak the protocol by hand (test/fixtures/controller/hub-attacker.mjs);
 * a well-behaved `bystander` must answer after every attack, and the controller must stay up.
 * An undeclared method and a forged `from` are in test/integration/controller.test.ts.
 */
const FIX = path.join(REPO, 'test', 'fixtures', 'controller');
const ATTACKER_METHODS = ['flood', 'malformed', 'snoop', 'giant', 'lastClose', 'ignored', 'deepAnswer', 'deepFrames', 'deaf'];
const RATE = 200;

function plugin(root: string, id: string, file: string, exposes: string[], consumes: string[] = [], messaging = false): void {
  const dir = path.join(root, id);
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(FIX, file), path.join(dir, 'main.mjs'));
  writeFileSync(
    path.join(dir, 'plugin.yaml'),
    [
      `id: ${id}`,
      'version: 1.0.0',
      'runtime: node',
      'entrypoint: main.mjs',
      'resources: { maxMemoryMB: 128, maxCpuPercent: 50 }',
      'coordination:',
      `  exposesMethods: [${exposes.join(', ')}]`,
      `  consumesMethods: [${consumes.join(', ')}]`,
      `  messaging: ${messaging}`,
      // The flooder publishes flood.*; every attacker may hear any.* (the deaf plugin's test sends it events), the bystander news.*.
      `  publishes: [${messaging ? 'flood.*' : ''}]`,
      `  subscribes: [${file === 'probe.mjs' ? 'news.*' : 'any.*'}]`,
    ].join('\n'),
  );
}

describe('attacks on the hub from plugin containers', () => {
  let host: Controller;
  const violations = (who: string, code: string) => readAudit(host.home.auditFile, { plugin: who }).filter((e) => e.who === who && e.action === 'violation' && e.code === code);
  const bystanderAnswers = async (tag: string) => {
    expect(await host.call('bystander', 'echo', { tag }, 5_000)).toEqual({ tag });
    expect(host.status('bystander').state).toBe('ready');
  };

  beforeAll(async () => {
    const root = tempDir('lm-hub-attacks-');
    plugin(root, 'bystander', 'probe.mjs', ['echo', 'whoami', 'never', 'crash', 'call', 'emit', 'seen'], ['snoop.ignored']);
    plugin(root, 'flooder', 'hub-attacker.mjs', ATTACKER_METHODS, [], true);
    plugin(root, 'giant', 'hub-attacker.mjs', ATTACKER_METHODS);
    plugin(root, 'malformed', 'hub-attacker.mjs', ATTACKER_METHODS);
    plugin(root, 'snoop', 'hub-attacker.mjs', ATTACKER_METHODS);
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${inject('instance')}-hub-attacks` });
    host = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000, rateLimit: RATE });
    host.loadDirectory(root);
    await host.startAll();
    await bystanderAnswers('start');
  });
  afterAll(async () => {
    await host?.close();
  });

  it('a flood of events gets LM_RATE_LIMITED and is audited; the bystander answers during and after it', async () => {
    const flood = host.call('flooder', 'flood', { ms: 2_000 }, 15_000) as Promise<{ sent: number; codes: Record<string, number> }>;
    await sleep(500);
    await bystanderAnswers('during the flood');
    const r = await flood;
    console.log(`flood: ${r.sent} events sent in 2 s, answers ${JSON.stringify(r.codes)}`);
    expect(r.sent).toBeGreaterThan(4 * RATE);
    // Refused events are answered once a second, not one error each (a flood of answers would only feed the flood).
    expect(r.codes.LM_RATE_LIMITED).toBeGreaterThanOrEqual(1);
    expect(r.codes.LM_RATE_LIMITED).toBeLessThanOrEqual(4);
    await bystanderAnswers('after the flood');
    // Every refusal is on the record, in a few lines: the first of each second, and one with the count of the rest.
    await vi.waitFor(() => expect(violations('flooder', 'LM_RATE_LIMITED').reduce((n, e) => n + (e.count ?? 1), 0)).toBeGreaterThan(r.sent / 2), { timeout: 5_000 });
    const entries = violations('flooder', 'LM_RATE_LIMITED');
    expect(entries.length).toBeLessThanOrEqual(8);
    expect(entries[0]).toMatchObject({ resource: 'hub', result: 'denied' });
  });

  it('a 100 MB frame: the connection is closed with 1009 before the hub buffers it, and audited', async () => {
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    try {
      expect(await host.call('giant', 'giant', { mb: 100 }, 5_000)).toEqual({ sending: 100 * 1024 * 1024 });
      // The attacker reconnects after the close and says what close code it got.
      let code: unknown = null;
      for (let i = 0; i < 100 && code === null; i++) {
        await sleep(100);
        code = await host.call('giant', 'lastClose', {}, 2_000).catch(() => null);
      }
      expect(code).toBe(1009);
    } finally {
      clearInterval(sampler);
    }
    console.log(`controller RSS: ${Math.round(before / 2 ** 20)} MB before, ${Math.round(peak / 2 ** 20)} MB at most during the 100 MB frame`);
    expect(peak - before).toBeLessThan(150 * 2 ** 20);
    expect(violations('giant', 'LM_MESSAGE_TOO_LARGE')).toEqual([expect.objectContaining({ resource: 'hub', result: 'denied', reason: expect.stringContaining('connection closed') })]);
    await bystanderAnswers('after the 100 MB frame');
  });

  it('malformed frames (not JSON, not objects, wrong types, binary) are each answered with LM_PROTOCOL and audited', async () => {
    const r = (await host.call('malformed', 'malformed', {}, 30_000)) as Record<string, string>;
    expect(Object.keys(r)).toHaveLength(11);
    for (const [frame, code] of Object.entries(r)) expect(code, frame).toBe('LM_PROTOCOL');
    expect(violations('malformed', 'LM_PROTOCOL').length).toBeGreaterThanOrEqual(1);
    expect(host.status('malformed').state).toBe('ready');
    await bystanderAnswers('after malformed frames');
  });

  it("another plugin's socket is out of reach: only its own hub.sock (and health report) in /run/logomesh, the host path does not exist", async () => {
    const other = path.join(host.home.socketsDir, 'bystander', 'hub.sock');
    const r = (await host.call('snoop', 'snoop', { paths: [other, '/run/logomesh/../bystander/hub.sock', path.join(host.home.socketsDir, 'snoop', 'hub.sock')] })) as {
      listing: string[];
      attempts: Record<string, string>;
    };
    // Its own socket, and the controller's report for its Docker health check (read-only to it).
    expect(r.listing.sort()).toEqual(['health', 'hub.sock']);
    expect(r.attempts).toEqual({
      [other]: 'ENOENT',
      '/run/logomesh/../bystander/hub.sock': 'ENOENT',
      [path.join(host.home.socketsDir, 'snoop', 'hub.sock')]: 'ENOENT',
    });
    await bystanderAnswers('after the snoop');
  });

  it('a plugin that never answers: its callers, plugin and host, get LM_TIMEOUT; the bystander is unaffected', async () => {
    const t = Date.now();
    expect(await host.call('bystander', 'call', { target: 'snoop.ignored', timeout: 500 })).toMatchObject({ code: 'LM_TIMEOUT' });
    await expect(host.call('snoop', 'ignored', {}, 300)).rejects.toMatchObject({ code: 'LM_TIMEOUT' });
    expect(Date.now() - t).toBeLessThan(5_000);
    // On the silent plugin's record, not its callers'.
    await vi.waitFor(() =>
      expect(violations('snoop', 'LM_TIMEOUT')[0]).toMatchObject({ resource: 'hub', result: 'denied', reason: expect.stringMatching(/^did not answer ignored from (bystander|host) within \d+ ms$/) }),
    );
    expect(violations('bystander', 'LM_TIMEOUT')).toEqual([]);
    await bystanderAnswers('after the timeouts');
  });

  it('frames nested 5,000 deep (a request, an event, a broadcast, an answer) are refused with LM_PROTOCOL; the controller stays up', async () => {
    expect(await host.call('malformed', 'deepFrames', {}, 10_000)).toEqual({ request: 'LM_PROTOCOL', event: 'LM_PROTOCOL', broadcast: 'LM_PROTOCOL' });
    // The answer to this very call is 10 KB nested 5,000 deep: the caller is told at once, not at its timeout.
    const t = Date.now();
    await expect(host.call('malformed', 'deepAnswer', {}, 20_000)).rejects.toMatchObject({ code: 'LM_PROTOCOL', message: expect.stringContaining('64 levels') });
    expect(Date.now() - t).toBeLessThan(5_000);
    expect(host.status('malformed').state).toBe('ready');
    await bystanderAnswers('after deep frames');
  });

  it('a plugin that stops reading loses events, then its connection (LM_BACKPRESSURE); the controller does not grow, and the plugin comes back', async () => {
    const before = process.memoryUsage().rss;
    expect(await host.call('snoop', 'deaf', { ms: 4_000 })).toEqual({ deafFor: 4_000 });
    await sleep(200);
    const mb = 'm'.repeat(512 * 1024);
    for (let i = 0; i < 100; i++) host.emit('any.topic', mb, ['snoop']);
    const calls = await Promise.all(Array.from({ length: 30 }, () => host.call('snoop', 'lastClose', mb, 20_000).catch((e: { code: string }) => e.code)));
    expect(calls).toContain('LM_PLUGIN_EXITED');
    const grew = process.memoryUsage().rss - before;
    console.log(`controller RSS grew ${Math.round(grew / 2 ** 20)} MB while 50 MB of events and 15 MB of calls were sent to a plugin that did not read`);
    expect(grew).toBeLessThan(100 * 2 ** 20);
    await vi.waitFor(() => expect(violations('snoop', 'LM_BACKPRESSURE')).toHaveLength(1), { timeout: 5_000 });
    // It reads again after 4 s, finds its connection closed, reconnects and says hello.
    await vi.waitFor(async () => expect(await host.call('snoop', 'lastClose', {}, 1_000)).toBe(1006), { timeout: 15_000, interval: 300 });
    await bystanderAnswers('after the deaf plugin');
  });

  it('after every attack the controller still runs all five plugins', () => {
    expect(host.list().map((p) => [p.id, p.state])).toEqual(['bystander', 'flooder', 'giant', 'malformed', 'snoop'].map((id) => [id, 'ready']));
  });
});
