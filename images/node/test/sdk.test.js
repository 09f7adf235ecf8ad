// Tests of the Node.js SDK against a fake hub. They run inside the runtime image
// (test/integration/sdk-node.test.ts), where 'logomesh' resolves as it does for plugins.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LogoMeshError, Plugin, SDK_VERSION, topicMatches } from 'logomesh';
import { FakeHub, gate, sleep, waitFor } from './fake-hub.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** A plugin connected to a fresh fake hub, torn down after each test. */
let cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function connected(setup = () => {}, hubOptions = {}, pluginOptions = {}) {
  const hub = await FakeHub.start(hubOptions);
  const logs = [];
  const plugin = new Plugin({
    socketPath: hub.socketPath,
    pluginId: 'fake',
    exit: false,
    handleSignals: false,
    log: (level, message) => logs.push(`${level}: ${message}`),
    ...pluginOptions,
  });
  setup(plugin);
  const running = plugin.run();
  running.catch(() => {});
  cleanups.push(async () => {
    await plugin.shutdown(0).catch(() => {});
    await running.catch(() => {});
    await hub.close();
  });
  const hello = await hub.next('hello');
  await plugin.ready();
  return { hub, plugin, running, hello, logs };
}

function child(script, hub, extraEnv = {}) {
  const proc = spawn(process.execPath, [path.join(HERE, 'plugins', script)], {
    env: { ...process.env, LOGOMESH_HUB_SOCKET: hub.socketPath, LOGOMESH_PLUGIN_ID: 'fake', ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (out += c));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal, out })));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  });
  return { proc, exited, output: () => out };
}

describe('hello', () => {
  it('connects with GET /v1 and Host: logomesh, and announces its methods', async () => {
    const { hub, hello } = await connected((p) => {
      p.method('alpha', () => 1);
      p.methods({ beta: async () => 2 });
    });
    assert.deepEqual(hub.upgrades, [{ url: '/v1', host: 'logomesh' }]);
    assert.equal(hello.protocol, 1);
    assert.equal(hello.sdk, `node/${SDK_VERSION}`);
    assert.deepEqual(hello.methods, ['alpha', 'beta']);
    assert.equal(typeof hello.id, 'string');
  });

  it('methods can be given as a handler map to the constructor', async () => {
    const { hello } = await connected(() => {}, {}, { methods: { one: () => 1, two: () => 2 } });
    assert.deepEqual(hello.methods, ['one', 'two']);
  });

  it('a refused hello rejects run() with the hub code', async () => {
    const hub = await FakeHub.start({ helloError: { code: 'LM_PERMISSION_DENIED', message: 'methods not listed: x' } });
    cleanups.push(() => hub.close());
    const plugin = new Plugin({ socketPath: hub.socketPath, exit: false, handleSignals: false, log: false });
    plugin.method('x', () => 0);
    await assert.rejects(plugin.run(), { name: 'LogoMeshError', code: 'LM_PERMISSION_DENIED', message: 'methods not listed: x' });
    await assert.rejects(plugin.ready(), { code: 'LM_PERMISSION_DENIED' });
  });

  it('waits for a socket that appears late, and gives up with LM_CONTROLLER_UNAVAILABLE', async () => {
    const hub = await FakeHub.start({ listen: false });
    cleanups.push(() => hub.close());
    const plugin = new Plugin({ socketPath: hub.socketPath, exit: false, handleSignals: false, log: false });
    const running = plugin.run();
    await sleep(150);
    await hub.listen();
    await plugin.ready();
    await plugin.shutdown(0);
    await running;

    const never = new Plugin({ socketPath: path.join(hub.dir, 'nothing.sock'), exit: false, handleSignals: false, connectTimeoutMs: 200, log: false });
    await assert.rejects(never.run(), (err) => err.code === 'LM_CONTROLLER_UNAVAILABLE' && err.message.includes('nothing.sock'));
  });

  it('methods cannot be added after run()', async () => {
    const { plugin } = await connected();
    assert.throws(() => plugin.method('late', () => 0), /after run\(\)/);
    assert.throws(() => new Plugin().method('bad-name', () => 0), TypeError);
  });
});

