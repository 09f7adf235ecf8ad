// The Plugin: its methods, its subscriptions and its connection to the hub, put together
// from its parts (calls.js, connection.js, dial.js, hello.js, writes.js, dispatch.js,
// shutdown.js), which share one state.
import { broadcast, call, emit, off, on } from './calls.js';
import { attach } from './connection.js';
import { connect } from './dial.js';
import { onFrame, onMessage } from './dispatch.js';
import { errorText, isCoded } from './errors.js';
import { CONTROL_TIMEOUT_MS, resolveOptions } from './options.js';
import { METHOD_NAME } from './protocol.js';
import { signalHandler, stop } from './shutdown.js';
import { Segment, segmentOp } from './segments.js';
import { createState, pluginName } from './state.js';
import { helloMessage, rejectSubs, sayHello } from './hello.js';

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

  #s;

  /**
   * @param {object} [options]
   * @param {Record<string, Function>} [options.methods] handlers by method name
   * @param {string} [options.socketPath] default: LOGOMESH_HUB_SOCKET
   * @param {string} [options.pluginId] default: LOGOMESH_PLUGIN_ID
   * @param {boolean} [options.exit] end the process when run() is over: code 0 after a clean shutdown, 1 after a failure (written to the log as one line); default true
   * @param {boolean} [options.handleSignals] treat SIGTERM/SIGINT like the hub's shutdown; default true
   * @param {number} [options.graceMs] how long in-flight requests get on SIGTERM/SIGINT; default 5000
   * @param {number} [options.connectTimeoutMs] how long run() retries a missing socket; default 10000
   * @param {number} [options.reconnectMs] how long to try to reconnect after the connection is lost; default LOGOMESH_RECONNECT_MS, else 60000; 0 never
   * @param {boolean} [options.standby] a warm standby: wait for the answer to the first hello without a timeout; default LOGOMESH_STANDBY=1
   * @param {false | ((level: string, message: string) => void)} [options.log] SDK diagnostics; default stderr
   */
  constructor(options = {}) {
    const opts = resolveOptions(options);
    this.id = opts.pluginId;
    const s = createState(this, opts);
    s.onFrame = (raw, isBinary) => onFrame(s, raw, isBinary);
    s.onMessage = (msg) => onMessage(s, msg);
    this.#s = s;
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
    if (this.#s.state !== 'idle') throw new Error(`method '${name}' registered after run(): hello has already announced the methods`);
    this.#s.methods.set(name, handler);
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
    this.#s.shutdownHooks.push(fn);
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
  call(target, data, options) {
    return call(this.#s, target, data, options);
  }

  // --- events ------------------------------------------------------------------------------

  /**
   * Emit an event to every subscriber of topic (or only to the plugins in options.to).
   * Resolves once written; needs coordination.messaging: true in the manifest. A refusal
   * from the hub is logged; with options.ack, the hub answers and a refusal rejects with
   * its code (LM_PERMISSION_DENIED naming the manifest field).
   */
  emit(topic, data, options) {
    return emit(this.#s, topic, data, options);
  }

  /**
   * Broadcast to every other plugin and host client (with a topic: to its subscribers only).
   * Resolves once written; needs coordination.messaging: true. options.ack: as for emit.
   * @param {string | null | undefined} topic
   */
  broadcast(topic, data, options) {
    return broadcast(this.#s, topic, data, options);
  }

  /**
   * Handle events and broadcasts whose topic matches pattern ('thought.added',
   * 'thought.*' or '*'; a broadcast without a topic reaches '*' handlers). The handler gets
   * (data, { type, topic, from, timestamp }): `from` and `topic` are the hub's, so they say
   * who really sent it. Patterns registered before run() go in hello's subscriptions: the
   * hub subscribes them before the plugin counts as ready. One registered while serving is
   * subscribed with a `subscribe` message, written before on() returns. The manifest must
   * cover each under coordination.subscribes (a hello naming one it does not is refused, and
   * run() rejects with that error). Returns a promise that resolves once the hub confirmed
   * the subscription (before run(): once hello is accepted); awaiting it is optional. A
   * subscribe the hub refuses while serving rejects it, and the handlers registered for
   * that subscription are dropped, so that the hello after a reconnect does not name the
   * pattern (the hub would refuse it whole); a lost connection or no answer keeps them.
   */
  on(pattern, handler) {
    return on(this.#s, pattern, handler);
  }

  /** Remove one handler of a pattern, or all of them; the last one gone unsubscribes. */
  off(pattern, handler) {
    return off(this.#s, pattern, handler);
  }

  // --- shared memory (docs/shared-memory.md) -------------------------------------------------

  /** A new segment of size bytes (zeroed), owned by this plugin, which alone may open it until it shares it. */
  async allocate(size) {
    return new Segment(this.#s, await segmentOp(this.#s, 'allocate', { size }));
  }

  /** The segment published under key (read-only), with read access given to this plugin. */
  async lookup(key) {
    return new Segment(this.#s, await segmentOp(this.#s, 'lookup', { key }));
  }

  /** The segments this plugin owns or holds. */
  async segments() {
    return (await segmentOp(this.#s, 'list', {})).segments;
  }

  /** A Segment for a handle received some other way. */
  segment(handle) {
    return new Segment(this.#s, handle?.$segment ?? handle);
  }

  // --- lifecycle ---------------------------------------------------------------------------

  /** Resolves once run() has connected and the hub accepted hello; rejects if that failed. */
  ready() {
    return this.#s.ready.promise;
  }

  /**
   * Connect, say hello, serve until shutdown. Fails when the hub cannot be reached or refuses
   * hello (a method or topic the manifest does not declare), or when the connection is lost
   * and not re-made within reconnectMs. With exit (the default) the process then ends: code
   * 0 after a clean shutdown, 1 after a failure, written to the log as one line
   * ("[logomesh] error: plugin <id>: <code>: <message>"). With exit: false the promise
   * resolves or rejects with the LogoMeshError instead.
   */
  async run() {
    const s = this.#s;
    if (s.state !== 'idle') throw new Error('run() was already called');
    s.state = 'connecting';
    const onSignal = signalHandler(s);
    if (s.opts.handleSignals) {
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    }
    try {
      const ws = await connect(s);
      if (s.stopping) {
        ws.close(1000);
      } else {
        attach(s, ws);
        // The answer is taken in as it is read: the plugin is ready from then on (unless it
        // was shut down meanwhile), see helloAnswered. A standby waits for it without a timeout.
        await sayHello(s, helloMessage(s), s.opts.standby ? 0 : CONTROL_TIMEOUT_MS);
      }
      await s.closed.promise;
    } catch (err) {
      s.ready.reject(err);
      rejectSubs(s, err);
      // Stopped (SIGTERM, shutdown()) while connecting or saying hello: that is a clean exit.
      if (!s.stopping) {
        s.state = 'closed';
        s.ws?.terminate();
        if (s.opts.exit) {
          // One clear line for the operator (the controller shows a plugin's last output),
          // rather than an unhandled rejection's stack of SDK internals.
          s.log('error', `plugin ${pluginName(s)}: ${isCoded(err) ? `${err.code}: ` : ''}${errorText(err)}`);
          process.exit(1);
        }
        throw err;
      }
    } finally {
      if (s.opts.handleSignals) {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      }
    }
    if (s.opts.exit) process.exit(0);
  }

  /**
   * Shut down as if the hub asked: stop taking requests, let in-flight ones answer (at most
   * graceMs), run onShutdown hooks, close with status 1000. run() then resolves or exits.
   */
  shutdown(graceMs = this.#s.opts.graceMs) {
    return stop(this.#s, graceMs);
  }
}
