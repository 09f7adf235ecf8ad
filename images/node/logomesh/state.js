// The state of one plugin, shared by its parts (calls, connection, dispatch, shutdown). The
// Plugin holds it in a private field: plugin code never sees it.
import { MAX_MESSAGE_BYTES } from './protocol.js';
import { noop } from './options.js';
import { Deadlines } from './deadlines.js';
import { LogoMeshError } from './errors.js';

/** A promise and the functions that settle it; a rejection nobody awaits is not unhandled. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(noop);
  return { promise, resolve, reject };
}

export function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

/**
 * @param {{ id: string }} plugin the public object (its id is read and, after hello, set)
 * @param {ReturnType<import('./options.js').resolveOptions>} opts
 */
export function createState(plugin, opts) {
  const s = {
    plugin,
    opts,
    log: opts.log,
    /** name -> handler */
    methods: new Map(),
    /** pattern -> { handlers: Set<Function>, confirmed: deferred } */
    subs: new Map(),
    /** id of an open hello/request/subscribe -> its Waiter (writes.js) */
    pending: new Map(),
    shutdownHooks: [],
    ws: null,
    /** idle -> connecting -> ready (<-> reconnecting) -> draining -> closed */
    state: 'idle',
    /** Which connection requests came in on: an answer is only sent on that one. */
    gen: 0,
    /** While reconnecting: settles when the connection is back (or run() ends instead). */
    online: null,
    /** Resolved on shutdown: wakes the reconnect loop. */
    wake: deferred(),
    reconnectMs: opts.reconnectMs,
    seq: 0,
    inflight: 0,
    drained: null,
    closed: deferred(),
    ready: deferred(),
    force: deferred(),
    stopping: null,
    /** The largest message either way: the hub's, once it announced it in hello's answer. */
    maxBytes: MAX_MESSAGE_BYTES,
    /** Set by the plugin: where frames from the hub go, and frames already decoded (a batch). */
    onFrame: noop,
    onMessage: noop,
  };
  /** When the exchanges waiting in `pending` time out (deadlines.js): one timer for all. */
  s.deadlines = new Deadlines((w) => {
    if (s.pending.get(w.id) !== w) return;
    s.pending.delete(w.id);
    w.reject(new LogoMeshError('LM_TIMEOUT', w.timeoutText()));
  });
  return s;
}

/**
 * Ids of 12 characters: JSON.parse interns string values of up to about 10 characters, so
 * each short unique id the hub and this plugin parse (a request's id comes back as the
 * correlationId) costs a lookup and an insert in V8's string table; that was 6-7% of the CPU
 * of each process at 64 calls in flight (docs/performance.md#the-hub).
 */
export function nextId(s) {
  return (++s.seq).toString(36).padStart(12, '0');
}

export function pluginName(s) {
  return s.plugin.id || '(unnamed)';
}