describe('serving requests', () => {
  it('serves a sync and an async method with the request data and context', async () => {
    const { hub } = await connected((p) => {
      p.method('add', ({ a, b }) => ({ sum: a + b }));
      p.method('greet', async (data, ctx) => {
        await sleep(5);
        return `hello ${data.name} from ${ctx.from} via ${ctx.method}`;
      });
      p.method('nothing', () => undefined);
    });
    const r1 = await hub.request('add', { a: 2, b: 3 });
    assert.equal(r1.success, true);
    assert.deepEqual(r1.data, { sum: 5 });
    assert.equal(typeof r1.id, 'string');
    const r2 = await hub.request('greet', { name: 'Ada' }, { from: 'analyzer' });
    assert.equal(r2.data, 'hello Ada from analyzer via greet');
    const r3 = await hub.request('nothing');
    assert.deepEqual([r3.success, r3.data], [true, null]);
  });

  it('serves requests concurrently: a slow handler does not block others', async () => {
    const release = gate();
    let slowFinished = false;
    const { hub } = await connected((p) => {
      p.method('slow', async () => {
        await release.promise;
        slowFinished = true;
        return 'slow';
      });
      p.method('fast', () => 'fast');
    });
    const slowId = hub.sendRequest('slow');
    const fastIds = [hub.sendRequest('fast'), hub.sendRequest('fast'), hub.sendRequest('fast')];
    for (const id of fastIds) {
      const r = await hub.next((m) => m.correlationId === id);
      assert.equal(r.data, 'fast');
    }
    assert.equal(slowFinished, false);
    release.open();
    const slow = await hub.next((m) => m.correlationId === slowId);
    assert.equal(slow.data, 'slow');
  });

  it('a LogoMeshError from a handler answers with its code, message and details', async () => {
    const { hub } = await connected((p) => {
      p.method('strict', ({ text }) => {
        if (typeof text !== 'string') throw new LogoMeshError('LM_INVALID_ARGUMENT', 'text must be a string', { field: 'text' });
        return text;
      });
      p.method('strictAsync', async () => {
        throw new LogoMeshError('LM_CUSTOM_THING', 'custom failure');
      });
    });
    const r = await hub.request('strict', { text: 7 });
    assert.equal(r.success, false);
    assert.deepEqual(r.error, { code: 'LM_INVALID_ARGUMENT', message: 'text must be a string', details: { field: 'text' } });
    const r2 = await hub.request('strictAsync', {});
    assert.deepEqual(r2.error, { code: 'LM_CUSTOM_THING', message: 'custom failure' });
  });

  it('any other exception answers with LM_PLUGIN_ERROR and its text', async () => {
    const { hub, logs } = await connected((p) => {
      p.method('boom', () => {
        throw new TypeError('boom happened');
      });
      p.method('boomAsync', async () => {
        throw new Error('async boom');
      });
      p.method('rejectString', () => Promise.reject('just a string'));
      p.method('bigint', () => 10n);
    });
    const r = await hub.request('boom');
    assert.equal(r.success, false);
    assert.equal(r.error.code, 'LM_PLUGIN_ERROR');
    assert.equal(r.error.message, 'boom happened');
    assert.deepEqual(r.error.details, { type: 'TypeError' });
    assert.equal((await hub.request('boomAsync')).error.message, 'async boom');
    assert.deepEqual((await hub.request('rejectString')).error, { code: 'LM_PLUGIN_ERROR', message: 'just a string' });
    const big = await hub.request('bigint');
    assert.equal(big.error.code, 'LM_PLUGIN_ERROR');
    assert.match(big.error.message, /not JSON-serializable/);
    assert.ok(logs.some((l) => l.includes('boom happened')), 'the stack of an uncoded failure is logged');
  });

  it('an unknown method answers with LM_METHOD_NOT_FOUND', async () => {
    const { hub } = await connected((p) => p.method('known', () => 1));
    const r = await hub.request('unknown');
    assert.equal(r.success, false);
    assert.equal(r.error.code, 'LM_METHOD_NOT_FOUND');
    assert.match(r.error.message, /unknown/);
    assert.deepEqual(r.error.details, { method: 'unknown', methods: ['known'] });
  });

  it('answers WebSocket pings with pongs', async () => {
    const { hub } = await connected();
    const ws = await hub.connection();
    const pong = new Promise((resolve) => ws.once('pong', (data) => resolve(data.toString())));
    ws.ping('are you there');
    assert.equal(await pong, 'are you there');
  });
});

