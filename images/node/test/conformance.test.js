// The SDK against the protocol's one source: its constants (protocol.json) and the recorded
// conformance session (transcript.json), both at /opt/logomesh/protocol in the image; and
// hostile frames and handlers, which never end the plugin.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogoMeshError, MAX_DEPTH, Plugin, PROTOCOL_VERSION } from 'logomesh';
import { FakeHub, loadProtocol, loadTranscript, Mismatch } from 'logomesh/testing';
import { cleanUpAfterEach, connected } from './support.js';

// The codec is no public API: read it from the SDK's folder.
const protocol = await import(new URL('protocol.js', import.meta.resolve('logomesh')).href);

cleanUpAfterEach();

/** The plugin transcript.json expects (images/protocol/README.md). */
function conformancePlugin(options) {
  const p = new Plugin({ pluginId: 'conformance', exit: false, handleSignals: false, log: false, ...options });
  p.method('echo', (data) => data);
  p.method('fail', () => {
    throw new LogoMeshError('LM_INVALID_ARGUMENT', 'fail was called', { field: 'x' });
  });
  const seen = (data, meta) => p.emit('conf.seen', { kind: meta.type, topic: meta.topic, from: meta.from, data });
  p.method('listen', ({ topic }) => {
    p.on(topic, seen);
    return { listening: topic };
  });
  p.method('make', ({ depth, bytes }) => {
    if (bytes !== undefined) return 'x'.repeat(bytes);
    let value = [];
    for (let i = 1; i < depth; i++) value = [value];
    return value;
  });
  p.method('relay', ({ target, args }) => p.call(target, args, { timeout: 5000 }));
  p.method('throw', () => {
    throw new Error('boom');
  });
  p.on('conf.*', seen);
  return p;
}

function nested(n) {
  let value = [];
  for (let i = 1; i < n; i++) value = [value];
  return value;
}

