import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import WebSocket from 'ws';
import { Client } from './support/hub-client.js';

/** Attacks on the hub from a plugin's socket and from host clients (issue: the controller survives anything). */

function policy(id: string, exposes: string[], consumes: string[] = [], messaging = false, topics: { publishes?: string[]; subscribes?: string[] } = {}): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging, publishes: topics.publishes ?? (messaging ? ['*'] : []), subscribes: topics.subscribes ?? ['*'] };
}

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('a hostile peer costs at most its own connection', () => {
  let dir: string;
  let hub: Hub;
  let port: number;
  const audit: Omit<AuditEntry, 'time'>[] = [];
  const clients: Client[] = [];
  const sock = (id: string) => path.join(dir, id, 'hub.sock');
  const plugin = async (id: string, methods: string[], opts: { subscriptions?: string[] } = {}) => {
    const c = await Client.open(`ws+unix://${sock(id)}:/v1`);
    clients.push(c);
    const r = await c.reply(c.send({ type: 'hello', protocol: 1, methods, ...opts }));
    expect(r.success, JSON.stringify(r)).toBe(true);
    return c;
  };
  const hostClient = async (options = {}) => {
    const c = await Client.open(`ws://127.0.0.1:${port}/v1`, { Authorization: 'Bearer secret-token' }, options);
    clients.push(c);
    return c;
  };
  const violations = (who: string, code: string) => audit.filter((e) => e.who === who && e.action === 'violation' && e.code === code);

  beforeEach(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-hostile-'));
    audit.length = 0;
    hub = new Hub({ log: silentLogger, token: 'secret-token', maxMessageBytes: 64 * 1024, maxQueuedBytes: 256 * 1024, audit: (e) => audit.push(e), hostRateLimit: 200, maxSubscriptions: 8, maxHostClients: 3 });
    await hub.attachPlugin(policy('alpha', ['echo'], ['beta.echo', 'beta.big'], true), sock('alpha'));
    await hub.attachPlugin(policy('beta', ['echo', 'big', 'never']), sock('beta'));
    port = await hub.listenHost(0);
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a frame nested 5,000 deep in a request, an event, a broadcast or a response is refused with LM_PROTOCOL, and the hub goes on', async () => {
    const a = await plugin('alpha', ['echo']);
    const b = await plugin('beta', ['echo', 'big']);
    const deep = nested(5_000);
    for (const frame of [
      `{"type":"request","id":"r1","to":["beta"],"method":"echo","data":${deep}}`,
      `{"type":"event","id":"e1","topic":"t","data":${deep}}`,
      `{"type":"broadcast","id":"b1","data":${deep}}`,
    ]) {
      a.raw(frame);
      const err = await a.next((m) => m.type === 'error');
      expect(err).toMatchObject({ error: { code: 'LM_PROTOCOL', message: expect.stringContaining('64 levels') } });
    }
    // Data 63 levels deep (64 with its frame) goes through; a deep answer is refused and the caller told at once.
    b.serve((m) => {
      if (m.method !== 'big') return m.data;
      b.raw(`{"type":"response","id":"x","correlationId":"${m.id}","success":true,"data":${deep}}`);
      return undefined;
    });
    const fine = JSON.parse(nested(63)) as unknown;
    expect(await a.reply(a.send({ type: 'request', to: ['beta'], method: 'echo', data: fine }))).toMatchObject({ success: true, data: fine });
    const t0 = Date.now();
    const r = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'big', data: 1, timeout: 20_000 }), 3_000);
    expect(r).toMatchObject({ success: false, from: 'beta', error: { code: 'LM_PROTOCOL', message: expect.stringContaining('beta answered big with a frame the hub refused') } });
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(violations('beta', 'LM_PROTOCOL')[0]?.reason).toContain('64 levels');
    // The host's own data is checked the same way.
    const deepValue = JSON.parse(nested(100)) as unknown;
    await expect(hub.call('beta', 'echo', deepValue)).rejects.toMatchObject({ code: 'LM_PROTOCOL' });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    await expect(hub.call('beta', 'echo', cycle)).rejects.toMatchObject({ code: 'LM_PROTOCOL' });
    expect(() => hub.broadcast('t', deepValue)).toThrow(expect.objectContaining({ code: 'LM_PROTOCOL' }));
    expect(await hub.call('beta', 'echo', 'still up')).toBe('still up');
  }, 20_000);

  it('a host client that never reads is cut off at maxQueuedBytes (LM_BACKPRESSURE, audited); others go on', async () => {
    // A hub without the host rate limit, so the answers pile up faster than the kernel's socket buffers take them.
    const fast = new Hub({ log: silentLogger, token: 'secret-token', maxMessageBytes: 64 * 1024, maxQueuedBytes: 256 * 1024, audit: (e) => audit.push(e) });
    try {
      const fport = await fast.listenHost(0);
      await fast.attachPlugin(policy('beta', ['echo']), sock('beta2'));
      const b = await Client.open(`ws+unix://${sock('beta2')}:/v1`);
      clients.push(b);
      await b.hello(['echo']);
      b.serve((m) => m.data);
      const h = await Client.open(`ws://127.0.0.1:${fport}/v1`, { Authorization: 'Bearer secret-token' });
      clients.push(h);
      // Stop reading: the kernel's buffers fill, then the hub's queue for this client would grow.
      (h.ws as unknown as { _socket: Socket })._socket.pause();
      const data = 'x'.repeat(50 * 1024);
      const closed = new Promise<void>((resolve) => h.ws.once('close', () => resolve()));
      const started = Date.now();
      while (violations('host', 'LM_BACKPRESSURE').length === 0 && Date.now() - started < 15_000) {
        for (let i = 0; i < 4; i++) h.send({ type: 'request', to: ['beta'], method: 'echo', data });
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(violations('host', 'LM_BACKPRESSURE')).toHaveLength(1);
      expect(violations('host', 'LM_BACKPRESSURE')[0]?.reason).toMatch(/over the limit of 262144.*host client tcp:127\.0\.0\.1/);
      (h.ws as unknown as { _socket: Socket })._socket.resume();
      await closed;
      const other = await Client.open(`ws://127.0.0.1:${fport}/v1`, { Authorization: 'Bearer secret-token' });
      clients.push(other);
      expect(await other.reply(other.send({ type: 'request', to: ['beta'], method: 'echo', data: 'fine' }))).toMatchObject({ success: true, data: 'fine' });
    } finally {
      await fast.close();
    }
  }, 30_000);

  it('a plugin that never reads loses events first, then its connection when an answer cannot be queued', async () => {
    const a = await plugin('alpha', ['echo'], { subscriptions: ['t'] });
    (a.ws as unknown as { _socket: Socket })._socket.pause();
    const big = 'y'.repeat(60 * 1024);
    for (let i = 0; i < 200; i++) hub.emitEvent('t', big);
    expect(hub.stats('alpha')?.droppedMessages).toBeGreaterThan(0);
    expect(hub.stats('alpha')?.connected).toBe(true);
    // The queue is full of events: the first call that does not fit cuts the connection, and every call to it fails at once.
    const calls = Array.from({ length: 8 }, () => hub.call('alpha', 'echo', big, 20_000).catch((e: { code: string }) => e.code));
    expect(new Set(await Promise.all(calls))).toEqual(new Set(['LM_PLUGIN_EXITED']));
    expect(violations('alpha', 'LM_BACKPRESSURE')).toHaveLength(1);
  }, 20_000);

  it('only answers to its own pings keep a connection alive: unasked pongs do not', async () => {
    const quick = new Hub({ log: silentLogger, token: 'secret-token', pingIntervalMs: 100, audit: (e) => audit.push(e) });
    const qport = await quick.listenHost(0);
    try {
      const silent = await Client.open(`ws://127.0.0.1:${qport}/v1`, { Authorization: 'Bearer secret-token' }, { autoPong: false });
      clients.push(silent);
      const pongs = setInterval(() => silent.ws.pong(Buffer.from('unasked')), 30);
      const closed = new Promise<void>((resolve) => silent.ws.once('close', () => resolve()));
      const healthy = await Client.open(`ws://127.0.0.1:${qport}/v1`, { Authorization: 'Bearer secret-token' });
      clients.push(healthy);
      await closed;
      clearInterval(pongs);
      expect(healthy.ws.readyState).toBe(healthy.ws.OPEN);
      expect(violations('host', 'LM_UNHEALTHY')[0]?.reason).toContain('did not answer 3 pings');
    } finally {
      await quick.close();
    }
  }, 10_000);

  it('host clients are rate limited; the refusals cost a few audit lines with counts, not a line each', async () => {
    await plugin('beta', ['echo']);
    const h = await hostClient();
    for (let i = 0; i < 1_000; i++) h.send({ type: 'request', to: ['beta'], method: 'nope' });
    for (let i = 0; i < 1_000; i++) await h.next((m) => m.type === 'response');
    const limited = audit.filter((e) => e.code === 'LM_RATE_LIMITED');
    const denied = audit.filter((e) => e.action === 'call' && e.result === 'denied');
    // About 400 (the burst) got through to the ACL and were refused there; the rest were rate limited.
    // An entry with a count stands for that many decisions; one without, for one.
    const total = (entries: typeof audit) => entries.reduce((n, e) => n + (e.count ?? 1), 0);
    await vi.waitFor(() => expect(total(audit.filter((e) => e.code === 'LM_RATE_LIMITED')) + total(audit.filter((e) => e.action === 'call' && e.result === 'denied'))).toBe(1_000), { timeout: 3_000 });
    expect(limited.length + denied.length).toBeLessThan(10);
  }, 10_000);

  it('an answer over the size limit reaches the caller at once as LM_MESSAGE_TOO_LARGE; the refusal names the frame it refuses', async () => {
    const a = await plugin('alpha', ['echo']);
    const b = await plugin('beta', ['echo', 'big']);
    b.ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as { type: string; id: string };
      if (m.type === 'request') b.raw(JSON.stringify({ type: 'response', id: 'r', correlationId: m.id, success: true, data: 'z'.repeat(100 * 1024) }));
    });
    const t0 = Date.now();
    const r = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'big', timeout: 20_000 }));
    expect(r).toMatchObject({ success: false, error: { code: 'LM_MESSAGE_TOO_LARGE' } });
    expect(Date.now() - t0).toBeLessThan(3_000);
    a.raw(JSON.stringify({ type: 'event', id: 'huge-one', topic: 't', data: 'z'.repeat(100 * 1024) }));
    expect(await a.next((m) => m.type === 'error')).toMatchObject({ correlationId: 'huge-one', error: { code: 'LM_MESSAGE_TOO_LARGE' } });
  });

  it('timeouts outside 1 ms .. 300 s are refused, not blamed on the target', async () => {
    const a = await plugin('alpha', ['echo']);
    await plugin('beta', ['echo']);
    for (const timeout of [1e-300, 0.5, 300_001, 1e300]) {
      const r = await a.reply(a.send({ type: 'request', to: ['beta'], method: 'echo', timeout }));
      expect(r).toMatchObject({ type: 'error', error: { code: 'LM_PROTOCOL', message: expect.stringContaining('from 1 to 300000') } });
    }
    expect(violations('beta', 'LM_TIMEOUT')).toEqual([]);
  });

  it("an event's recipients are de-duplicated and capped; subscriptions are capped", async () => {
    const a = await plugin('alpha', ['echo']);
    const b = await plugin('beta', ['echo']);
    a.send({ type: 'event', topic: 'once', to: Array.from({ length: 5_000 }, () => 'beta') });
    await b.next((m) => m.type === 'event' && m.topic === 'once');
    const many = Array.from({ length: 65 }, (_, i) => `p${i}`);
    expect(await a.reply(a.send({ type: 'event', topic: 'x', to: many }))).toMatchObject({ type: 'error', error: { code: 'LM_PROTOCOL', message: expect.stringContaining('more than 64 recipients') } });
    await new Promise((r) => setTimeout(r, 200));
    expect(b.inbox.filter((m) => m.type === 'event')).toEqual([]);
    for (let i = 0; i < 8; i++) expect(await b.reply(b.send({ type: 'subscribe', topic: `s${i}` }))).toMatchObject({ success: true });
    expect(await b.reply(b.send({ type: 'subscribe', topic: 's8' }))).toMatchObject({ success: false, error: { code: 'LM_HUB_LIMIT' } });
  });

  it('failed connection attempts are audited, aggregated; one host client too many is refused with 503', async () => {
    const attempt = (url: string, headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
      });
    for (let i = 0; i < 20; i++) expect(await attempt(`ws://127.0.0.1:${port}/v1`, { Authorization: 'Bearer wrong' })).toBe(401);
    expect(await attempt(`ws://127.0.0.1:${port}/v2`, { Authorization: 'Bearer secret-token' })).toBe(404);
    const refused = audit.filter((e) => e.action === 'connect');
    expect(refused.map((e) => `${e.who} ${e.resource} ${e.code}`)).toEqual(['host tcp:127.0.0.1 LM_UNAUTHORIZED', 'host tcp:127.0.0.1 LM_PROTOCOL']);
    for (let i = 0; i < 3; i++) await hostClient();
    expect(await attempt(`ws://127.0.0.1:${port}/v1`, { Authorization: 'Bearer secret-token' })).toBe(503);
    expect(audit.filter((e) => e.action === 'connect' && e.code === 'LM_HUB_LIMIT')).toHaveLength(1);
  });

  it('what callers can make one plugin hold is bounded: calls waiting on it past half of maxQueuedBytes are refused', async () => {
    await plugin('beta', ['echo', 'never']);
    const h = await hostClient();
    const data = 'w'.repeat(60 * 1024);
    const ids = Array.from({ length: 8 }, () => h.send({ type: 'request', to: ['beta'], method: 'never', data, timeout: 10_000 }));
    // Half of the 256 KiB queue holds two of these: the third and later are refused at once.
    const answers = await Promise.all(ids.slice(2).map((id) => h.reply(id)));
    expect(h.inbox.filter((m) => m.correlationId === ids[0] || m.correlationId === ids[1])).toEqual([]);
    expect(answers.every((r) => (r.error as { code: string }).code === 'LM_RATE_LIMITED')).toBe(true);
    expect(String((answers[0]?.error as { message: string }).message)).toContain('waiting for its answers');
  });

  it('a host method that returns what cannot be sent answers its caller with a coded error', async () => {
    await hub.attachPlugin(policy('gamma', [], ['get_cycle', 'get_big', 'get_deep']), sock('gamma'));
    const g = await plugin('gamma', []);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    hub.registerHostMethod('get_cycle', () => cycle);
    hub.registerHostMethod('get_big', () => 'v'.repeat(200 * 1024));
    hub.registerHostMethod('get_deep', () => JSON.parse(nested(3_000)) as unknown);
    for (const [method, code] of [['get_cycle', 'LM_PROTOCOL'], ['get_big', 'LM_MESSAGE_TOO_LARGE'], ['get_deep', 'LM_PROTOCOL']] as const) {
      expect(await g.reply(g.send({ type: 'request', to: ['host'], method }))).toMatchObject({ success: false, error: { code } });
    }
    expect(await hub.call('beta', 'echo', 1).catch((e: { code: string }) => e.code)).toBe('LM_PLUGIN_UNAVAILABLE');
  });

  it("hello's answer announces the maximum message size; a hub cannot be made with one the SDKs would refuse", async () => {
    const c = await Client.open(`ws+unix://${sock('alpha')}:/v1`);
    clients.push(c);
    expect(await c.reply(c.send({ type: 'hello', protocol: 1, methods: [] }))).toMatchObject({ success: true, data: { plugin: 'alpha', protocol: 1, maxMessageBytes: 64 * 1024 } });
    expect(() => new Hub({ log: silentLogger, token: 't', maxMessageBytes: 32 * 1024 * 1024 })).toThrow(expect.objectContaining({ code: 'LM_USAGE' }));
  });
});