describe('call()', () => {
  it('sends a request to plugin.method and resolves with the result', async () => {
    const { hub, plugin } = await connected();
    const result = plugin.call('tokenizer.tokenize', { text: 'Hello world' }, { timeout: 5000 });
    const req = await hub.next('request');
    assert.deepEqual(req.to, ['tokenizer']);
    assert.equal(req.method, 'tokenize');
    assert.deepEqual(req.data, { text: 'Hello world' });
    assert.equal(req.timeout, 5000);
    hub.respond(req, { tokens: ['hello', 'world'] });
    assert.deepEqual(await result, { tokens: ['hello', 'world'] });
  });

  it('a name without a dot calls the host; a number is the timeout', async () => {
    const { hub, plugin } = await connected();
    const result = plugin.call('get_config', undefined, 1234);
    const req = await hub.next('request');
    assert.deepEqual(req.to, ['host']);
    assert.equal(req.method, 'get_config');
    assert.equal(req.timeout, 1234);
    assert.equal('data' in req, false);
    hub.respond(req, 42);
    assert.equal(await result, 42);
  });

  it('rejects with the coded error of a failed response', async () => {
    const { hub, plugin } = await connected();
    const result = plugin.call('tokenizer.tokenize', {});
    const req = await hub.next('request');
    assert.equal('timeout' in req, false);
    hub.respondError(req, { code: 'LM_PERMISSION_DENIED', message: 'not in consumesMethods', details: { method: 'tokenizer.tokenize' } });
    await assert.rejects(result, (err) => {
      assert.ok(err instanceof LogoMeshError);
      assert.equal(err.code, 'LM_PERMISSION_DENIED');
      assert.equal(err.message, 'not in consumesMethods');
      assert.deepEqual(err.details, { method: 'tokenizer.tokenize' });
      return true;
    });
  });

  it('rejects with LM_TIMEOUT when the hub says so, and on its own when nothing answers', async () => {
    const { hub, plugin } = await connected();
    const byHub = plugin.call('slow.work', {}, { timeout: 100 });
    const req = await hub.next('request');
    hub.respondError(req, { code: 'LM_TIMEOUT', message: 'no response from slow.work within 100 ms' });
    await assert.rejects(byHub, { code: 'LM_TIMEOUT', message: 'no response from slow.work within 100 ms' });

    const started = Date.now();
    const silent = plugin.call('slow.work', {}, { timeout: 50 });
    const req2 = await hub.next('request');
    await assert.rejects(silent, { code: 'LM_TIMEOUT' });
    const waited = Date.now() - started;
    assert.ok(waited >= 50 && waited < 3000, `waited ${waited} ms`);
    // A late response is dropped without effect.
    hub.respond(req2, 'late');
    await sleep(20);
  });

  it('refuses bad targets and timeouts, and calls before run()', async () => {
    const { plugin } = await connected();
    await assert.rejects(plugin.call('Bad Target.x'), { code: 'LM_INVALID_ARGUMENT' });
    await assert.rejects(plugin.call('a.b.c'), { code: 'LM_INVALID_ARGUMENT' });
    await assert.rejects(plugin.call('a.b', {}, { timeout: -1 }), { code: 'LM_INVALID_ARGUMENT' });
    await assert.rejects(new Plugin().call('a.b'), { code: 'LM_PROTOCOL' });
  });

  it('a handler can call out while serving, and a coded error it lets through keeps its code', async () => {
    const { hub } = await connected((p) => {
      p.method('relay', (data, _ctx) => p.call('other.echo', data, { timeout: 1000 }));
    });
    const id = hub.sendRequest('relay', { x: 1 });
    const out = await hub.next('request');
    assert.deepEqual(out.to, ['other']);
    hub.respondError(out, { code: 'LM_PLUGIN_UNAVAILABLE', message: 'other is not running' });
    const r = await hub.next((m) => m.correlationId === id);
    assert.deepEqual(r.error, { code: 'LM_PLUGIN_UNAVAILABLE', message: 'other is not running' });
  });
});

