// Batched frames (docs/protocol.md, "batched frames"): offered in hello, used only once the
// hub's answer names them, both ways; frames of one turn leave in one message.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { Plugin } from 'logomesh';
import { waitFor } from './fake-hub.js';
import { cleanUpAfterEach, cleanups } from './support.js';

cleanUpAfterEach();

// ws as the SDK itself has it (in the runtime image, only 'logomesh' resolves from here).
const { WebSocketServer } = createRequire(import.meta.resolve('logomesh'))('ws');

/** A hub that answers hello with `answer` and records every message after it, split into frames. */
async function rawHub(answer) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-batch-'));
  const socketPath = path.join(dir, 'hub.sock');
  const wss = new WebSocketServer({ noServer: true });
  const http = createServer();
  const hub = { socketPath, hello: undefined, messages: [], ws: undefined };
  http.on('upgrade', (req, sock, head) =>
    wss.handleUpgrade(req, sock, head, (ws) => {
      hub.ws = ws;
      ws.on('message', (raw) => {
        const frames = raw.toString().split('\n').map((t) => JSON.parse(t));
        if (frames[0].type === 'hello') {
          hub.hello = frames[0];
          return ws.send(JSON.stringify({ type: 'response', id: 'h1', correlationId: frames[0].id, success: true, data: { plugin: 'fake', protocol: 1, ...answer } }));
        }
        hub.messages.push(frames);
      });
    }),
  );
  await new Promise((r) => http.listen(socketPath, r));
  cleanups.push(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => http.close(r));
    rmSync(dir, { recursive: true, force: true });
  });
  return hub;
}

async function serve(hub) {
  const plugin = new Plugin({ socketPath: hub.socketPath, pluginId: 'fake', exit: false, handleSignals: false, log: () => {} });
  plugin.method('echo', (data) => data);
  const running = plugin.run();
  running.catch(() => {});
  cleanups.unshift(async () => {
    await plugin.shutdown(0).catch(() => {});
    await running.catch(() => {});
  });
  await plugin.ready();
  return plugin;
}

const request = (n) => JSON.stringify({ type: 'request', id: `r${n}`, from: 'other', to: ['fake'], method: 'echo', data: { n, s: 'a\nb' } });

describe('batched frames', () => {
  it('reads every frame of a message and answers the frames of one turn in one message, once the hub agreed', async () => {
    const hub = await rawHub({ batch: 64 });
    await serve(hub);
    assert.equal(hub.hello.batch, true);
    hub.ws.send([1, 2, 3].map(request).join('\n'));
    await waitFor(() => hub.messages.flat().length === 3, 5000, 'three answers');
    assert.deepEqual(hub.messages, [[1, 2, 3].map((n) => ({ ...hub.messages[0][n - 1], correlationId: `r${n}`, success: true, data: { n, s: 'a\nb' } }))]);
  });

  it('sends one frame a message to a hub that did not agree (its answer names no batch)', async () => {
    const hub = await rawHub({});
    const plugin = await serve(hub);
    for (let i = 0; i < 3; i++) plugin.call('other.echo', i, { timeout: 5000 }).catch(() => {});
    await waitFor(() => hub.messages.length === 3, 5000, 'three requests');
    assert.deepEqual(hub.messages.map((m) => m.length), [1, 1, 1]);
  });

  it('joins calls made in one turn into one message, at most as many as the hub named', async () => {
    const hub = await rawHub({ batch: 2 });
    const plugin = await serve(hub);
    for (let i = 0; i < 5; i++) plugin.call('other.echo', i, { timeout: 5000 }).catch(() => {});
    await waitFor(() => hub.messages.flat().length === 5, 5000, 'five requests');
    assert.deepEqual(hub.messages.map((m) => m.length), [2, 2, 1]);
    assert.deepEqual(hub.messages.flat().map((f) => f.data), [0, 1, 2, 3, 4]);
  });

  it('sends a batch once it holds 16 frames, though the hub allows 64 (the hub starts on it sooner)', async () => {
    const hub = await rawHub({ batch: 64 });
    const plugin = await serve(hub);
    for (let i = 0; i < 20; i++) plugin.call('other.echo', i, { timeout: 5000 }).catch(() => {});
    await waitFor(() => hub.messages.flat().length === 20, 5000, 'twenty requests');
    assert.deepEqual(hub.messages.map((m) => m.length), [16, 4]);
  });

  it('answers every frame of a batch with a bad one among them as if each came alone (the batch is not parsed at once then)', async () => {
    const hub = await rawHub({ batch: 64 });
    await serve(hub);
    const deep = JSON.stringify({ type: 'request', id: 'deep', from: 'other', to: ['fake'], method: 'echo', data: JSON.parse('['.repeat(70) + ']'.repeat(70)) });
    // A frame that is two objects, one too deep, one not JSON: each is refused or read as alone.
    hub.ws.send([request(1), `${request(2)},${request(3)}`, deep, '{"type":"request","id":"bad",', request(4)].join('\n'));
    await waitFor(() => hub.messages.flat().length === 5, 5000, 'five answers');
    const answers = hub.messages.flat();
    // A refused request is answered under the id read from its top level (the first one).
    const expected = [['r1', true, undefined], ['r2', false, 'LM_PROTOCOL'], ['deep', false, 'LM_PROTOCOL'], ['bad', false, 'LM_PROTOCOL'], ['r4', true, undefined]];
    assert.deepEqual(answers.map((a) => [a.correlationId, a.success, a.error?.code]), expected);
  });
});

describe('decodeBatch', () => {
  it('parses a message of whole frames at once, and leaves any other to the frame-by-frame path', async () => {
    const { decodeBatch } = await import(new URL('batch.js', import.meta.resolve('logomesh')).href);
    const batch = (frames) => Buffer.from(frames.join('\n'));
    assert.deepEqual(decodeBatch(batch(['{"a":1}', ' {"b":"}{\\"é"} ', '{}']), 1 << 20), [{ a: 1 }, { b: '}{"é' }, {}]);
    for (const frames of [['1,2', '[3', '4]'], ['{"a":1},{"b":2}', '{"c":3}', '{"d":4'], ['{"a":[', '1]}'], ['{"a":1}', ''], ['{"a":1}', '[1]'], ['{"a":"}'], [`{"a":${'['.repeat(70)}${']'.repeat(70)}}`]]) {
      assert.equal(decodeBatch(batch(frames), 1 << 20), undefined, frames.join(' | '));
    }
    assert.equal(decodeBatch(batch(['{"a":1}', '{"b":2}']), 8), undefined);
  });
});
