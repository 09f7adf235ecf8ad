// Tests of the Node.js SDK against a fake hub: hello, serving, packaging, overhead.
// They run inside the runtime image (test/integration/sdk-node.test.ts), where 'logomesh'
// resolves as it does for plugins.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LogoMeshError, Plugin, SDK_VERSION } from 'logomesh';
import { FakeHub, gate, sleep } from './fake-hub.js';
import { cleanups, cleanUpAfterEach, connected } from './support.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

cleanUpAfterEach();

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
    assert.deepEqual(hello.subscriptions, []);
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