describe('events and broadcasts', () => {
  it('emit sends an event, optionally to named plugins; broadcast with and without a topic', async () => {
    const { hub, plugin } = await connected();
    await plugin.emit('thought.added', { text: 'hi' });
    const e = await hub.next('event');
    assert.equal(e.topic, 'thought.added');
    assert.deepEqual(e.data, { text: 'hi' });
    assert.equal('to' in e, false);
    await plugin.emit('thought.added', 1, { to: ['analyzer'] });
    assert.deepEqual((await hub.next('event')).to, ['analyzer']);
    await plugin.broadcast('cache.flush', null);
    const b = await hub.next('broadcast');
    assert.equal(b.topic, 'cache.flush');
    assert.equal(b.data, null);
    await plugin.broadcast(null, { all: true });
    const b2 = await hub.next('broadcast');
    assert.equal('topic' in b2, false);
    assert.deepEqual(b2.data, { all: true });
    await assert.rejects(plugin.emit('thought.*', {}), { code: 'LM_INVALID_ARGUMENT' });
    await assert.rejects(plugin.emit('x', 1n), { code: 'LM_INVALID_ARGUMENT' });
  });

  it('a refusal of an event by the hub is logged', async () => {
    const { hub, plugin, logs } = await connected();
    await plugin.emit('thought.added', {});
    const e = await hub.next('event');
    hub.send({ type: 'response', id: 'x1', correlationId: e.id, success: false, error: { code: 'LM_PERMISSION_DENIED', message: 'messaging is not enabled' } });
    await waitFor(() => logs.some((l) => l.includes('LM_PERMISSION_DENIED')), 5000, 'the refusal in the log');
  });

  it('on() subscribes (before and after run) and dispatches matching topics', async () => {
    const seen = [];
    const { hub, plugin } = await connected((p) => {
      p.on('thought.added', (data, meta) => seen.push(['exact', data, meta.type, meta.topic, meta.from]));
    });
    await plugin.on('thought.added', (data, meta) => seen.push(['exact', data, meta.type, meta.topic, meta.from]));
    assert.ok(hub.subscriptions.has('thought.added'));
    await plugin.on('thought.*', async (data) => seen.push(['prefix', data]));
    await plugin.on('*', (data, meta) => seen.push(['all', data, meta.topic]));
    assert.deepEqual([...hub.subscriptions].sort(), ['*', 'thought.*', 'thought.added']);

    hub.event('thought.added', { text: 'a' }, 'thoughts');
    hub.event('thought.removed', 2);
    hub.broadcast('cache.flush', 3);
    hub.broadcast(undefined, 4);
    hub.event('other', 5);
    await waitFor(() => seen.length >= 9, 5000, 'nine deliveries');
    await sleep(20);
    assert.deepEqual(seen, [
      ['exact', { text: 'a' }, 'event', 'thought.added', 'thoughts'],
      ['exact', { text: 'a' }, 'event', 'thought.added', 'thoughts'],
      ['prefix', { text: 'a' }],
      ['all', { text: 'a' }, 'thought.added'],
      ['prefix', 2],
      ['all', 2, 'thought.removed'],
      ['all', 3, 'cache.flush'],
      ['all', 4, undefined],
      ['all', 5, 'other'],
    ]);
  });

  it('a failing event handler is logged and does not stop others; off() unsubscribes', async () => {
    const seen = [];
    const { hub, plugin, logs } = await connected();
    const bad = () => {
      throw new Error('handler broke');
    };
    await plugin.on('x.y', bad);
    await plugin.on('x.y', (d) => seen.push(d));
    await plugin.on('sentinel', (d) => seen.push(d));
    hub.event('x.y', 1);
    await waitFor(() => seen.length === 1, 5000, 'the event');
    assert.deepEqual(seen, [1]);
    assert.ok(logs.some((l) => l.includes('handler broke')));
    await plugin.off('x.y', bad);
    assert.ok(hub.subscriptions.has('x.y'));
    await plugin.off('x.y');
    assert.equal(hub.subscriptions.has('x.y'), false);
    hub.event('x.y', 2);
    // Delivery is in order: once the sentinel arrived, x.y would have been handled before it.
    hub.event('sentinel', 'end');
    await waitFor(() => seen.includes('end'), 5000, 'the sentinel');
    assert.deepEqual(seen, [1, 'end']);
  });

  it('topicMatches follows the hub', () => {
    assert.equal(topicMatches('*', 'a.b'), true);
    assert.equal(topicMatches('a.*', 'a.b.c'), true);
    assert.equal(topicMatches('a.*', 'a'), false);
    assert.equal(topicMatches('a.*', 'ab.c'), false);
    assert.equal(topicMatches('a.b', 'a.b'), true);
  });
});

