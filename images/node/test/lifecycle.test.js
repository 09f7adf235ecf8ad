// Tests of the Node.js SDK against a fake hub: shutdown and reconnecting.
// They run inside the runtime image (test/integration/sdk-node.test.ts), where 'logomesh'
// resolves as it does for plugins.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeHub, gate, sleep, waitFor } from './fake-hub.js';
import { cleanups, cleanUpAfterEach, child, connected } from './support.js';

cleanUpAfterEach();

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
    assert.deepEqual(hello.subscriptions, ['thought.added']);
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
    // A pattern registered meanwhile goes in the next hello too.
    const late = plugin.on('late.*', () => {});
    await sleep(400);
    assert.equal(settled, false);

    await hub.restart();
    const again = await hub.next('hello');
    assert.deepEqual(again.methods, hello.methods);
    assert.equal(again.sdk, hello.sdk);
    // The new hello subscribes again: no subscribe message is needed.
    assert.deepEqual(again.subscriptions, ['thought.added', 'late.*']);
    assert.deepEqual([...hub.subscriptions], ['thought.added', 'late.*']);
    await late;
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
    await assert.rejects(hub.next('subscribe', 100));
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
    assert.deepEqual((await hub.next('hello', 10_000)).subscriptions, ['test.poke']);
    assert.equal((await hub.request('ping', 'a')).data, 'pong a');
    await hub.crash();
    await sleep(500);
    assert.equal(c.proc.exitCode, null);
    await hub.restart();
    const again = await hub.next('hello', 10_000);
    assert.deepEqual(again.methods, ['ping', 'pokes']);
    assert.deepEqual(again.subscriptions, ['test.poke']);
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

  it('as a process: a hello refused for a subscription exits 1 with one line saying why', async () => {
    const hub = await FakeHub.start({ subscribes: ['test.other'] });
    cleanups.push(() => hub.close());
    const c = child('reconnect-plugin.js', hub);
    const { code, out } = await c.exited;
    assert.equal(code, 1, out);
    assert.equal(
      out,
      "[logomesh] error: plugin fake: LM_PERMISSION_DENIED: plugin fake may not subscribe to 'test.poke': no pattern under coordination.subscribes covers it (listed: test.other)\n",
    );
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