describe('the protocol', () => {
  it("the SDK's constants are protocol.json", () => {
    const c = loadProtocol();
    assert.equal(PROTOCOL_VERSION, c.protocol);
    assert.equal(MAX_DEPTH, c.maxDepth);
    assert.deepEqual([...protocol.TO_HUB], c.messageTypes.toHub);
    assert.deepEqual([...protocol.FROM_HUB], c.messageTypes.fromHub);
    assert.equal(protocol.DEFAULT_MAX_MESSAGE_BYTES, c.messageBytes.default);
    assert.equal(protocol.MAX_MESSAGE_BYTES, c.messageBytes.max);
    assert.equal(protocol.HARD_LIMIT_FACTOR, c.messageBytes.hardLimitFactor);
    assert.equal(protocol.DEFAULT_CALL_TIMEOUT_MS, c.callTimeoutMs.default);
    assert.equal(protocol.MAX_CALL_TIMEOUT_MS, c.callTimeoutMs.max);
    assert.equal(protocol.ID_MAX_LENGTH, c.idMaxLength);
    assert.deepEqual({ ...protocol.ERROR_CODES }, c.errorCodes);
  });

  it('the SDK follows the recorded conformance session', async () => {
    const hub = await FakeHub.start({ transcript: loadTranscript() });
    const plugin = conformancePlugin({ socketPath: hub.socketPath });
    const running = plugin.run();
    try {
      const bound = await hub.replayed();
      assert.match(bound.sdk, /^node\//);
      await running;
    } finally {
      await plugin.shutdown(0).catch(() => {});
      await running.catch(() => {});
      await hub.close();
    }
  });

  it('the replay notices a plugin that strays', async () => {
    const hub = await FakeHub.start({ transcript: loadTranscript() });
    const plugin = conformancePlugin({ socketPath: hub.socketPath });
    plugin.method('extra', () => null);
    const running = plugin.run();
    running.catch(() => {});
    try {
      await assert.rejects(hub.replayed(), (err) => err instanceof Mismatch && /step 1 .*methods/.test(err.message));
    } finally {
      await plugin.shutdown(0).catch(() => {});
      await running.catch(() => {});
      await hub.close();
    }
  });
});

describe('the codec', () => {
  it('counts the frame as level 1 and skips strings', () => {
    assert.equal(protocol.depth('{"a":[[]]}'), 3);
    assert.equal(protocol.depth(`{"s":"${'['.repeat(200)}","d":${'['.repeat(70)}${']'.repeat(70)}}`), 71);
    assert.equal(protocol.depth('{"s":"\\"[[[["}'), 1);
  });

  it('refuses a deep or large frame with its top-level fields, without parsing it', () => {
    const deep = protocol.decode(Buffer.from(`{"type":"request","data":${'['.repeat(5000)}${']'.repeat(5000)},"id":"r\\"1"}`), 1 << 20);
    assert.deepEqual(deep.refused.fields, { type: 'request', id: 'r"1' });
    assert.equal(deep.refused.code, 'LM_PROTOCOL');
    assert.match(deep.refused.message, /5001 levels/);
    const large = protocol.decode(Buffer.from(`{"type":"response","correlationId":"7","data":"${'x'.repeat(100)}"}`), 64);
    assert.deepEqual(large.refused, { code: 'LM_MESSAGE_TOO_LARGE', message: large.refused.message, fields: { type: 'response', correlationId: '7' } });
    // 8 million brackets: scanned, never parsed (parsing would take far more memory than the frame).
    assert.equal(protocol.decode(Buffer.from('['.repeat(8_000_000)), 16 << 20).refused.code, 'LM_PROTOCOL');
  });

  it('refuses to encode what cannot be sent', () => {
    const cycle = {};
    cycle.self = cycle;
    for (const [value, words] of [
      [cycle, /not JSON-serializable/],
      [10n, /not JSON-serializable/],
      [{ toJSON: () => { throw new Error('no'); } }, /not JSON-serializable/],
      [nested(5000), /deeper|5001 levels/],
      [nested(64), /65 levels/],
    ]) {
      assert.throws(() => protocol.encode({ data: value }, 1 << 20), (err) => err instanceof protocol.EncodeError && words.test(err.reason) && !err.tooLarge);
    }
    assert.equal(protocol.encode({ data: nested(63) }, 1 << 20).length, 8 + 63 * 2 + 1);
    assert.throws(() => protocol.encode({ data: 'x'.repeat(100) }, 64), (err) => err.tooLarge === true);
  });
});

describe('hostile handlers', () => {
  it('whatever a handler throws or returns, its caller gets a coded answer and the plugin goes on', async () => {
    const cycle = [];
    cycle.push(cycle);
    const { hub, logs } = await connected((p) => {
      p.method('nothing', () => {
        throw undefined;
      });
      p.method('proxy', () => {
        throw new Proxy(
          {},
          {
            get() {
              throw new Error('trap');
            },
            getPrototypeOf() {
              throw new Error('trap');
            },
          },
        );
      });
      p.method('badThen', () => ({
        then() {
          throw new Error('then exploded');
        },
      }));
      p.method('cyclic', () => cycle);
      p.method('deep', () => nested(5000));
      p.method('ok', () => 'still here');
      p.on('t', () => {
        throw new Error('handler failed');
      });
      p.on('t', async () => {
        throw new Error('async handler failed');
      });
    });
    for (const method of ['nothing', 'proxy', 'badThen', 'cyclic', 'deep']) {
      const r = await hub.request(method);
      assert.equal(r.success, false, method);
      assert.equal(r.error.code, 'LM_PLUGIN_ERROR', `${method}: ${JSON.stringify(r.error)}`);
    }
    hub.event('t', null);
    assert.deepEqual((await hub.request('ok')).data, 'still here');
    assert.ok(logs.some((l) => l.includes('handler failed')));
  });

  it('outbound data that cannot be sent is refused before sending', async () => {
    const cycle = {};
    cycle.self = cycle;
    const { hub, plugin } = await connected();
    await assert.rejects(plugin.call('other.m', cycle), { code: 'LM_INVALID_ARGUMENT' });
    await assert.rejects(plugin.emit('topic', nested(64)), { code: 'LM_INVALID_ARGUMENT' });
    await assert.rejects(plugin.broadcast('topic', 'x'.repeat(17 << 20)), { code: 'LM_MESSAGE_TOO_LARGE' });
    await assert.rejects(hub.next((m) => m.type !== 'subscribe', 300));
  });

  it('a deep request is answered with LM_PROTOCOL, a deep event is dropped, and the plugin goes on', async () => {
    const seen = [];
    const { hub } = await connected((p) => {
      p.method('echo', (d) => d);
      p.on('e', (data) => seen.push(data));
    });
    hub.ws.send(`{"type":"request","id":"deep","from":"host","to":["fake"],"method":"echo","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    const r = await hub.next((m) => m.correlationId === 'deep');
    assert.equal(r.error.code, 'LM_PROTOCOL');
    hub.ws.send(`{"type":"event","id":"e1","from":"x","topic":"e","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    hub.event('e', 'after');
    assert.deepEqual((await hub.request('echo', { ok: 1 })).data, { ok: 1 });
    assert.deepEqual(seen, ['after']);
  });
});