describe('shutdown', () => {
  it('on the hub shutdown message: refuses new requests, lets in-flight ones answer, closes with 1000', async () => {
    const release = gate();
    let hookRan = false;
    const { hub, running } = await connected((p) => {
      p.method('slow', async () => {
        await release.promise;
        return 'done';
      });
      p.onShutdown(() => {
        hookRan = true;
      });
    });
    const slowId = hub.sendRequest('slow');
    await sleep(20);
    hub.shutdown(5000);
    await sleep(20);
    const refused = await hub.request('slow');
    assert.equal(refused.error.code, 'LM_PLUGIN_UNAVAILABLE');
    assert.equal(hookRan, false);
    release.open();
    const r = await hub.next((m) => m.correlationId === slowId);
    assert.equal(r.data, 'done');
    assert.deepEqual(await hub.closed(), { code: 1000, reason: 'shutdown' });
    await running;
    assert.equal(hookRan, true);
  });

  it('closes after graceMs even when a request never finishes', async () => {
    const { hub, running } = await connected((p) => p.method('forever', () => new Promise(() => {})));
    hub.sendRequest('forever');
    await sleep(20);
    const started = Date.now();
    hub.shutdown(150);
    assert.equal((await hub.closed()).code, 1000);
    await running;
    const took = Date.now() - started;
    assert.ok(took >= 140 && took < 2000, `took ${took} ms`);
  });

  it('with reconnecting off, an unexpected close by the hub rejects run()', async () => {
    const { hub, running } = await connected(() => {}, {}, { reconnectMs: 0 });
    (await hub.connection()).close(1011, 'hub failed');
    await assert.rejects(running, (err) => err.code === 'LM_CONTROLLER_UNAVAILABLE' && err.message.includes('1011'));
  });

  it('SIGTERM: the in-flight request answers, the socket closes with 1000, the process exits 0', async () => {
    const hub = await FakeHub.start();
    cleanups.push(() => hub.close());
    const c = child('slow-plugin.js', hub);
    const hello = await hub.next('hello', 10_000);
    assert.deepEqual(hello.methods, ['slow', 'ping']);
    assert.equal((await hub.request('ping')).data, 'pong');
    const slowId = hub.sendRequest('slow', { ms: 300 });
    await waitFor(() => c.output().includes('slow: started'), 10_000, 'the slow request to start');
    c.proc.kill('SIGTERM');
    const r = await hub.next((m) => m.correlationId === slowId);
    assert.deepEqual(r.data, { slept: 300 });
    assert.equal((await hub.closed()).code, 1000);
    const { code, signal, out } = await c.exited;
    assert.equal(signal, null, out);
    assert.equal(code, 0, out);
    assert.match(out, /shutdown hook ran/);
    assert.doesNotMatch(out, /not reached/);
  });

  it('the shutdown message ends the process with code 0 despite a live timer', async () => {
    const hub = await FakeHub.start();
    cleanups.push(() => hub.close());
    const c = child('slow-plugin.js', hub);
    await hub.next('hello', 10_000);
    hub.shutdown(2000);
    const { code, out } = await c.exited;
    assert.equal(code, 0, out);
    assert.equal(hub.lastClose?.code ?? (await hub.closed()).code, 1000);
  });

  it('SIGTERM while still waiting for the hub socket exits 0', async () => {
    const hub = await FakeHub.start({ listen: false });
    cleanups.push(() => hub.close());
    const c = child('slow-plugin.js', hub);
    await waitFor(() => c.output().includes('starting'), 10_000, 'the plugin to start');
    await sleep(100);
    c.proc.kill('SIGTERM');
    const { code, signal, out } = await c.exited;
    assert.equal(signal, null, out);
    assert.equal(code, 0, out);
  });

  it('with LOGOMESH_RECONNECT_MS=0, a plugin whose hub disappears exits with an error', async () => {
    const hub = await FakeHub.start();
    cleanups.push(() => hub.close());
    const c = child('slow-plugin.js', hub, { LOGOMESH_RECONNECT_MS: '0' });
    await hub.next('hello', 10_000);
    (await hub.connection()).terminate();
    const { code, out } = await c.exited;
    assert.notEqual(code, 0, out);
    assert.match(out, /LM_CONTROLLER_UNAVAILABLE|closed the connection/);
  });
});

