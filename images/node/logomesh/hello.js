// Hello and subscriptions: the hello a connection opens with, the hub's answer to it (its
// encoding, batching and message size), and the subscriptions made or confirmed around it
// (docs/protocol.md). A refusal from the hub is told apart from a lost connection here.
import { ConnectionLost, isCoded } from './errors.js';
import { CONTROL_TIMEOUT_MS } from './options.js';
import { MAX_MESSAGE_BYTES, PROTOCOL_VERSION, SDK_VERSION } from './protocol.js';
import { nextId } from './state.js';
import { MAX_BATCH_FRAMES } from './batch.js';
import { exchange } from './writes.js';

/**
 * Hello with the methods, and every pattern registered so far as its subscriptions: the hub
 * subscribes them before it answers, so no event published once the plugin is ready is missed.
 */
export function helloMessage(s) {
  return {
    type: 'hello',
    id: nextId(s),
    protocol: PROTOCOL_VERSION,
    sdk: `node/${SDK_VERSION}`,
    methods: [...s.methods.keys()],
    subscriptions: [...s.subs.keys()],
    // Batched frames are JSON text: offered unless msgpack is.
    ...(s.opts.frames === 'msgpack' ? { encodings: ['msgpack', 'json'] } : { batch: true }),
  };
}

/**
 * The hub accepted a hello that subscribed `sent`: those are confirmed; a pattern registered
 * since (while hello waited for its answer) is subscribed now, and one removed since is
 * unsubscribed.
 */
export function subscribeRest(s, sent) {
  const inHello = new Set(sent);
  for (const [pattern, sub] of s.subs) {
    if (inHello.has(pattern)) sub.confirmed.resolve();
    else subscribe(s, pattern, sub);
  }
  for (const pattern of inHello) {
    if (s.subs.has(pattern)) continue;
    exchange(s, { type: 'unsubscribe', id: nextId(s), topic: pattern }, CONTROL_TIMEOUT_MS, () => `the hub did not confirm unsubscribe ${pattern}`).catch((err) =>
      s.log('warn', `unsubscribe ${pattern} failed: ${err.code}: ${err.message}`),
    );
  }
}

/**
 * Say hello on the current connection and wait for the answer. A refusal (an answer from the
 * hub: a method or topic the manifest does not declare, say) rejects with the hub's code; no
 * answer is LM_TIMEOUT, a lost connection LM_CONTROLLER_UNAVAILABLE or ConnectionLost.
 */
export function sayHello(s, msg, waitMs) {
  return exchange(s, msg, waitMs, () => 'the hub did not answer hello', (data) => helloAnswered(s, msg.subscriptions, data));
}

/**
 * The hub accepted hello: its maximum message size holds from the next frame on, and on the
 * first connection the plugin is ready at once, so that a request read right behind the
 * answer that registers a pattern subscribes it before answering. (After a loss, reconnect()
 * makes the new connection current once its hello's answer is awaited.)
 */
function helloAnswered(s, sent, data) {
  accepted(s, data);
  if (s.state !== 'connecting') return;
  s.state = 'ready';
  subscribeRest(s, sent);
  s.ready.resolve();
}

export function isRefusal(err) {
  return isCoded(err) && !(err instanceof ConnectionLost) && err.code !== 'LM_TIMEOUT' && err.code !== 'LM_CONTROLLER_UNAVAILABLE';
}

/** Hello was refused (or never answered): the subscriptions it carried are not made. */
export function rejectSubs(s, err) {
  for (const sub of s.subs.values()) sub.confirmed.reject(err);
}

/** The hub accepted hello: learn the plugin's id if it had none, and the hub's message size. */
export function accepted(s, hello) {
  // The hub speaks msgpack from its next frame on when it named it here.
  s.binary = s.opts.frames === 'msgpack' && hello?.encoding === 'msgpack';
  // The hub batches from its next frame on when it named how many frames a message may hold.
  const batch = hello?.batch;
  s.batch = !s.binary && Number.isSafeInteger(batch) && batch > 0 ? Math.min(batch, MAX_BATCH_FRAMES) : 0;
  if (!s.plugin.id && typeof hello?.plugin === 'string') s.plugin.id = hello.plugin;
  const announced = hello?.maxMessageBytes;
  if (Number.isSafeInteger(announced) && announced > 0 && announced <= MAX_MESSAGE_BYTES) s.maxBytes = announced;
}

/**
 * Subscribe a pattern registered while serving. Refused by the hub (the manifest does not
 * cover it): the handlers waiting on this subscription are dropped, so that no later hello
 * names the pattern (the hub would refuse that hello whole, and the plugin would end after
 * its next reconnect). Lost meanwhile or unanswered: the handlers stay.
 */
export function subscribe(s, pattern, sub) {
  const p = exchange(s, { type: 'subscribe', id: nextId(s), topic: pattern }, CONTROL_TIMEOUT_MS, () => `the hub did not confirm subscribe ${pattern}`);
  p.then(
    () => sub.confirmed.resolve(),
    (err) => {
      // Lost meanwhile: subscribed again once reconnected.
      if (err instanceof ConnectionLost && s.state === 'reconnecting') return;
      // Only this subscription's handlers: after an off() and a new on(), the pattern has a newer one.
      const dropped = isRefusal(err) && s.subs.get(pattern) === sub;
      if (dropped) s.subs.delete(pattern);
      s.log('warn', `subscribe ${pattern} failed: ${err.code}: ${err.message}${dropped ? ' (its handlers are dropped; on() again to retry)' : ''}`);
      sub.confirmed.reject(err);
    },
  );
}
