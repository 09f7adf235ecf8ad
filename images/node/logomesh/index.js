// LogoMesh plugin SDK for Node.js (hub protocol 1, see docs/protocol.md and docs/sdk/node.md).
//
// A plugin creates one Plugin, registers its methods and topic handlers, and awaits run():
// run() connects to the hub over the Unix socket the controller names in
// LOGOMESH_HUB_SOCKET, says hello, serves requests concurrently until the hub asks it to
// shut down (or the process gets SIGTERM/SIGINT), lets in-flight requests answer, closes
// the connection with status 1000 and exits with code 0. When an established connection is
// lost (the controller killed and restarted), it reconnects, says hello again and subscribes
// again, for up to LOGOMESH_RECONNECT_MS.
import { WebSocket } from 'ws';

export const SDK_VERSION = '0.1.0';
export const PROTOCOL_VERSION = 1;

const DEFAULT_SOCKET = '/run/logomesh/hub.sock';
const METHOD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const PLUGIN_ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const TOPIC = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
const PATTERN = /^(?:\*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$/;
const DEFAULT_CALL_TIMEOUT_MS = 30_000;
const MAX_CALL_TIMEOUT_MS = 300_000;
/** The hub answers a call that timed out itself; the SDK's own timer is a backstop after it. */
const TIMEOUT_BACKSTOP_MS = 500;
/** How long the hub gets to answer hello, subscribe and unsubscribe. */
const CONTROL_TIMEOUT_MS = 10_000;
/** How long a clean close may wait for the hub's close frame. */
const CLOSE_WAIT_MS = 1_000;
const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);
/** After an established connection is lost: how long to try to reconnect, and the backoff. */
const DEFAULT_RECONNECT_MS = 60_000;
const RECONNECT_FIRST_DELAY_MS = 100;
const RECONNECT_MAX_DELAY_MS = 2_000;

/**
 * An error with a LogoMesh code (LM_*). Thrown by call() with the code of the failed
 * response; thrown by a method handler, it answers the request with its code, message and
 * details (any other exception answers with LM_PLUGIN_ERROR).
 */
export class LogoMeshError extends Error {
  /**
   * @param {string} code such as 'LM_INVALID_ARGUMENT'
   * @param {string} [message]
   * @param {unknown} [details] any JSON value
   */
  constructor(code, message, details) {
    super(message ?? code);
    this.name = 'LogoMeshError';
    this.code = code;
    this.details = details;
  }

  toJSON() {
    return { code: this.code, message: this.message, ...(this.details !== undefined ? { details: this.details } : {}) };
  }
}

/** Does a subscription pattern (`a.b`, `a.*`, `*`) match a topic? The hub's rule. */
export function topicMatches(pattern, topic) {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return topic.startsWith(pattern.slice(0, -1));
  return pattern === topic;
}

function isCoded(err) {
  return err instanceof LogoMeshError || (err !== null && typeof err === 'object' && err.name === 'LogoMeshError' && typeof err.code === 'string');
}

function errorText(err) {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

function noop() {}

/** What calls waiting for an answer get when the connection is lost and the SDK reconnects. */
class ConnectionLost extends LogoMeshError {
  constructor(code, reason) {
    super('LM_PLUGIN_UNAVAILABLE', 'hub connection lost', { status: code, ...(reason ? { reason } : {}) });
  }
}

function reconnectMsFromEnv(log) {
  const raw = (process.env.LOGOMESH_RECONNECT_MS ?? '').trim();
  if (raw === '') return DEFAULT_RECONNECT_MS;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value)) {
    log('warn', `LOGOMESH_RECONNECT_MS=${JSON.stringify(raw)} is not a number of milliseconds >= 0; using ${DEFAULT_RECONNECT_MS}`);
    return DEFAULT_RECONNECT_MS;
  }
  return value;
}

function defaultLog(level, message) {
  process.stderr.write(`[logomesh] ${level}: ${message}\n`);
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody has to await it: a rejection that nobody awaits is not an unhandled rejection.
  promise.catch(noop);
  return { promise, resolve, reject };
}

/**
 * A LogoMesh plugin: its methods, its subscriptions and its connection to the hub.
 *
 *   const plugin = new Plugin();
 *   plugin.method('add', ({ a, b }) => a + b);
 *   await plugin.run();
 */
export class Plugin {
  /** The plugin id (LOGOMESH_PLUGIN_ID, or the one the hub reports). */
  id;

