import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { Client } from './support/hub-client.js';
import { prng } from './support/prng.js';

/**
 * Generated frames thrown at a running hub from a plugin's socket and from a host client.
 * Seeded (LOGOMESH_FUZZ_SEED to replay a run), bounded in count and time. Whatever arrives,
 * the hub must keep answering legitimate calls, and nothing may escape as an exception.
 */

const SEED = Number(process.env.LOGOMESH_FUZZ_SEED ?? 20261204);
const FRAMES = Number(process.env.LOGOMESH_FUZZ_FRAMES ?? 3_000);

function generator(rand: () => number) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const int = (n: number) => Math.floor(rand() * n);
  const str = () => pick(['', 'a', 'beta', 'host', 'echo', 'x'.repeat(int(3000)), '\u0000', '\ud800', '"', '\\', '*', 'a.*', '../', 'é'.repeat(int(50))]);
  const scalar = (): unknown => pick([null, true, false, 0, -1, 1e308, -0, 3.5, str(), int(1e9)]);
  const value = (depth: number): unknown => {
    if (depth > 6 || rand() < 0.4) return scalar();
    if (rand() < 0.5) return Array.from({ length: int(5) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: int(5) }, () => [pick(['type', 'id', 'to', 'from', 'data', 'topic', 'method', str()]), value(depth + 1)]));
  };
  const valid = (): Record<string, unknown> =>
    pick([
      { type: 'request', id: 'f', to: ['beta'], method: 'echo', data: value(0), timeout: 200 },
      { type: 'request', id: 'f', to: ['host'], method: 'host_echo', data: value(0) },
      { type: 'response', id: 'f', correlationId: `h${int(50).toString(36)}`, success: rand() < 0.5, data: value(0), error: value(0) },
      { type: 'event', id: 'f', topic: 'fuzz.t', data: value(0), to: rand() < 0.5 ? undefined : [pick(['beta', 'alpha', 'host', 'nobody'])] },
      { type: 'broadcast', id: 'f', topic: rand() < 0.5 ? undefined : 'fuzz.b', data: value(0) },
      { type: pick(['subscribe', 'unsubscribe']), id: 'f', topic: pick(['*', 'fuzz.*', 'a', '', '**']) },
      { type: 'hello', id: 'f', protocol: pick([1, 2, '1']), methods: value(1) },
    ]);
  const mutate = (m: Record<string, unknown>): Record<string, unknown> => {
    const keys = Object.keys(m);
    const out = { ...m };
    for (let i = int(3); i > 0; i--) {
      const k = pick([...keys, 'from', 'extra']);
      if (rand() < 0.3) delete out[k];
      else out[k] = value(2);
    }
    return out;
  };
  return (): string | Buffer => {
    const r = rand();
    if (r < 0.35) return JSON.stringify(valid());
    if (r < 0.65) return JSON.stringify(mutate(valid()));
    if (r < 0.72) {
      const n = 60 + int(5000);
      return `{"type":"${pick(['request', 'event', 'broadcast', 'response'])}","id":"deep","to":["beta"],"method":"echo","topic":"fuzz.t","correlationId":"h1","success":true,"data":${'['.repeat(n)}${']'.repeat(rand() < 0.8 ? n : int(n))}}`;
    }
    if (r < 0.78) return JSON.stringify(valid()).slice(0, int(60));
    if (r < 0.84) return Buffer.from(Array.from({ length: int(200) }, () => int(256)));
    if (r < 0.9) return JSON.stringify({ ...valid(), data: 'p'.repeat(40 * 1024 + int(40 * 1024)) });
    return JSON.stringify(value(0));
  };
}

function policy(id: string, exposes: string[], consumes: string[] = [], messaging = false, topics: { publishes?: string[]; subscribes?: string[] } = {}): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging, publishes: topics.publishes ?? (messaging ? ['*'] : []), subscribes: topics.subscribes ?? ['*'] };
}

describe('fuzzing the hub', () => {
  let dir: string;
  let hub: Hub;
  const clients: Client[] = [];
  const sock = (id: string) => path.join(dir, id, 'hub.sock');
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-hub-fuzz-'));
    hub = new Hub({ log: silentLogger, token: 'secret-token', maxMessageBytes: 64 * 1024, rateLimit: 100_000, hostRateLimit: 100_000 });
    hub.registerHostMethod('host_echo', (d) => d);
    await hub.attachPlugin(policy('alpha', ['echo'], ['beta.echo', 'host_echo'], true), sock('alpha'));
    await hub.attachPlugin(policy('beta', ['echo']), sock('beta'));
    port = await hub.listenHost(0);
  });
  afterAll(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await hub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${FRAMES} generated frames (seed ${SEED}) from a plugin and a host client: the hub keeps answering`, async () => {
    const beta = await Client.open(`ws+unix://${sock('beta')}:/v1`);
    clients.push(beta);
    await beta.hello(['echo']);
    beta.serve((m) => m.data ?? null);
    const next = generator(prng(SEED));
    const deadline = Date.now() + 30_000;
    let sent = 0;
    // A fuzzing peer may lose its own connection (that is allowed); it is then replaced.
    const fresh = async (kind: 'plugin' | 'host') => {
      const c = kind === 'plugin' ? await Client.open(`ws+unix://${sock('alpha')}:/v1`) : await Client.open(`ws://127.0.0.1:${port}/v1`, { Authorization: 'Bearer secret-token' });
      clients.push(c);
      if (kind === 'plugin') await c.hello(['echo']);
      return c;
    };
    const fuzzers = { plugin: await fresh('plugin'), host: await fresh('host') };
    const checker = await fresh('host');
    while (sent < FRAMES && Date.now() < deadline) {
      for (const kind of ['plugin', 'host'] as const) {
        if (fuzzers[kind].ws.readyState !== fuzzers[kind].ws.OPEN) fuzzers[kind] = await fresh(kind);
        fuzzers[kind].raw(next());
        sent++;
      }
      if (sent % 200 === 0) {
        // A legitimate call through the same hub, while the garbage flows.
        const r = await checker.reply(checker.send({ type: 'request', to: ['beta'], method: 'echo', data: { n: sent } }), 5_000);
        expect(r).toMatchObject({ success: true, data: { n: sent } });
      }
    }
    expect(sent).toBeGreaterThanOrEqual(Math.min(FRAMES, 500));
    expect(await hub.call('beta', 'echo', 'after the fuzz')).toBe('after the fuzz');
  }, 60_000);
});
