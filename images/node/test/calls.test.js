// Tests of the Node.js SDK against a fake hub: calls, events and broadcasts.
// They run inside the runtime image (test/integration/sdk-node.test.ts), where 'logomesh'
// resolves as it does for plugins.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LogoMeshError, Plugin, topicMatches } from 'logomesh';
import { FakeHub, sleep, waitFor } from './fake-hub.js';
import { cleanUpAfterEach, cleanups, connected } from './support.js';

cleanUpAfterEach();

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
    let early;
    const { hub, plugin, hello } = await connected((p) => {
      early = p.on('thought.added', (data, meta) => seen.push(['exact', data, meta.type, meta.topic, meta.from]));
    });
    // Registered before run(): in hello, subscribed before the plugin is ready, confirmed by hello's answer.
    assert.deepEqual(hello.subscriptions, ['thought.added']);
    assert.ok(hub.subscriptions.has('thought.added'));
    await early;
    await plugin.on('thought.added', (data, meta) => seen.push(['exact', data, meta.type, meta.topic, meta.from]));
    await plugin.on('thought.*', async (data) => seen.push(['prefix', data]));
    await plugin.on('*', (data, meta) => seen.push(['all', data, meta.topic]));
    assert.deepEqual([...hub.subscriptions].sort(), ['*', 'thought.*', 'thought.added']);
    // Registered while serving: one subscribe each, none for the pattern hello carried.
    const subscribes = [];
    for (;;) {
      const m = await hub.next('subscribe', 200).catch(() => undefined);
      if (!m) break;
      subscribes.push(m.topic);
    }
    assert.deepEqual(subscribes, ['thought.*', '*']);

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

  it('a hello refused for a subscription rejects run() and on() with the hub code', async () => {
    const logs = [];
    const hub = await FakeHub.start({ pluginId: 'reader', subscribes: ['news.*'] });
    cleanups.push(() => hub.close());
    const plugin = new Plugin({ socketPath: hub.socketPath, pluginId: 'reader', exit: false, handleSignals: false, log: (level, m) => logs.push(`${level}: ${m}`) });
    const fine = plugin.on('news.flash', () => {});
    const secret = plugin.on('secrets.*', () => {});
    const message = "plugin reader may not subscribe to 'secrets.*': no pattern under coordination.subscribes covers it (listed: news.*)";
    await assert.rejects(plugin.run(), { code: 'LM_PERMISSION_DENIED', message });
    await assert.rejects(secret, { code: 'LM_PERMISSION_DENIED' });
    await assert.rejects(fine, { code: 'LM_PERMISSION_DENIED' });
    // With exit: false, the caller of run() has the error: nothing is logged.
    assert.deepEqual(logs, []);
    assert.deepEqual([...hub.subscriptions], []);
  });

  it('a refused subscribe while serving rejects on() and is logged; the plugin goes on', async () => {
    const seen = [];
    const { hub, plugin, logs } = await connected((p) => p.on('news.flash', (d) => seen.push(d)), { subscribes: ['news.*'] });
    await assert.rejects(plugin.on('secrets.plans', () => {}), { code: 'LM_PERMISSION_DENIED', message: /may not subscribe to 'secrets.plans'.*coordination\.subscribes/ });
    assert.ok(logs.some((l) => l.startsWith('warn: subscribe secrets.plans failed: LM_PERMISSION_DENIED')), logs.join('\n'));
    assert.deepEqual([...hub.subscriptions], ['news.flash']);
    hub.event('news.flash', 'still heard');
    await waitFor(() => seen.length === 1, 5000, 'the event');
    assert.deepEqual(seen, ['still heard']);
  });

  it('a pattern the hub refused while serving is dropped: the next hello after a reconnect does not name it', async () => {
    const seen = [];
    const { hub, plugin, logs } = await connected((p) => p.on('news.flash', (d) => seen.push(d)), { subscribes: ['news.*'] }, { reconnectMs: 10_000 });
    const leaked = [];
    // Two handlers on one subscription the hub has not answered yet: both go with its refusal.
    const first = plugin.on('secrets.plans', (d) => leaked.push(d));
    const second = plugin.on('secrets.plans', (d) => leaked.push(d));
    await assert.rejects(first, { code: 'LM_PERMISSION_DENIED', message: /may not subscribe to 'secrets.plans'/ });
    await assert.rejects(second, { code: 'LM_PERMISSION_DENIED' });
    assert.ok(logs.some((l) => l.startsWith('warn: subscribe secrets.plans failed: LM_PERMISSION_DENIED') && l.endsWith('(its handlers are dropped; on() again to retry)')), logs.join('\n'));
    await hub.drop();
    const again = await hub.next('hello');
    assert.deepEqual(again.subscriptions, ['news.flash']);
    await waitFor(() => logs.some((l) => l.includes('reconnected to the hub')), 5000, 'the reconnect');
    assert.deepEqual([...hub.subscriptions], ['news.flash']);
    hub.event('news.flash', 'after');
    hub.event('secrets.plans', 'not for it');
    await waitFor(() => seen.length === 1, 5000, 'the event');
    await sleep(50);
    assert.deepEqual([seen, leaked], [['after'], []]);
    // Registering it again asks the hub again (and is refused again); the plugin still serves.
    await assert.rejects(plugin.on('secrets.plans', () => {}), { code: 'LM_PERMISSION_DENIED' });
    await hub.drop();
    assert.deepEqual((await hub.next('hello')).subscriptions, ['news.flash']);
    assert.equal(hub.connections, 3);
  });

  it('a lost connection or no answer is not a refusal: the pattern stays and the next hello names it', async () => {
    const hub = await FakeHub.start({ answerControl: false });
    cleanups.push(() => hub.close());
    const plugin = new Plugin({ socketPath: hub.socketPath, exit: false, handleSignals: false, log: false, reconnectMs: 10_000 });
    const running = plugin.run();
    running.catch(() => {});
    cleanups.push(async () => {
      await plugin.shutdown(0).catch(() => {});
      await running.catch(() => {});
    });
    const answer = (msg) => hub.send({ type: 'response', id: `a-${msg.id}`, correlationId: msg.id, success: true, data: { plugin: 'fake', protocol: 1 } });
    answer(await hub.next('hello'));
    await plugin.ready();
    const pending = plugin.on('kept.*', () => {});
    assert.equal((await hub.next('subscribe')).topic, 'kept.*');
    await hub.drop();
    const again = await hub.next('hello');
    assert.deepEqual(again.subscriptions, ['kept.*']);
    answer(again);
    await pending;
  });

  it("the refusal of a subscription given up with off() leaves the pattern's newer subscription alone", async () => {
    const hub = await FakeHub.start({ answerControl: false });
    cleanups.push(() => hub.close());
    const plugin = new Plugin({ socketPath: hub.socketPath, exit: false, handleSignals: false, log: false, reconnectMs: 10_000 });
    const running = plugin.run();
    running.catch(() => {});
    cleanups.push(async () => {
      await plugin.shutdown(0).catch(() => {});
      await running.catch(() => {});
    });
    const answer = (msg, data = { plugin: 'fake', protocol: 1 }) => hub.send({ type: 'response', id: `a-${msg.id}`, correlationId: msg.id, success: true, data });
    answer(await hub.next('hello'));
    await plugin.ready();
    const old = plugin.on('x.y', () => {});
    const oldSub = await hub.next('subscribe');
    const gone = plugin.off('x.y');
    answer(await hub.next('unsubscribe'), { topic: 'x.y' });
    await gone;
    const renewed = plugin.on('x.y', () => {});
    const newSub = await hub.next('subscribe');
    // The old subscribe's refusal comes last (as the hub may order its answers): it rejects only its own on().
    hub.send({ type: 'response', id: 'r-old', correlationId: oldSub.id, success: false, error: { code: 'LM_PERMISSION_DENIED', message: 'refused' } });
    await assert.rejects(old, { code: 'LM_PERMISSION_DENIED' });
    answer(newSub, { topic: 'x.y' });
    await renewed;
    await hub.drop();
    assert.deepEqual((await hub.next('hello')).subscriptions, ['x.y']);
  });

  it('a request right behind the answer to hello whose handler subscribes writes the subscribe before its answer', async () => {
    const hub = await FakeHub.start({ answerControl: false });
    cleanups.push(() => hub.close());
    const plugin = new Plugin({ socketPath: hub.socketPath, exit: false, handleSignals: false, log: false });
    plugin.method('listen', ({ topic }) => {
      plugin.on(topic, () => {});
      return topic;
    });
    const running = plugin.run();
    running.catch(() => {});
    cleanups.push(async () => {
      await plugin.shutdown(0).catch(() => {});
      await running.catch(() => {});
    });
    const hello = await hub.next('hello');
    // Back to back, as one write: the plugin reads both in one go.
    const answer = JSON.stringify({ type: 'response', id: 'h', correlationId: hello.id, success: true, data: { plugin: 'fake', protocol: 1 } });
    const request = JSON.stringify({ type: 'request', id: 'r1', from: 'host', to: ['fake'], method: 'listen', data: { topic: 'right.behind' } });
    hub.ws.send(answer);
    hub.ws.send(request);
    const first = await hub.next(() => true);
    const second = await hub.next(() => true);
    assert.deepEqual([first.type, first.topic], ['subscribe', 'right.behind']);
    assert.deepEqual([second.type, second.correlationId, second.data], ['response', 'r1', 'right.behind']);
  });

  it('a pattern registered while hello waits for its answer is subscribed after it; one removed meanwhile is unsubscribed', async () => {
    const hub = await FakeHub.start({ answerControl: false });
    cleanups.push(() => hub.close());
    const plugin = new Plugin({ socketPath: hub.socketPath, exit: false, handleSignals: false, log: false });
    plugin.on('early', () => {});
    plugin.on('dropped', () => {});
    const running = plugin.run();
    running.catch(() => {});
    cleanups.push(async () => {
      await plugin.shutdown(0).catch(() => {});
      await running.catch(() => {});
    });
    const hello = await hub.next('hello');
    assert.deepEqual(hello.subscriptions, ['early', 'dropped']);
    const during = plugin.on('during', () => {});
    await plugin.off('dropped');
    hub.send({ type: 'response', id: 'h', correlationId: hello.id, success: true, data: { plugin: 'fake', protocol: 1 } });
    await plugin.ready();
    const sub = await hub.next('subscribe');
    assert.equal(sub.topic, 'during');
    hub.send({ type: 'response', id: 's', correlationId: sub.id, success: true, data: { topic: 'during' } });
    await during;
    assert.equal((await hub.next('unsubscribe')).topic, 'dropped');
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