  #methods = new Map();
  /** pattern -> { handlers: Set<Function>, confirmed: deferred } */
  #subs = new Map();
  /** id of an open hello/request/subscribe -> { resolve, reject, timer } */
  #pending = new Map();
  #shutdownHooks = [];
  #ws = null;
  /** idle -> connecting -> ready (<-> reconnecting) -> draining -> closed */
  #state = 'idle';
  /** Which connection requests came in on: an answer is only sent on that one. */
  #gen = 0;
  /** While reconnecting: settles when the connection is back (or run() ends instead). */
  #online = null;
  /** Resolved on shutdown: wakes the reconnect loop. */
  #wake = deferred();
  #reconnectMs;
  #seq = 0;
  #inflight = 0;
  #drained = null;
  #closed = deferred();
  #ready = deferred();
  #force = deferred();
  #stopping = null;
  #socketPath;
  #exit;
  #handleSignals;
  #graceMs;
  #connectTimeoutMs;
  #log;

  /**
   * @param {object} [options]
   * @param {Record<string, Function>} [options.methods] handlers by method name
   * @param {string} [options.socketPath] default: LOGOMESH_HUB_SOCKET
   * @param {string} [options.pluginId] default: LOGOMESH_PLUGIN_ID
   * @param {boolean} [options.exit] end the process (code 0) after a clean shutdown; default true
   * @param {boolean} [options.handleSignals] treat SIGTERM/SIGINT like the hub's shutdown; default true
   * @param {number} [options.graceMs] how long in-flight requests get on SIGTERM/SIGINT; default 5000
   * @param {number} [options.connectTimeoutMs] how long run() retries a missing socket; default 10000
   * @param {number} [options.reconnectMs] how long to try to reconnect after the connection is lost; default LOGOMESH_RECONNECT_MS, else 60000; 0 never
   * @param {false | ((level: string, message: string) => void)} [options.log] SDK diagnostics; default stderr
   */
  constructor(options = {}) {
    this.id = options.pluginId ?? process.env.LOGOMESH_PLUGIN_ID ?? '';
    this.#socketPath = options.socketPath ?? process.env.LOGOMESH_HUB_SOCKET ?? DEFAULT_SOCKET;
    this.#exit = options.exit ?? true;
    this.#handleSignals = options.handleSignals ?? true;
    this.#graceMs = options.graceMs ?? 5_000;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#log = options.log === false ? noop : (options.log ?? defaultLog);
    if (options.reconnectMs !== undefined && !(Number.isSafeInteger(options.reconnectMs) && options.reconnectMs >= 0)) {
      throw new TypeError(`reconnectMs must be a whole number of milliseconds >= 0, got ${JSON.stringify(options.reconnectMs)}`);
    }
    this.#reconnectMs = options.reconnectMs ?? reconnectMsFromEnv(this.#log);
    for (const [name, handler] of Object.entries(options.methods ?? {})) this.method(name, handler);
  }

  // --- serving ---------------------------------------------------------------------------

