// Outbound messages: calls to other plugins and the host, events, broadcasts, and the
// subscriptions that bring events in.
import { connected, isOpen } from './connection.js';
import { LogoMeshError } from './errors.js';
import { CONTROL_TIMEOUT_MS, noop, TIMEOUT_BACKSTOP_MS } from './options.js';
import { DEFAULT_CALL_TIMEOUT_MS, MAX_CALL_TIMEOUT_MS, METHOD_NAME, PATTERN, PLUGIN_ID, TOPIC } from './protocol.js';
import { packSegments } from './segments.js';
import { deferred, nextId } from './state.js';
import { subscribe } from './hello.js';
import { exchange, exchangeText, unsendable, write } from './writes.js';
import { requestText, routeJson } from './envelopes.js';

/**
 * See Plugin.call. Not an async function: connected, a call returns the exchange's own
 * promise, without the extra promise and microtask turns an async function's return of a
 * promise costs on every call; a bad argument still rejects, never throws.
 */
export function call(s, target, data, options) {
  try {
    return s.state === 'ready' ? send(s, target, data, options, undefined) : callWhenConnected(s, target, data, options);
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Targets already checked: target -> { to: [plugin id], method, json: their JSON (envelopes.js) }. A plugin calls a few
 * targets over and over; each call otherwise split its target (two strings) and ran two
 * regular expressions. Bounded: a plugin making up targets empties it when it is full.
 */
const targets = new Map();
const MAX_TARGETS = 256;

/** The target split into its plugin (the message's `to`, shared: only ever serialized) and method. Not frozen: JSON.stringify of a frozen array took half as long again. */
function route(target) {
  let r = targets.get(target);
  if (r !== undefined) return r;
  if (typeof target !== 'string') throw new LogoMeshError('LM_INVALID_ARGUMENT', `call target must be a string such as 'tokenizer.tokenize', got ${typeof target}`);
  const dot = target.indexOf('.');
  const to = dot < 0 ? 'host' : target.slice(0, dot);
  const method = dot < 0 ? target : target.slice(dot + 1);
  if (!METHOD_NAME.test(method) || (to !== 'host' && !PLUGIN_ID.test(to))) {
    throw new LogoMeshError('LM_INVALID_ARGUMENT', `call target must be 'plugin-id.method' or a host method name, got ${JSON.stringify(target)}`);
  }
  if (targets.size >= MAX_TARGETS) targets.clear();
  r = { to: [to], method, json: routeJson(to, method) };
  targets.set(target, r);
  return r;
}

/** The timeout the hub gets: whole milliseconds up to its ceiling (undefined: its default). */
function limitOf(options) {
  const timeout = typeof options === 'number' ? options : options?.timeout;
  if (timeout === undefined) return undefined;
  if (!(typeof timeout === 'number' && timeout > 0 && Number.isFinite(timeout))) {
    throw new LogoMeshError('LM_INVALID_ARGUMENT', `call timeout must be a positive number of milliseconds, got ${JSON.stringify(timeout)}`);
  }
  return Math.min(Math.max(1, Math.ceil(timeout)), MAX_CALL_TIMEOUT_MS);
}

/** Before the connection is ready (or while it is made again): wait for it within the call's timeout. */
async function callWhenConnected(s, target, data, options) {
  route(target);
  let limit = limitOf(options);
  const reconnecting = s.state === 'reconnecting';
  const budget = limit ?? DEFAULT_CALL_TIMEOUT_MS;
  const started = Date.now();
  await connected(s, 'call', budget);
  // The time spent waiting for the connection comes off the call's timeout.
  if (reconnecting) limit = Math.max(1, budget - (Date.now() - started));
  return send(s, target, data, options, limit);
}

/** `limit`: the timeout already worked out (after a wait for the connection), or undefined to take it from options. */
function send(s, target, data, options, limit) {
  const r = route(target);
  const checkedLimit = limitOf(options);
  if (limit === undefined) limit = checkedLimit;
  const wait = (limit ?? DEFAULT_CALL_TIMEOUT_MS) + TIMEOUT_BACKSTOP_MS;
  const timeoutText = () => `no response from ${target} within ${wait - TIMEOUT_BACKSTOP_MS} ms`;
  const [packed, segments] = packSegments(data);
  const id = nextId(s);
  if (segments.length === 0 && !s.binary) {
    // The usual call: its JSON text written around its data's (envelopes.js).
    let text;
    try {
      text = requestText(id, r.json, packed, limit, s.maxBytes);
    } catch (err) {
      throw unsendable('request', err);
    }
    return exchangeText(s, id, text, wait, timeoutText);
  }
  const msg = { type: 'request', id, to: r.to, method: r.method, data: packed };
  if (segments.length) msg.segments = segments;
  if (limit !== undefined) msg.timeout = limit;
  return exchange(s, msg, wait, timeoutText);
}

/** See Plugin.emit. */
export async function emit(s, topic, data, options) {
  if (typeof topic !== 'string' || !TOPIC.test(topic)) throw new LogoMeshError('LM_INVALID_ARGUMENT', `event topic must be a dotted name without wildcards, got ${JSON.stringify(topic)}`);
  const [packed, segments] = packSegments(data);
  const msg = { type: 'event', id: nextId(s), topic, data: packed };
  if (segments.length) msg.segments = segments;
  if (options?.to !== undefined) {
    if (!Array.isArray(options.to) || !options.to.every((t) => typeof t === 'string')) throw new LogoMeshError('LM_INVALID_ARGUMENT', "emit option 'to' must be an array of plugin ids");
    msg.to = options.to;
  }
  if (s.state !== 'ready') await connected(s, 'emit');
  return options?.ack === true ? acked(s, msg) : write(s, msg);
}

/**
 * Send an event or broadcast with ack: the hub answers once it has published it, or with
 * its refusal (LM_PERMISSION_DENIED, LM_RATE_LIMITED), which rejects here.
 */
function acked(s, msg) {
  const what = msg.topic ? `${msg.type} ${msg.topic}` : msg.type;
  return exchange(s, { ...msg, ack: true }, CONTROL_TIMEOUT_MS, () => `the hub did not answer the ${what}`).then(noop);
}

/** See Plugin.broadcast. */
export async function broadcast(s, topic, data, options) {
  if (topic !== undefined && topic !== null && (typeof topic !== 'string' || !TOPIC.test(topic))) {
    throw new LogoMeshError('LM_INVALID_ARGUMENT', `broadcast topic must be a dotted name without wildcards, got ${JSON.stringify(topic)}`);
  }
  const msg = { type: 'broadcast', id: nextId(s), data };
  if (typeof topic === 'string') msg.topic = topic;
  if (s.state !== 'ready') await connected(s, 'broadcast');
  return options?.ack === true ? acked(s, msg) : write(s, msg);
}

/** See Plugin.on. */
export function on(s, pattern, handler) {
  if (typeof pattern !== 'string' || !PATTERN.test(pattern)) throw new TypeError(`topic pattern must be a dotted name, optionally ending in .*, or *, got ${JSON.stringify(pattern)}`);
  if (typeof handler !== 'function') throw new TypeError(`the handler for '${pattern}' must be a function`);
  let sub = s.subs.get(pattern);
  if (!sub) {
    sub = { handlers: new Set(), confirmed: deferred() };
    s.subs.set(pattern, sub);
    if (isOpen(s)) subscribe(s, pattern, sub);
    else if (s.state === 'closed') sub.confirmed.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the connection to the hub is closed'));
  }
  sub.handlers.add(handler);
  return sub.confirmed.promise;
}

/** See Plugin.off. */
export function off(s, pattern, handler) {
  const sub = s.subs.get(pattern);
  if (!sub) return Promise.resolve();
  if (handler) sub.handlers.delete(handler);
  else sub.handlers.clear();
  if (sub.handlers.size > 0) return Promise.resolve();
  s.subs.delete(pattern);
  if (!isOpen(s)) return Promise.resolve();
  const p = exchange(s, { type: 'unsubscribe', id: nextId(s), topic: pattern }, CONTROL_TIMEOUT_MS, () => `the hub did not confirm unsubscribe ${pattern}`);
  p.catch((err) => s.log('warn', `unsubscribe ${pattern} failed: ${err.code}: ${err.message}`));
  return p.then(noop);
}