describe('reconnecting', () => {
  it('after a lost connection: says hello again, subscribes again and serves again', async () => {
    const release = gate();
    let heldStarted = false;
    const events = [];
    const { hub, plugin, hello, logs } = await connected(
      (p) => {
        p.method('add', ({ a, b }) => a + b);
        p.method('held', async () => {
          heldStarted = true;
          await release.promise;
          return 'late';
        });
        p.on('thought.added', (data) => events.push(data));
      },
      {},
      { reconnectMs: 10_000 },
    );
    await hub.next('subscribe');
    assert.equal((await hub.request('add', { a: 1, b: 2 })).data, 3);
    // A call of the plugin's in flight, and a request the plugin is serving.
    const inFlight = plugin.call('black.hole', null, { timeout: 10_000 });
    inFlight.catch(() => {}); // asserted below
    await hub.next('request');
    const heldId = hub.sendRequest('held');
    await waitFor(() => heldStarted, 5000, 'held to start');

    await hub.crash();
    await assert.rejects(inFlight, { code: 'LM_PLUGIN_UNAVAILABLE', message: 'hub connection lost' });
    // Calls made now wait for the connection; events cannot be sent.
    let settled = false;
    const waiting = plugin.call('tokenizer.tokenize', { text: 'a b' }, { timeout: 5000 }).finally(() => (settled = true));
    waiting.catch(() => {}); // asserted below
    await assert.rejects(plugin.emit('thought.added', { text: 'lost' }), { code: 'LM_PLUGIN_UNAVAILABLE' });
    await sleep(400);
    assert.equal(settled, false);

    await hub.restart();
    const again = await hub.next('hello');
    assert.deepEqual(again.methods, hello.methods);
    assert.equal(again.sdk, hello.sdk);
    assert.equal((await hub.next('subscribe')).topic, 'thought.added');
    const req = await hub.next((m) => m.type === 'request' && m.method === 'tokenize');
    assert.ok(req.timeout <= 4600, `the timeout left: ${req.timeout}`);
    hub.respond(req, { tokens: ['a', 'b'] });
    assert.deepEqual(await waiting, { tokens: ['a', 'b'] });

    // Serving again: requests, events, emits.
    assert.equal((await hub.request('add', { a: 2, b: 2 })).data, 4);
    hub.event('thought.added', { text: 'after' });
    await waitFor(() => events.length === 1, 5000, 'the event');
    assert.deepEqual(events, [{ text: 'after' }]);
    await plugin.emit('thought.added', { text: 'back' });
    assert.deepEqual((await hub.next('event')).data, { text: 'back' });
    // The request served across the loss: its answer cannot be delivered.
    release.open();
    await assert.rejects(hub.next((m) => m.correlationId === heldId, 300));
    assert.equal(hub.connections, 2);
    assert.ok(logs.includes('warn: plugin fake: hub connection lost (code 1006); reconnecting for up to 10000 ms'), logs.join('\n'));
    assert.ok(logs.some((l) => /^warn: plugin fake: reconnected to the hub after \d+ ms$/.test(l)), logs.join('\n'));
  });

  it('a dropped connection to a hub still listening is made again at once, and so is a close with a status', async () => {
    const { hub } = await connected((p) => p.method('add', ({ a, b }) => a + b));
    const started = Date.now();
    await hub.drop();
    await hub.next('hello');
    assert.ok(Date.now() - started < 2000);
    assert.equal((await hub.request('add', { a: 1, b: 1 })).data, 2);
    (await hub.connection()).close(1001, 'going away');
    await hub.next('hello');
    assert.equal((await hub.request('add', { a: 1, b: 2 })).data, 3);
    assert.equal(hub.connections, 3);
  });

  it('a call made while reconnecting fails with LM_PLUGIN_UNAVAILABLE when its timeout passes', async () => {
    const { hub, plugin, logs } = await connected(() => {}, {}, { reconnectMs: 10_000 });
    await hub.crash();
    await waitFor(() => logs.some((l) => l.includes('hub connection lost')), 5000, 'the plugin to notice');
    const started = Date.now();
    await assert.rejects(plugin.call('tokenizer.tokenize', {}, { timeout: 300 }), { code: 'LM_PLUGIN_UNAVAILABLE' });
    assert.ok(Date.now() - started >= 290);
    await hub.restart();
    await hub.next('hello');
  });

  it('no hub within reconnectMs rejects run() with LM_CONTROLLER_UNAVAILABLE', async () => {
    const { hub, plugin, running, logs } = await connected(() => {}, {}, { reconnectMs: 400 });
    await hub.crash();
    const started = Date.now();
    await waitFor(() => logs.some((l) => l.includes('hub connection lost')), 5000, 'the plugin to notice');
    const waiting = plugin.call('a.b', null, { timeout: 30_000 });
    waiting.catch(() => {}); // asserted below
    await assert.rejects(running, (err) => err.code === 'LM_CONTROLLER_UNAVAILABLE' && err.message.includes('within 400 ms'));
    const took = Date.now() - started;
    assert.ok(took >= 300 && took < 3000, `took ${took} ms`);
    // A call waiting for the connection learns that the plugin stopped serving.
    await assert.rejects(waiting, { code: 'LM_CONTROLLER_UNAVAILABLE' });
  });

  it('a hello refused on reconnect rejects run() with the hub code', async () => {
    const { hub, running } = await connected(() => {}, {}, { reconnectMs: 10_000 });
    await hub.crash();
    hub.options.helloError = { code: 'LM_PERMISSION_DENIED', message: 'methods not listed: x' };
    await hub.restart();
    await assert.rejects(running, { code: 'LM_PERMISSION_DENIED' });
    assert.equal(hub.connections, 2);
  });

  it('shutdown() while reconnecting ends run() at once', async () => {
    const { hub, plugin, running } = await connected(() => {}, {}, { reconnectMs: 10_000 });
    await hub.crash();
    await sleep(300);
    const started = Date.now();
    await plugin.shutdown(5000);
    await running;
    assert.ok(Date.now() - started < 1000);
  });

  it('as a process: reconnects, serves again, and exits 0 on the shutdown that follows', async () => {
    const hub = await FakeHub.start();
    cleanups.push(() => hub.close());
    const c = child('reconnect-plugin.js', hub);
    await hub.next('hello', 10_000);
    await hub.next('subscribe');
    assert.equal((await hub.request('ping', 'a')).data, 'pong a');
    await hub.crash();
    await sleep(500);
    assert.equal(c.proc.exitCode, null);
    await hub.restart();
    assert.deepEqual((await hub.next('hello', 10_000)).methods, ['ping', 'pokes']);
    assert.equal((await hub.next('subscribe')).topic, 'test.poke');
    assert.equal((await hub.request('ping', 'b')).data, 'pong b');
    hub.event('test.poke', 'after');
    assert.deepEqual((await hub.request('pokes')).data, ['after']);
    hub.shutdown(2000);
    const { code, out } = await c.exited;
    assert.equal(code, 0, out);
    assert.match(out, /\[logomesh\] warn: plugin fake: hub connection lost \(code 1006\); reconnecting for up to 60000 ms\n/);
    assert.match(out, /\[logomesh\] warn: plugin fake: reconnected to the hub after \d+ ms\n/);
    assert.match(out, /shutdown hook ran/);
  });

  it('as a process: no hub within LOGOMESH_RECONNECT_MS exits 1 with LM_CONTROLLER_UNAVAILABLE', async () => {
    const hub = await FakeHub.start();
    cleanups.push(() => hub.close());
    const c = child('reconnect-plugin.js', hub, { LOGOMESH_RECONNECT_MS: '300' });
    await hub.next('hello', 10_000);
    await hub.crash();
    const started = Date.now();
    const { code, out } = await c.exited;
    assert.ok(Date.now() - started >= 250);
    assert.equal(code, 1, out);
    assert.match(out, /hub connection lost \(code 1006\); reconnecting for up to 300 ms/);
    assert.match(out, /LM_CONTROLLER_UNAVAILABLE/);
    assert.doesNotMatch(out, /reconnected/);
  });

  it('as a process: SIGTERM while reconnecting exits 0', async () => {
    const hub = await FakeHub.start();
    cleanups.push(() => hub.close());
    const c = child('reconnect-plugin.js', hub);
    await hub.next('hello', 10_000);
    await hub.crash();
    await sleep(300);
    c.proc.kill('SIGTERM');
    const { code, signal, out } = await c.exited;
    assert.equal(signal, null, out);
    assert.equal(code, 0, out);
    assert.match(out, /hub connection lost/);
    assert.match(out, /shutdown hook ran/);
  });
});