  /**
   * Serve a method. The handler gets the request's data (any JSON value; undefined when the
   * caller sent none) and a context { from, method, timeout }, and returns a JSON value or a
   * promise of one. Register every method before run(): hello announces them.
   */
  method(name, handler) {
    if (typeof name !== 'string' || !METHOD_NAME.test(name)) {
      throw new TypeError(`method name must be a letter or _, then letters, digits or _ (at most 64), got ${JSON.stringify(name)}`);
    }
    if (typeof handler !== 'function') throw new TypeError(`the handler of method '${name}' must be a function`);
    if (this.#state !== 'idle') throw new Error(`method '${name}' registered after run(): hello has already announced the methods`);
    this.#methods.set(name, handler);
    return this;
  }

  /** Register several methods at once: { name: handler, ... }. */
  methods(map) {
    for (const [name, handler] of Object.entries(map)) this.method(name, handler);
    return this;
  }

  /** Run fn (sync or async) during shutdown, after in-flight requests answered, before the socket closes. */
  onShutdown(fn) {
    if (typeof fn !== 'function') throw new TypeError('onShutdown needs a function');
    this.#shutdownHooks.push(fn);
    return this;
  }

  // --- calling -----------------------------------------------------------------------------

  /**
   * Call 'plugin-id.method', or a host method when the name has no dot. Resolves with the
   * result; rejects with a LogoMeshError carrying the response's code (LM_TIMEOUT,
   * LM_PERMISSION_DENIED, the target's own code, ...). While the SDK reconnects to the hub,
   * the call waits for the connection within its timeout (then LM_PLUGIN_UNAVAILABLE).
   * @param {string} target
   * @param {unknown} [data]
   * @param {{ timeout?: number } | number} [options] timeout in ms (hub default 30000, at most 300000)
   */
  async call(target, data, options) {
    const timeout = typeof options === 'number' ? options : options?.timeout;
    if (typeof target !== 'string') throw new LogoMeshError('LM_INVALID_ARGUMENT', `call target must be a string such as 'tokenizer.tokenize', got ${typeof target}`);
    const dot = target.indexOf('.');
    const to = dot < 0 ? 'host' : target.slice(0, dot);
    const method = dot < 0 ? target : target.slice(dot + 1);
    if (!METHOD_NAME.test(method) || (to !== 'host' && !PLUGIN_ID.test(to))) {
      throw new LogoMeshError('LM_INVALID_ARGUMENT', `call target must be 'plugin-id.method' or a host method name, got ${JSON.stringify(target)}`);
    }
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && Number.isFinite(timeout))) {
      throw new LogoMeshError('LM_INVALID_ARGUMENT', `call timeout must be a positive number of milliseconds, got ${JSON.stringify(timeout)}`);
    }
    let limit = timeout;
    if (this.#state !== 'ready') {
      const reconnecting = this.#state === 'reconnecting';
      const budget = Math.min(timeout ?? DEFAULT_CALL_TIMEOUT_MS, MAX_CALL_TIMEOUT_MS);
      const started = Date.now();
      await this.#connected('call', budget);
      // The time spent waiting for the connection comes off the call's timeout.
      if (reconnecting) limit = Math.max(1, budget - (Date.now() - started));
    }
    const wait = Math.min(limit ?? DEFAULT_CALL_TIMEOUT_MS, MAX_CALL_TIMEOUT_MS) + TIMEOUT_BACKSTOP_MS;
    const msg = { type: 'request', id: this.#nextId(), to: [to], method, data };
    if (limit !== undefined) msg.timeout = limit;
    return this.#exchange(msg, wait, () => `no response from ${target} within ${wait - TIMEOUT_BACKSTOP_MS} ms`);
  }

  // --- events ------------------------------------------------------------------------------

