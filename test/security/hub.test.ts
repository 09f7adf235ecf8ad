import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { resolveHome } from '../../src/lifecycle/home.js';
import { PluginHost } from '../../src/lifecycle/plugin-host.js';
import { silentLogger } from '../../src/log.js';
import { readAudit } from '../../src/permissions/audit-log.js';
import { docker, REPO, sleep, tempDir } from '../integration/support.js';

/**
 * Attacks on the hub from plugins in real containers, under a PluginHost as `logomesh up`
 * runs them. The attackers speak the protocol by hand (test/fixtures/controller/hub-attacker.mjs);
 * a well-behaved `bystander` must answer after every attack, and the controller must stay up.
 * An undeclared method and a forged `from` are in test/integration/controller.test.ts.
 */
const FIX = path.join(REPO, 'test', 'fixtures', 'controller');
const ATTACKER_METHODS = ['flood', 'malformed', 'snoop', 'giant', 'lastClose', 'ignored'];
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
    ].join('\n'),
  );
}

describe('attacks on the hub from plugin containers', () => {
  let host: PluginHost;
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
    host = await PluginHost.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 2_000, rateLimit: RATE });
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
    expect(r.codes.LM_RATE_LIMITED).toBeGreaterThan(r.sent / 2);
    await bystanderAnswers('after the flood');
    const entries = violations('flooder', 'LM_RATE_LIMITED');
    expect(entries.length).toBeGreaterThanOrEqual(1);
    expect(entries.length).toBeLessThanOrEqual(4); // sampled: one a second at most
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

  it("another plugin's socket is out of reach: only its own hub.sock in /run/logomesh, the host path does not exist", async () => {
    const other = path.join(host.home.socketsDir, 'bystander', 'hub.sock');
    const r = (await host.call('snoop', 'snoop', { paths: [other, '/run/logomesh/../bystander/hub.sock', path.join(host.home.socketsDir, 'snoop', 'hub.sock')] })) as {
      listing: string[];
      attempts: Record<string, string>;
    };
    expect(r.listing).toEqual(['hub.sock']);
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

  it('after every attack the controller still runs all five plugins', () => {
    expect(host.list().map((p) => [p.id, p.state])).toEqual(['bystander', 'flooder', 'giant', 'malformed', 'snoop'].map((id) => [id, 'ready']));
  });
});