describe('packaging', () => {
  it('CommonJS code can require the SDK', async () => {
    const proc = spawn(process.execPath, [path.join(HERE, 'plugins', 'cjs-check.cjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (c) => (out += c));
    const code = await new Promise((r) => proc.on('exit', r));
    assert.equal(code, 0);
    assert.deepEqual(JSON.parse(out), { plugin: 'function', error: 'function' });
  });

  it('the runtime is Node.js 22 or newer', () => {
    assert.ok(Number(process.versions.node.split('.')[0]) >= 22, process.version);
  });
});

describe('overhead', () => {
  it('a request/response round trip through the SDK costs well under a millisecond', async (t) => {
    const { hub } = await connected((p) => p.method('echo', (d) => d));
    for (let i = 0; i < 200; i++) await hub.request('echo', { i });
    const samples = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = process.hrtime.bigint();
      await hub.request('echo', { i, text: 'hello world' });
      samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    samples.sort((a, b) => a - b);
    const p50 = samples[samples.length >> 1];
    const p99 = samples[Math.floor(samples.length * 0.99)];
    t.diagnostic(`hub->plugin->hub round trip in one process: p50 ${p50.toFixed(1)} us, p99 ${p99.toFixed(1)} us`);
    assert.ok(p50 < 1000, `p50 ${p50} us`);
  });
});