  /**
   * Emit an event to every subscriber of topic (or only to the plugins in options.to).
   * Resolves once written; needs coordination.messaging: true in the manifest (a refusal
   * from the hub is logged, as events have no answer).
   */
  async emit(topic, data, options) {
    if (typeof topic !== 'string' || !TOPIC.test(topic)) throw new LogoMeshError('LM_INVALID_ARGUMENT', `event topic must be a dotted name without wildcards, got ${JSON.stringify(topic)}`);
    const msg = { type: 'event', id: this.#nextId(), topic, data };
    if (options?.to !== undefined) {
      if (!Array.isArray(options.to) || !options.to.every((t) => typeof t === 'string')) throw new LogoMeshError('LM_INVALID_ARGUMENT', "emit option 'to' must be an array of plugin ids");
      msg.to = options.to;
    }
    if (this.#state !== 'ready') await this.#connected('emit');
    return this.#write(msg);
  }

  /**
   * Broadcast to every other plugin and host client (with a topic: to its subscribers only).
   * Resolves once written; needs coordination.messaging: true.
   * @param {string | null | undefined} topic
   */
  async broadcast(topic, data) {
    if (topic !== undefined && topic !== null && (typeof topic !== 'string' || !TOPIC.test(topic))) {
      throw new LogoMeshError('LM_INVALID_ARGUMENT', `broadcast topic must be a dotted name without wildcards, got ${JSON.stringify(topic)}`);
    }
    const msg = { type: 'broadcast', id: this.#nextId(), data };
    if (typeof topic === 'string') msg.topic = topic;
    if (this.#state !== 'ready') await this.#connected('broadcast');
    return this.#write(msg);
  }

  /**
   * Handle events and broadcasts whose topic matches pattern ('thought.added',
   * 'thought.*' or '*'; a broadcast without a topic reaches '*' handlers). The handler gets
   * (data, { type, topic, from, timestamp }). Returns a promise that resolves once the hub
   * confirmed the subscription (before run(): once run() subscribed); awaiting it is optional.
   */
  on(pattern, handler) {
    if (typeof pattern !== 'string' || !PATTERN.test(pattern)) throw new TypeError(`topic pattern must be a dotted name, optionally ending in .*, or *, got ${JSON.stringify(pattern)}`);
    if (typeof handler !== 'function') throw new TypeError(`the handler for '${pattern}' must be a function`);
    let sub = this.#subs.get(pattern);
    if (!sub) {
      sub = { handlers: new Set(), confirmed: deferred() };
      this.#subs.set(pattern, sub);
      if (this.#isOpen()) this.#subscribe(pattern, sub);
      else if (this.#state === 'closed') sub.confirmed.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the connection to the hub is closed'));
    }
    sub.handlers.add(handler);
    return sub.confirmed.promise;
  }

  /** Remove one handler of a pattern, or all of them; the last one gone unsubscribes. */
  off(pattern, handler) {
    const sub = this.#subs.get(pattern);
    if (!sub) return Promise.resolve();
    if (handler) sub.handlers.delete(handler);
    else sub.handlers.clear();
    if (sub.handlers.size > 0) return Promise.resolve();
    this.#subs.delete(pattern);
    if (!this.#isOpen()) return Promise.resolve();
    const p = this.#exchange({ type: 'unsubscribe', id: this.#nextId(), topic: pattern }, CONTROL_TIMEOUT_MS, () => `the hub did not confirm unsubscribe ${pattern}`);
    p.catch((err) => this.#log('warn', `unsubscribe ${pattern} failed: ${err.code}: ${err.message}`));
    return p.then(noop);
  }

  // --- lifecycle ---------------------------------------------------------------------------

  /** Resolves once run() has connected and the hub accepted hello; rejects if that failed. */
  ready() {
    return this.#ready.promise;
  }

  /**
   * Connect, say hello, serve until shutdown. With exit (the default) the process then ends
   * with code 0; otherwise the promise resolves. Rejects (and the process ends with an error
   * unless caught) when the hub cannot be reached or refuses hello, or when the connection
   * is lost and not re-made within reconnectMs.
   */
  async run() {
    if (this.#state !== 'idle') throw new Error('run() was already called');
    this.#state = 'connecting';
    const onSignal = (signal) => {
      if (this.#stopping) {
        this.#log('info', `${signal} again: closing without waiting for in-flight requests`);
        this.#force.resolve();
      } else {
        this.#log('info', `${signal}: shutting down`);
      }
      void this.#stop(this.#graceMs);
    };
    if (this.#handleSignals) {
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    }
    try {
      const ws = await this.#connect();
      if (this.#stopping) {
        ws.close(1000);
      } else {
        this.#attach(ws);
        const hello = await this.#exchange(this.#helloMessage(), CONTROL_TIMEOUT_MS, () => 'the hub did not answer hello');
        if (!this.id && typeof hello?.plugin === 'string') this.id = hello.plugin;
        if (this.#state === 'connecting') {
          this.#state = 'ready';
          for (const [pattern, sub] of this.#subs) this.#subscribe(pattern, sub);
          this.#ready.resolve();
        }
      }
      await this.#closed.promise;
    } catch (err) {
      this.#ready.reject(err);
      // Stopped (SIGTERM, shutdown()) while connecting or saying hello: that is a clean exit.
      if (!this.#stopping) {
        this.#state = 'closed';
        this.#ws?.terminate();
        throw err;
      }
    } finally {
      if (this.#handleSignals) {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    }
    if (this.#exit) process.exit(0);
  }

  /**
   * Shut down as if the hub asked: stop taking requests, let in-flight ones answer (at most
   * graceMs), run onShutdown hooks, close with status 1000. run() then resolves or exits.
   */
  shutdown(graceMs = this.#graceMs) {
    return this.#stop(graceMs);
  }

  // --- internals ---------------------------------------------------------------------------

  #nextId() {
    return (++this.#seq).toString(36);
  }

  #isOpen() {
    return (this.#state === 'ready' || this.#state === 'draining') && this.#ws !== null && this.#ws.readyState === WebSocket.OPEN;
  }

  /** Wait for the connection: the first one, or (for a call, within waitMs) a reconnect. */
  async #connected(what, waitMs) {
    if (this.#state === 'connecting') await this.#ready.promise;
    if (this.#state === 'reconnecting') {
      if (waitMs === undefined) throw new LogoMeshError('LM_PLUGIN_UNAVAILABLE', `${what}(): hub connection lost; reconnecting`);
      const deadline = Date.now() + waitMs;
      while (this.#state === 'reconnecting') {
        const left = deadline - Date.now();
        if (left <= 0) throw new LogoMeshError('LM_PLUGIN_UNAVAILABLE', `${what}(): hub connection lost, and not back within the call's timeout (${waitMs} ms)`);
        let timer;
        // Rejects when run() ends instead of reconnecting.
        await Promise.race([this.#online.promise, new Promise((r) => (timer = setTimeout(r, left)))]).finally(() => clearTimeout(timer));
      }
    }
    if (!this.#isOpen()) {
      throw new LogoMeshError(
        this.#state === 'idle' ? 'LM_PROTOCOL' : 'LM_CONTROLLER_UNAVAILABLE',
        this.#state === 'idle' ? `${what}() before run(): the plugin is not connected to the hub yet` : `${what}(): the connection to the hub is closed`,
      );
    }
  }

  async #connect() {
    const url = `ws+unix://${this.#socketPath}:/v1`;
    const deadline = Date.now() + this.#connectTimeoutMs;
    let delay = 20;
    for (;;) {
      try {
        return await openSocket(url);
      } catch (err) {
        if (this.#stopping) throw new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'stopped while connecting to the hub');
        if (RETRYABLE.has(err?.code) && Date.now() + delay < deadline) {
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 500);
          continue;
        }
        const unset = process.env.LOGOMESH_HUB_SOCKET ? '' : ' (LOGOMESH_HUB_SOCKET is not set: is this plugin running under LogoMesh?)';
        throw new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `cannot connect to the hub at ${this.#socketPath}: ${errorText(err)}${unset}`, {
          socket: this.#socketPath,
        });
      }
    }
  }

  #attach(ws) {
    this.#ws = ws;
    ws.on('message', (raw, isBinary) => this.#onFrame(raw, isBinary));
    ws.on('error', (err) => this.#log('warn', `hub connection error: ${err.message}`));
    ws.on('close', (code, reason) => this.#onClose(ws, code, reason.toString()));
  }

  #failPending(err) {
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  #onClose(ws, code, reason) {
    if (ws !== this.#ws) return; // a connection already given up
    if (this.#state === 'reconnecting') {
      // A reconnect attempt's connection: the loop tries again.
      this.#ws = null;
      return this.#failPending(new ConnectionLost(code, reason));
    }
    if (this.#state === 'ready' && this.#reconnectMs > 0) {
      // Lost, not closed by a shutdown: keep running and connect again.
      this.#ws = null;
      this.#state = 'reconnecting';
      this.#gen++;
      this.#online = deferred();
      this.#failPending(new ConnectionLost(code, reason));
      this.#log('warn', `plugin ${this.id || '(unnamed)'}: hub connection lost (code ${code}${reason ? `: ${reason}` : ''}); reconnecting for up to ${this.#reconnectMs} ms`);
      this.#reconnect(code).catch((err) => this.#fail(err));
      return;
    }
    const expected = this.#state === 'draining' || this.#state === 'closed';
    this.#state = 'closed';
    const err = new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `the hub closed the connection (status ${code}${reason ? `: ${reason}` : ''})`, { status: code });
    this.#failPending(err);
    for (const sub of this.#subs.values()) sub.confirmed.reject(err);
    if (expected) this.#closed.resolve();
    else this.#closed.reject(err);
    this.#drained?.();
  }

  /**
   * Connect again with backoff for up to reconnectMs, say hello with the same methods and
   * subscribe again to every pattern. Resolves once serving again (or stopped meanwhile);
   * rejects when the window passes (LM_CONTROLLER_UNAVAILABLE) or the hub refuses hello.
   */
  async #reconnect(code) {
    const url = `ws+unix://${this.#socketPath}:/v1`;
    const lostAt = Date.now();
    const deadline = lostAt + this.#reconnectMs;
    let delay = RECONNECT_FIRST_DELAY_MS;
    let attempts = 0;
    let last = 'no attempt';
    for (;;) {
      let timer;
      await Promise.race([this.#wake.promise, new Promise((r) => (timer = setTimeout(r, Math.max(0, Math.min(delay, deadline - Date.now())))))]);
      clearTimeout(timer);
      if (this.#state !== 'reconnecting') return; // shut down meanwhile
      delay = Math.min(delay * 2, RECONNECT_MAX_DELAY_MS);
      attempts++;
      let ws = null;
      try {
        ws = await openSocket(url, Math.max(1_000, deadline - Date.now()));
        if (this.#state !== 'reconnecting') return void ws.terminate();
        this.#attach(ws);
        const hello = await this.#exchange(this.#helloMessage(), Math.min(CONTROL_TIMEOUT_MS, Math.max(1_000, deadline - Date.now())), () => 'the hub did not answer hello');
        if (this.#state !== 'reconnecting') return void ws.close(1000);
        if (this.#ws !== ws || ws.readyState !== WebSocket.OPEN) throw new ConnectionLost(1006, 'closed right after hello');
        if (!this.id && typeof hello?.plugin === 'string') this.id = hello.plugin;
        this.#state = 'ready';
        for (const [pattern, sub] of this.#subs) this.#subscribe(pattern, sub);
        this.#log('warn', `plugin ${this.id || '(unnamed)'}: reconnected to the hub after ${Date.now() - lostAt} ms`);
        const online = this.#online;
        this.#online = null;
        online.resolve();
        return;
      } catch (err) {
        // A refused hello (an answer from the hub) ends the plugin; anything else is retried.
        const refused = isCoded(err) && !(err instanceof ConnectionLost) && !(err.code === 'LM_TIMEOUT' || err.code === 'LM_CONTROLLER_UNAVAILABLE');
        if (ws && ws === this.#ws) {
          this.#ws = null;
          ws.terminate();
        }
        if (refused) throw err;
        last = errorText(err);
      }
      if (Date.now() >= deadline) {
        throw new LogoMeshError(
          'LM_CONTROLLER_UNAVAILABLE',
          `the hub connection was lost and not re-made within ${this.#reconnectMs} ms (${attempts} attempt(s) at ${this.#socketPath}; last: ${last})`,
          { socket: this.#socketPath, reconnectMs: this.#reconnectMs, status: code },
        );
      }
    }
  }

  /** Reconnecting failed: run() rejects, and calls waiting for the connection too. */
  #fail(err) {
    if (this.#state !== 'reconnecting') return;
    this.#state = 'closed';
    this.#online?.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `the plugin is no longer connected to the hub: ${err.message}`));
    this.#online = null;
    for (const sub of this.#subs.values()) sub.confirmed.reject(err);
    this.#closed.reject(err);
  }

  #helloMessage() {
    return { type: 'hello', id: this.#nextId(), protocol: PROTOCOL_VERSION, sdk: `node/${SDK_VERSION}`, methods: [...this.#methods.keys()] };
  }

  /** Send a message that gets a response; resolve with its data, reject with its error. */
  #exchange(msg, waitMs, timeoutText) {
    return new Promise((resolve, reject) => {
      let text;
      try {
        text = JSON.stringify(msg);
      } catch (err) {
        return reject(new LogoMeshError('LM_INVALID_ARGUMENT', `${msg.type} data is not JSON-serializable: ${errorText(err)}`));
      }
      const ws = this.#ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the connection to the hub is closed'));
      const timer = setTimeout(() => {
        this.#pending.delete(msg.id);
        reject(new LogoMeshError('LM_TIMEOUT', timeoutText()));
      }, waitMs);
      this.#pending.set(msg.id, { resolve, reject, timer });
      // A write error closes the socket, and closing rejects every pending exchange.
      ws.send(text);
    });
  }

  /** Serialize and write one message; resolves once it is handed to the socket. */
  #write(msg) {
    let text;
    try {
      text = JSON.stringify(msg);
    } catch (err) {
      return Promise.reject(new LogoMeshError('LM_INVALID_ARGUMENT', `${msg.type} data is not JSON-serializable: ${errorText(err)}`));
    }
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the connection to the hub is closed'));
    return new Promise((resolve, reject) => {
      ws.send(text, (err) => (err ? reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `sending to the hub failed: ${err.message}`)) : resolve()));
    });
  }

  /**
   * Write without waiting (responses): a closed socket just drops it, and so does a newer
   * connection than the one the request came in on (gen): that hub is gone.
   */
  #post(text, gen = this.#gen) {
    const ws = this.#ws;
    if (ws && ws.readyState === WebSocket.OPEN && gen === this.#gen) ws.send(text);
  }

  #subscribe(pattern, sub) {
    const p = this.#exchange({ type: 'subscribe', id: this.#nextId(), topic: pattern }, CONTROL_TIMEOUT_MS, () => `the hub did not confirm subscribe ${pattern}`);
    p.then(
      () => sub.confirmed.resolve(),
      (err) => {
        // Lost meanwhile: subscribed again once reconnected.
        if (err instanceof ConnectionLost && this.#state === 'reconnecting') return;
        this.#log('warn', `subscribe ${pattern} failed: ${err.code}: ${err.message}`);
        sub.confirmed.reject(err);
      },
    );
  }

  #onFrame(raw, isBinary) {
    if (isBinary) return this.#log('warn', 'binary frame from the hub ignored (this SDK speaks JSON)');
    let msg;
    try {
      msg = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      return this.#log('warn', `frame from the hub is not JSON: ${errorText(err)}`);
    }
    if (msg === null || typeof msg !== 'object') return;
    switch (msg.type) {
      case 'request':
        return this.#onRequest(msg);
      case 'response':
      case 'error':
        return this.#onResponse(msg);
      case 'event':
      case 'broadcast':
        return this.#onEvent(msg);
      case 'shutdown':
        this.#log('info', 'the hub asked to shut down');
        return void this.#stop(typeof msg.data?.graceMs === 'number' ? msg.data.graceMs : this.#graceMs);
      default:
        return undefined;
    }
  }

  #onResponse(msg) {
    const p = this.#pending.get(msg.correlationId);
    if (!p) {
      // An event or broadcast the hub refused (they have no answer otherwise), or a late response.
      if (msg.type === 'error' || msg.success === false) this.#log('warn', `the hub refused message ${msg.correlationId ?? '?'}: ${msg.error?.code}: ${msg.error?.message}`);
      return;
    }
    this.#pending.delete(msg.correlationId);
    clearTimeout(p.timer);
    if (msg.type === 'response' && msg.success === true) p.resolve(msg.data);
    else p.reject(new LogoMeshError(msg.error?.code ?? 'LM_PLUGIN_ERROR', msg.error?.message ?? 'the call failed without a message', msg.error?.details));
  }

  #onRequest(msg) {
    const id = msg.id;
    // 'connecting' too: the hub may deliver a request right behind its answer to hello.
    if (this.#state === 'draining' || this.#state === 'closed') {
      return this.#replyError(id, 'LM_PLUGIN_UNAVAILABLE', `plugin ${this.id || '(unnamed)'} is shutting down`);
    }
    const handler = this.#methods.get(msg.method);
    if (!handler) {
      return this.#replyError(id, 'LM_METHOD_NOT_FOUND', `plugin ${this.id || '(unnamed)'} does not serve method '${msg.method}'`, {
        method: msg.method,
        methods: [...this.#methods.keys()],
      });
    }
    this.#inflight++;
    const gen = this.#gen;
    let result;
    try {
      result = handler(msg.data, { from: msg.from, method: msg.method, timeout: msg.timeout });
    } catch (err) {
      this.#replyFailure(id, msg.method, err, gen);
      return this.#done();
    }
    if (isThenable(result)) {
      result.then(
        (value) => {
          this.#replyOk(id, msg.method, value, gen);
          this.#done();
        },
        (err) => {
          this.#replyFailure(id, msg.method, err, gen);
          this.#done();
        },
      );
    } else {
      this.#replyOk(id, msg.method, result, gen);
      this.#done();
    }
  }

  #done() {
    if (--this.#inflight === 0) this.#drained?.();
  }

  #replyOk(correlationId, method, value, gen) {
    let text;
    try {
      text = JSON.stringify({ type: 'response', id: this.#nextId(), correlationId, success: true, data: value === undefined ? null : value });
    } catch (err) {
      return this.#replyError(correlationId, 'LM_PLUGIN_ERROR', `the result of method '${method}' is not JSON-serializable: ${errorText(err)}`, undefined, gen);
    }
    this.#post(text, gen);
  }

  #replyFailure(correlationId, method, err, gen) {
    if (isCoded(err)) return this.#replyError(correlationId, err.code, String(err.message ?? err.code), err.details, gen);
    this.#log('error', `method '${method}' failed: ${err instanceof Error ? (err.stack ?? err.message) : errorText(err)}`);
    this.#replyError(correlationId, 'LM_PLUGIN_ERROR', errorText(err), err instanceof Error ? { type: err.name } : undefined, gen);
  }

  #replyError(correlationId, code, message, details, gen = this.#gen) {
    const error = { code, message };
    if (details !== undefined) error.details = details;
    const msg = { type: 'response', id: this.#nextId(), correlationId, success: false, error };
    let text;
    try {
      text = JSON.stringify(msg);
    } catch {
      delete error.details;
      text = JSON.stringify(msg);
    }
    this.#post(text, gen);
  }

  #onEvent(msg) {
    const topic = typeof msg.topic === 'string' ? msg.topic : undefined;
    const meta = { type: msg.type, topic, from: msg.from, timestamp: msg.timestamp };
    for (const [pattern, sub] of this.#subs) {
      if (topic === undefined ? pattern !== '*' : !topicMatches(pattern, topic)) continue;
      for (const handler of sub.handlers) {
        try {
          const r = handler(msg.data, meta);
          if (isThenable(r)) r.then(undefined, (err) => this.#handlerFailed(pattern, err));
        } catch (err) {
          this.#handlerFailed(pattern, err);
        }
      }
    }
  }

  #handlerFailed(pattern, err) {
    this.#log('error', `handler for '${pattern}' failed: ${err instanceof Error ? (err.stack ?? err.message) : errorText(err)}`);
  }

  /** The one shutdown path: shutdown message, SIGTERM/SIGINT or shutdown(). */
  #stop(graceMs) {
    this.#stopping ??= this.#drain(graceMs);
    return this.#stopping;
  }

  async #drain(graceMs) {
    this.#wake.resolve();
    if (this.#state === 'reconnecting') {
      // No connection to answer on: stop now (onShutdown hooks still run, within graceMs).
      this.#state = 'closed';
      this.#online?.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the plugin stopped while reconnecting to the hub'));
      this.#online = null;
      const ws = this.#ws;
      this.#ws = null;
      ws?.terminate();
      await this.#runHooks(Date.now() + Math.max(0, graceMs));
      this.#closed.resolve();
      return;
    }
    if (this.#state === 'idle' || this.#state === 'closed') {
      this.#state = 'closed';
      this.#closed.resolve();
      return;
    }
    if (this.#state === 'connecting') {
      // run() notices #stopping once connected (or failing to) and closes.
      this.#state = 'draining';
      this.#ready.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'shut down before the hub accepted hello'));
      if (!this.#ws) this.#closed.resolve();
      else this.#ws.close(1000);
      return;
    }
    this.#state = 'draining';
    const deadline = Date.now() + Math.max(0, graceMs);
    if (this.#inflight > 0) {
      await this.#within(deadline, new Promise((r) => (this.#drained = r)));
      if (this.#inflight > 0) this.#log('warn', `${this.#inflight} request(s) still running after the grace period; closing anyway`);
    }
    await this.#runHooks(deadline);
    const ws = this.#ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      ws.close(1000, 'shutdown');
      const timer = setTimeout(() => ws.terminate(), CLOSE_WAIT_MS);
      await this.#closed.promise.catch(noop);
      clearTimeout(timer);
    } else {
      this.#state = 'closed';
      this.#closed.resolve();
    }
  }

  /** Settles with promise, or when the deadline passes or a second signal forces it. */
  #within(deadline, promise) {
    const left = deadline - Date.now();
    if (left <= 0) return Promise.resolve();
    let timer;
    return Promise.race([promise, this.#force.promise, new Promise((r) => (timer = setTimeout(r, left)))]).finally(() => clearTimeout(timer));
  }

  async #runHooks(deadline) {
    for (const hook of this.#shutdownHooks) {
      try {
        await this.#within(deadline, Promise.resolve().then(hook));
      } catch (err) {
        this.#log('error', `shutdown hook failed: ${err instanceof Error ? (err.stack ?? err.message) : errorText(err)}`);
      }
    }
  }
}

function openSocket(url, handshakeTimeout) {
  return new Promise((resolve, reject) => {
    // permessage-deflate costs latency on small messages; the hub does not use it.
    const ws = new WebSocket(url, { headers: { Host: 'logomesh' }, perMessageDeflate: false, ...(handshakeTimeout ? { handshakeTimeout } : {}) });
    const fail = (err) => {
      ws.removeAllListeners();
      ws.on('error', noop);
      reject(err);
    };
    ws.once('open', () => {
      ws.removeAllListeners();
      resolve(ws);
    });
    ws.once('error', fail);
    ws.once('unexpected-response', (req, res) => {
      req.destroy();
      fail(new Error(`the hub answered the WebSocket upgrade with HTTP ${res.statusCode}`));
    });
  });
}
