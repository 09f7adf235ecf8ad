import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Hub } from '../../src/hub/hub.js';
import { FLUSH_FRAMES, MAX_BATCH_FRAMES, splitFrames } from '../../src/hub/line-batch.js';
import { silentLogger } from '../../src/log.js';
import { Client, type Msg } from './support/hub-client.js';
import { hubHarness } from './support/hub-harness.js';

function policy(id: string, exposes: string[], consumes: string[]): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: true, publishes: ['*'], subscribes: ['*'] };
}

/** A client that offered batched frames: it reads every frame of a message, and counts the messages. */
class BatchClient {
  readonly frames: Msg[] = [];
  readonly messages: number[] = [];
  private n = 0;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (raw: Buffer) => {
      const parts = splitFrames(raw);
      this.messages.push(parts.length);
      for (const p of parts) this.frames.push(JSON.parse(p.toString()) as Msg);
    });
  }
  frame(m: Record<string, unknown>): string {
    return JSON.stringify({ id: `b${++this.n}`, ...m });
  }
  async until(pred: () => boolean, ms = 2_000): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > end) throw new Error(`not within ${ms} ms; frames: ${JSON.stringify(this.frames)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  answerTo(id: string): Msg | undefined {
    return this.frames.find((m) => m.correlationId === id);
  }
}

describe('hub: batched frames (several JSON frames in one message) where the plugin offered them', () => {
  let hub: Hub;
  const { sock, track } = hubHarness('lm-hub-batch-', async (sock) => {
    hub = new Hub({ log: silentLogger, token: 'secret-token', rateLimit: 10, maxMessageBytes: 4096 });
    await hub.attachPlugin(policy('bat', ['echo'], ['txt.echo']), sock('bat'));
    await hub.attachPlugin(policy('txt', ['echo'], ['bat.echo']), sock('txt'));
    return hub;
  });
  const openBatching = async (): Promise<BatchClient> => {
    const c = track(await Client.open(`ws+unix://${sock('bat')}:/v1`));
    const hello = await c.reply(c.send({ type: 'hello', protocol: 1, methods: ['echo'], batch: true }));
    expect(hello).toMatchObject({ success: true, data: { encoding: 'json', batch: MAX_BATCH_FRAMES } });
    c.ws.removeAllListeners('message');
    return new BatchClient(c.ws);
  };
  const openPlain = async (): Promise<Client> => {
    const t = track(await Client.open(`ws+unix://${sock('txt')}:/v1`));
    const hello = await t.reply(t.send({ type: 'hello', protocol: 1, methods: ['echo'] }));
    expect(hello).toMatchObject({ success: true });
    expect((hello.data as Record<string, unknown>).batch).toBeUndefined();
    return t;
  };

  it('takes each frame of a batch its own way, and sends a plugin that did not offer batches one frame a message', async () => {
    const b = await openBatching();
    const t = await openPlain();
    const seen: string[] = [];
    t.serve((m) => {
      seen.push(JSON.stringify(m.data));
      return { echoed: m.data };
    });
    const frames = [1, 2, 3, 4, 5].map((n) => b.frame({ type: 'request', to: ['txt'], method: 'echo', data: { n, s: 'a\nb' } }));
    b.ws.send(frames.join('\n'));
    const ids = frames.map((f) => (JSON.parse(f) as Msg).id);
    await b.until(() => ids.every((id) => b.answerTo(id)));
    for (const [i, id] of ids.entries()) expect(b.answerTo(id)).toMatchObject({ success: true, data: { echoed: { n: i + 1, s: 'a\nb' } } });
    // Five requests reached the plain plugin, as five messages (its Client parses each as one JSON text).
    expect(seen).toHaveLength(5);
    expect(t.textFrames).toBe(6); // its hello's answer and the five requests
  });

  it('checks every frame of a batch as if it came alone: a bad frame and a denied call are answered, the rest go on', async () => {
    const b = await openBatching();
    const t = await openPlain();
    t.serve((m) => ({ echoed: m.data }));
    const ok = b.frame({ type: 'request', to: ['txt'], method: 'echo', data: 1 });
    const denied = b.frame({ type: 'request', to: ['txt'], method: 'secret', data: 2 });
    const ok2 = b.frame({ type: 'request', to: ['txt'], method: 'echo', data: 3 });
    b.ws.send([ok, '{"type":"request",', denied, '', ok2].join('\n'));
    const id = (f: string) => (JSON.parse(f) as Msg).id;
    await b.until(() => b.frames.filter((m) => m.type === 'error').length === 2 && !!b.answerTo(id(ok2)) && !!b.answerTo(id(denied)));
    expect(b.answerTo(id(ok))).toMatchObject({ success: true, data: { echoed: 1 } });
    expect(b.answerTo(id(ok2))).toMatchObject({ success: true, data: { echoed: 3 } });
    expect(b.answerTo(id(denied))).toMatchObject({ success: false, error: { code: 'LM_PERMISSION_DENIED' } });
    // The cut-off frame and the empty one: LM_PROTOCOL each, as a lone frame would get.
    expect(b.frames.filter((m) => m.type === 'error').map((m) => (m.error as { code: string }).code)).toEqual(['LM_PROTOCOL', 'LM_PROTOCOL']);
  });

  it(`refuses a batch of more than ${MAX_BATCH_FRAMES} frames whole, and one over the message size as too large`, async () => {
    const b = await openBatching();
    const t = await openPlain();
    let served = 0;
    t.serve(() => ++served);
    const many = Array.from({ length: MAX_BATCH_FRAMES + 1 }, () => b.frame({ type: 'event', topic: 'x', data: 1 }));
    b.ws.send(many.join('\n'));
    await b.until(() => b.frames.some((m) => m.type === 'error'));
    expect(b.frames.find((m) => m.type === 'error')).toMatchObject({ error: { code: 'LM_PROTOCOL', message: expect.stringContaining(`at most ${MAX_BATCH_FRAMES} frames`) } });
    // A message of line feeds alone: refused the same way, split no further than the limit.
    b.ws.send('\n'.repeat(4000));
    await b.until(() => b.frames.filter((m) => m.type === 'error').length === 2);
    expect(splitFrames(Buffer.from('\n'.repeat(4000)))).toHaveLength(MAX_BATCH_FRAMES + 1);
    const big = Array.from({ length: 5 }, (_, i) => b.frame({ type: 'request', to: ['txt'], method: 'echo', data: 'x'.repeat(1000), id: `big${i}` }));
    b.ws.send(big.join('\n'));
    await b.until(() => b.frames.some((m) => (m.error as { code?: string } | undefined)?.code === 'LM_MESSAGE_TOO_LARGE'));
    await new Promise((r) => setTimeout(r, 100));
    expect(served).toBe(0);
  });

  it('counts each frame of a batch against the rate limit', async () => {
    const b = await openBatching();
    const t = await openPlain();
    t.serve((m) => m.data);
    // A burst of twice the rate (10/s) passes; the 40 requests of one batch do not.
    const frames = Array.from({ length: 40 }, (_, n) => b.frame({ type: 'request', to: ['txt'], method: 'echo', data: n }));
    b.ws.send(frames.join('\n'));
    await b.until(() => b.frames.filter((m) => m.correlationId).length === 40);
    const limited = b.frames.filter((m) => (m.error as { code?: string } | undefined)?.code === 'LM_RATE_LIMITED').length;
    expect(limited).toBeGreaterThanOrEqual(20);
    expect(limited).toBeLessThan(40);
  });

  it('joins the frames of one turn into one message to a plugin that offered batches', async () => {
    const b = await openBatching();
    const answered = Promise.all([1, 2, 3, 4].map((n) => hub.call('bat', 'echo', n, 2_000)));
    await b.until(() => b.frames.filter((m) => m.type === 'request').length === 4);
    expect(b.messages.at(-1)).toBe(4);
    for (const m of b.frames.filter((f) => f.type === 'request')) b.ws.send(JSON.stringify({ type: 'response', id: `r${m.id}`, correlationId: m.id, success: true, data: m.data }));
    expect(await answered).toEqual([1, 2, 3, 4]);
  });

  it(`sends a batch as soon as it holds ${FLUSH_FRAMES} frames, without waiting for the turn's end`, async () => {
    const b = await openBatching();
    const n = FLUSH_FRAMES + 4;
    const answered = Promise.all(Array.from({ length: n }, (_, i) => hub.call('bat', 'echo', i, 2_000)));
    await b.until(() => b.frames.filter((m) => m.type === 'request').length === n);
    expect(b.messages.slice(-2)).toEqual([FLUSH_FRAMES, 4]);
    for (const m of b.frames.filter((f) => f.type === 'request')) b.ws.send(JSON.stringify({ type: 'response', id: `r${m.id}`, correlationId: m.id, success: true, data: m.data }));
    expect(await answered).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('takes a message with a line feed between frames from a plugin that did not offer batches as one frame, refused as before', async () => {
    const t = await openPlain();
    t.raw(`${JSON.stringify({ type: 'event', id: 'e1', topic: 'x', data: 1 })}\n${JSON.stringify({ type: 'event', id: 'e2', topic: 'x', data: 2 })}`);
    const err = await t.next((m) => m.type === 'error');
    expect(err).toMatchObject({ error: { code: 'LM_PROTOCOL' } });
  });
});
