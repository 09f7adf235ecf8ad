import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { FAILED_HANDSHAKES_PER_SECOND } from '../../src/hub/plugin-auth.js';
import { hubAuthorization } from '../../src/kubernetes/hub-auth.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';

function policy(id: string, exposes: string[], consumes: string[] = []): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: false, publishes: [], subscribes: [] };
}

const nonce = () => randomBytes(16).toString('hex');

/** An upgrade the hub refused: its status and JSON body. */
function refusal(url: string, headers: Record<string, string>): Promise<{ status: number; body: { code: string; message: string } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => reject(new Error('the hub accepted the connection')));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { code: string; message: string } }));
    });
    ws.once('error', () => undefined);
  });
}

describe('the hub port of plugins across nodes (HMAC handshake)', () => {
  let hub: Hub;
  let url: string;
  let dir: string;
  let audit: Omit<AuditEntry, 'time'>[];
  const keys: Record<string, Buffer> = {};
  const clients: Client[] = [];
  const header = (id: string, key = keys[id]!, ts = Date.now(), n = nonce()) => ({ Authorization: hubAuthorization(key, id, ts, n) });
  const connect = async (id: string, methods: string[], headers = header(id)) => {
    const c = await Client.open(url, headers);
    clients.push(c);
    await c.hello(methods);
    return c;
  };

  beforeEach(async () => {
    audit = [];
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-tcp-'));
    hub = new Hub({ log: silentLogger, token: 'secret-token', audit: (e) => audit.push(e) });
    keys.alpha = randomBytes(32);
    keys.beta = randomBytes(32);
    hub.attachRemotePlugin(policy('alpha', [], ['beta.echo']), { key: () => keys.alpha });
    hub.attachRemotePlugin(policy('beta', ['echo', 'secret']), { key: () => keys.beta });
    // A plugin of this host, on its own Unix socket: it has no key, so no TCP connection is its.
    await hub.attachPlugin(policy('local', ['echo']), path.join(dir, 'local', 'hub.sock'));
    const port = await hub.listenPlugins(0, '127.0.0.1');
    url = `ws://127.0.0.1:${port}/v1`;
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a plugin with its own key is that plugin: calls routed, from set by the hub, the ACL applied', async () => {
    const a = await connect('alpha', []);
    const b = await connect('beta', ['echo', 'secret']);
    b.serve((m) => ({ from: m.from, data: m.data }));
    expect(await a.reply(a.send({ type: 'request', to: ['beta'], method: 'echo', data: 1, from: 'beta' }))).toMatchObject({ success: true, data: { from: 'alpha', data: 1 } });
    expect(await a.reply(a.send({ type: 'request', to: ['beta'], method: 'secret', data: null }))).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    expect(hub.isReady('alpha') && hub.isReady('beta')).toBe(true);
    await hub.close();
    expect(audit.some((e) => e.who === 'alpha' && e.action === 'call' && e.resource === 'beta.echo' && e.result === 'allowed')).toBe(true);
    expect(audit.some((e) => e.who === 'alpha' && e.resource === 'beta.secret' && e.result === 'denied')).toBe(true);
  });

  it("refuses another plugin's key, an unknown id, a socket plugin, no header, a stale or replayed one: 401 LM_UNAUTHORIZED, audited", async () => {
    const replayed = header('alpha');
    clients.push(await Client.open(url, replayed));
    const cases: [Record<string, string>, string, string][] = [
      [header('beta', keys.alpha), 'bad signature', 'beta'],
      [header('ghost', randomBytes(32)), 'unknown plugin', 'ghost'],
      [header('local', randomBytes(32)), 'unknown plugin', 'local'],
      [{}, 'malformed', 'unknown'],
      [{ Authorization: 'Bearer secret-token' }, 'malformed', 'unknown'],
      [header('alpha', keys.alpha, Date.now() - 61_000), 'stale', 'alpha'],
      [replayed, 'replayed', 'alpha'],
    ];
    for (const [h, reason, who] of cases) {
      const r = await refusal(url, h);
      expect(r.status).toBe(401);
      expect(r.body).toEqual({ code: 'LM_UNAUTHORIZED', message: `plugin handshake refused: ${reason}` });
      hub.flushAudit();
      expect(audit.at(-1)).toMatchObject({ who, action: 'connect', resource: 'tcp:127.0.0.1', result: 'denied', code: 'LM_UNAUTHORIZED', reason: `plugin handshake refused: ${reason}` });
    }
    expect(JSON.stringify(audit)).not.toContain(keys.alpha!.toString('hex'));
  });

  it('reads a rotated key once on a bad signature, and accepts the new one', async () => {
    const rotated = randomBytes(32);
    let reloads = 0;
    await hub.detachPlugin('alpha');
    hub.attachRemotePlugin(policy('alpha', []), {
      key: () => keys.alpha,
      reload: async () => {
        reloads++;
        keys.alpha = rotated;
        return rotated;
      },
    });
    await connect('alpha', [], header('alpha', rotated));
    expect(reloads).toBe(1);
  });

  it('bounds a flood of failed handshakes per source address: 429, without checking more', async () => {
    let status = 0;
    let attempts = 0;
    while (status !== 429 && attempts < 10 * FAILED_HANDSHAKES_PER_SECOND) {
      attempts++;
      status = (await refusal(url, header('alpha', randomBytes(32)))).status;
    }
    expect(status).toBe(429);
    expect(attempts).toBeLessThanOrEqual(2 * FAILED_HANDSHAKES_PER_SECOND + 2);
    // Even a right header waits until the address's budget refills.
    expect(await refusal(url, header('alpha'))).toMatchObject({ status: 429, body: { code: 'LM_RATE_LIMITED' } });
  });

  it("a plugin over TCP has the same limits as on its socket: a flood is LM_RATE_LIMITED, over its calls in flight is refused, both audited", async () => {
    const limited = new Hub({ log: silentLogger, token: 'secret-token', rateLimit: 100, maxInFlight: 2, audit: (e) => audit.push(e) });
    try {
      limited.attachRemotePlugin(policy('alpha', [], ['beta.echo']), { key: () => keys.alpha });
      limited.attachRemotePlugin(policy('beta', ['echo']), { key: () => keys.beta });
      const port = await limited.listenPlugins(0, '127.0.0.1');
      const open = async (id: string, methods: string[]) => {
        const c = await Client.open(`ws://127.0.0.1:${port}/v1`, header(id));
        clients.push(c);
        await c.hello(methods);
        return c;
      };
      const a = await open('alpha', []);
      const b = await open('beta', ['echo']);
      // beta never answers: alpha's calls stay in flight.
      b.serve(() => undefined);
      const calls = [0, 1, 2].map(() => a.send({ type: 'request', to: ['beta'], method: 'echo', data: null, timeout: 30_000 }));
      expect(await a.reply(calls[2]!)).toMatchObject({ success: false, error: { code: 'LM_RATE_LIMITED' } });
      for (let i = 0; i < 400; i++) a.send({ type: 'event', topic: 'flood', data: i });
      expect(await a.next((m) => (m.error as { code?: string } | undefined)?.code === 'LM_RATE_LIMITED')).toMatchObject({ success: false });
      limited.flushAudit();
      expect(audit.filter((e) => e.who === 'alpha' && e.code === 'LM_RATE_LIMITED').length).toBeGreaterThan(0);
    } finally {
      await limited.close();
    }
  });

  it('a second authenticated connection replaces the first; detaching the plugin closes it', async () => {
    const first = await connect('beta', ['echo']);
    const closed = new Promise((r) => first.ws.once('close', r));
    const second = await connect('beta', ['echo']);
    await closed;
    expect(hub.stats('beta')?.connected).toBe(true);
    const gone = new Promise((r) => second.ws.once('close', r));
    await hub.detachPlugin('beta');
    await gone;
    expect((await refusal(url, header('beta'))).body.message).toContain('unknown plugin');
  });
});
