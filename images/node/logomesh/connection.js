// The connection to the hub: connecting, hello, exchanges that wait for an answer, writes,
// subscriptions, and reconnecting after a loss (docs/protocol.md, "reconnecting").
import { WebSocket } from 'ws';
import { ConnectionLost, errorText, isCoded, LogoMeshError } from './errors.js';
import { CONTROL_TIMEOUT_MS, noop, RECONNECT_FIRST_DELAY_MS, RECONNECT_MAX_DELAY_MS, RETRYABLE } from './options.js';
import { EncodeError, encode, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, SDK_VERSION } from './protocol.js';
import { deferred, nextId, pluginName } from './state.js';
import { isHubUrl, tcpConnectOptions } from './hub-auth.js';
import { decodeBatch, eachFrame, flushFrames, MAX_BATCH_FRAMES, queueFrame } from './batch.js';

/** Where the hub is: a hub across nodes (LOGOMESH_HUB_URL), or the plugin's own Unix socket. */
function endpoint(s) {
  return s.opts.hubUrl ?? s.opts.socketPath;
}

/**
 * One connection attempt. Across nodes, each attempt reads the key afresh and signs a new
 * nonce; the Unix socket needs nothing (its owner is the proof).
 */
function openHub(s, handshakeTimeout) {
  if (!s.opts.hubUrl) return openSocket(`ws+unix://${s.opts.socketPath}:/v1`, handshakeTimeout, { headers: { Host: 'logomesh' } });
  if (!s.plugin.id) return Promise.reject(new LogoMeshError('LM_UNAUTHORIZED', 'LOGOMESH_HUB_URL is set but the plugin has no id (LOGOMESH_PLUGIN_ID) to prove'));
  return openSocket(s.opts.hubUrl, handshakeTimeout, tcpConnectOptions(s.plugin.id));
}

/** TCP failures a hub across nodes may give while it starts or moves (its Pod rescheduled), and its refusals worth another try. */
const TCP_RETRYABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);
const REFUSALS_TO_RETRY = new Set([401, 429, 503]);

/** Say once on stderr why the hub refused the connection: its code, never the key or the header. */
function noteRefusal(s, err) {
  const why = `${err.refusal ?? 'HTTP'} (${err.status})`;
  if (s.lastRefusal !== why) s.log('warn', `plugin ${pluginName(s)}: the hub refused the connection: ${why}; trying again`);
  s.lastRefusal = why;
  return why;
}

export function isOpen(s) {
  return (s.state === 'ready' || s.state === 'draining') && s.ws !== null && s.ws.readyState === WebSocket.OPEN;
}

/** Wait for the connection: the first one, or (for a call, within waitMs) a reconnect. */
export async function connected(s, what, waitMs) {
  if (s.state === 'connecting') await s.ready.promise;
  if (s.state === 'reconnecting') {
    if (waitMs === undefined) throw new LogoMeshError('LM_PLUGIN_UNAVAILABLE', `${what}(): hub connection lost; reconnecting`);
    const deadline = Date.now() + waitMs;
    while (s.state === 'reconnecting') {
      const left = deadline - Date.now();
      if (left <= 0) throw new LogoMeshError('LM_PLUGIN_UNAVAILABLE', `${what}(): hub connection lost, and not back within the call's timeout (${waitMs} ms)`);
      let timer;
      // Rejects when run() ends instead of reconnecting.
      await Promise.race([s.online.promise, new Promise((r) => (timer = setTimeout(r, left)))]).finally(() => clearTimeout(timer));
    }
  }
  if (!isOpen(s)) {
    throw new LogoMeshError(
      s.state === 'idle' ? 'LM_PROTOCOL' : 'LM_CONTROLLER_UNAVAILABLE',
      s.state === 'idle' ? `${what}() before run(): the plugin is not connected to the hub yet` : `${what}(): the connection to the hub is closed`,
    );
  }
}

/**
 * The first connection: a socket that is not there yet is retried for connectTimeoutMs. A hub
 * across nodes is waited for as long as a reconnection (it may be moving), and its 401 (it
 * does not know the plugin yet, or the key was rotated) is retried with backoff, never in a
 * tight loop.
 */
export async function connect(s) {
  const tcp = s.opts.hubUrl !== undefined;
  const deadline = Date.now() + (tcp ? Math.max(s.opts.connectTimeoutMs, s.reconnectMs ?? s.opts.reconnectMs) : s.opts.connectTimeoutMs);
  let delay = 20;
  for (;;) {
    try {
      return await openHub(s);
    } catch (err) {
      if (s.stopping) throw new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'stopped while connecting to the hub');
      if (err instanceof LogoMeshError) throw err; // no key to connect with
      const refused = tcp && REFUSALS_TO_RETRY.has(err?.status);
      if (refused) noteRefusal(s, err);
      const retry = RETRYABLE.has(err?.code) || (tcp && (TCP_RETRYABLE.has(err?.code) || refused));
      if (retry && Date.now() + delay < deadline) {
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, tcp ? RECONNECT_MAX_DELAY_MS : 500);
        continue;
      }
      const unset = tcp || process.env.LOGOMESH_HUB_SOCKET ? '' : ' (LOGOMESH_HUB_SOCKET is not set: is this plugin running under LogoMesh?)';
      throw new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `cannot connect to the hub at ${endpoint(s)}: ${errorText(err)}${unset}`, {
        socket: endpoint(s),
        ...(err?.status ? { status: err.status, refusal: err.refusal } : {}),
      });
    }
  }
}

/** Make ws the current connection. Until the hub announces its limit, the largest one holds. */
export function attach(s, ws) {
  s.ws = ws;
  s.binary = false; // a new connection starts in JSON until its hello is answered
  s.maxBytes = MAX_MESSAGE_BYTES;
  s.batch = 0; // and one frame per message until then
  const guarded = (handle, arg, isBinary) => {
    try {
      handle(arg, isBinary);
    } catch (err) {
      // Never out of the socket's event: that would end the process.
      try {
        s.log('error', `a frame from the hub could not be handled: ${errorText(err)}`);
      } catch {
        // a log function that throws: nothing more to do
      }
    }
  };
  const onFrame = (raw, isBinary) => guarded(s.onFrame, raw, isBinary);
  ws.on('message', (raw, isBinary) => {
    if (!(s.batch > 0 && !isBinary && ws === s.ws)) return onFrame(raw, isBinary);
    // A batch whose every frame is a sound object is parsed at once (batch.js); else frame by frame.
    const msgs = decodeBatch(raw, s.maxBytes);
    if (msgs) for (const msg of msgs) guarded(s.onMessage, msg);
    else eachFrame(raw, (f) => onFrame(f, false));
  });
  ws.on('error', (err) => s.log('warn', `hub connection error: ${err.message}`));
  ws.on('close', (code, reason) => onClose(s, ws, code, reason.toString()));
}

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

function isRefusal(err) {
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

export function failPending(s, err) {
  for (const [id, p] of s.pending) {
    s.pending.delete(id);
    s.deadlines.remove(p);
    p.reject(err);
  }
}

function onClose(s, ws, code, reason) {
  if (ws !== s.ws) return; // a connection already given up
  if (s.state === 'reconnecting') {
    // A reconnect attempt's connection: the loop tries again.
    s.ws = null;
    return failPending(s, new ConnectionLost(code, reason));
  }
  if (s.state === 'ready' && s.reconnectMs > 0) {
    // Lost, not closed by a shutdown: keep running and connect again.
    s.ws = null;
    s.state = 'reconnecting';
    s.gen++;
    s.online = deferred();
    failPending(s, new ConnectionLost(code, reason));
    s.log('warn', `plugin ${pluginName(s)}: hub connection lost (code ${code}${reason ? `: ${reason}` : ''}); reconnecting for up to ${s.reconnectMs} ms`);
    reconnect(s, code).catch((err) => fail(s, err));
    return;
  }
  const expected = s.state === 'draining' || s.state === 'closed';
  s.state = 'closed';
  const err = new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `the hub closed the connection (status ${code}${reason ? `: ${reason}` : ''})`, { status: code });
  failPending(s, err);
  for (const sub of s.subs.values()) sub.confirmed.reject(err);
  if (expected) s.closed.resolve();
  else s.closed.reject(err);
  s.drained?.();
}

/**
 * Connect again with backoff for up to reconnectMs, say hello with the same methods and every
 * pattern as its subscriptions. Resolves once serving again (or stopped meanwhile);
 * rejects when the window passes (LM_CONTROLLER_UNAVAILABLE) or the hub refuses hello.
 */
async function reconnect(s, code) {
  const lostAt = Date.now();
  const deadline = lostAt + s.reconnectMs;
  let delay = RECONNECT_FIRST_DELAY_MS;
  let attempts = 0;
  let last = 'no attempt';
  for (;;) {
    let timer;
    await Promise.race([s.wake.promise, new Promise((r) => (timer = setTimeout(r, Math.max(0, Math.min(delay, deadline - Date.now())))))]);
    clearTimeout(timer);
    if (s.state !== 'reconnecting') return; // shut down meanwhile
    delay = Math.min(delay * 2, RECONNECT_MAX_DELAY_MS);
    attempts++;
    let ws = null;
    try {
      ws = await openHub(s, Math.max(1_000, deadline - Date.now()));
      if (s.state !== 'reconnecting') return void ws.terminate();
      attach(s, ws);
      const msg = helloMessage(s);
      const hello = await sayHello(s, msg, Math.min(CONTROL_TIMEOUT_MS, Math.max(1_000, deadline - Date.now())));
      if (s.state !== 'reconnecting') return void ws.close(1000);
      if (s.ws !== ws || ws.readyState !== WebSocket.OPEN) throw new ConnectionLost(1006, 'closed right after hello');
      accepted(s, hello);
      s.state = 'ready';
      subscribeRest(s, msg.subscriptions);
      s.log('warn', `plugin ${pluginName(s)}: reconnected to the hub after ${Date.now() - lostAt} ms`);
      const online = s.online;
      s.online = null;
      online.resolve();
      return;
    } catch (err) {
      // A refused hello (an answer from the hub) ends the plugin; anything else is retried.
      const refused = isRefusal(err);
      if (ws && ws === s.ws) {
        s.ws = null;
        ws.terminate();
      }
      if (refused) throw err;
      last = err?.status ? noteRefusal(s, err) : errorText(err);
    }
    if (Date.now() >= deadline) {
      throw new LogoMeshError(
        'LM_CONTROLLER_UNAVAILABLE',
        `the hub connection was lost and not re-made within ${s.reconnectMs} ms (${attempts} attempt(s) at ${endpoint(s)}; last: ${last})`,
        { socket: endpoint(s), reconnectMs: s.reconnectMs, status: code },
      );
    }
  }
}

/** Reconnecting failed: run() rejects, and calls waiting for the connection too. */
function fail(s, err) {
  if (s.state !== 'reconnecting') return;
  s.state = 'closed';
  s.online?.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `the plugin is no longer connected to the hub: ${err.message}`));
  s.online = null;
  for (const sub of s.subs.values()) sub.confirmed.reject(err);
  s.closed.reject(err);
}

/** A message ready to write; LM_INVALID_ARGUMENT (or LM_MESSAGE_TOO_LARGE) when it cannot be. */
function frame(s, msg) {
  try {
    return encode(msg, s.maxBytes, s.binary);
  } catch (err) {
    if (!(err instanceof EncodeError)) throw err;
    throw new LogoMeshError(err.tooLarge ? 'LM_MESSAGE_TOO_LARGE' : 'LM_INVALID_ARGUMENT', `the data of ${msg.type} ${err.reason}`);
  }
}

/** An exchange waiting for its answer; a node of the deadline lists too (deadlines.js). */
class Waiter {
  constructor(id, resolve, reject, onAnswer, timeoutText) {
    this.id = id;
    this.resolve = resolve;
    this.reject = reject;
    this.onAnswer = onAnswer;
    this.timeoutText = timeoutText;
    this.deadline = 0;
    this.prevTimed = undefined;
    this.nextTimed = undefined;
    this.timedList = undefined;
  }
}

/** Send a message that gets a response; resolve with its data, reject with its error (after waitMs; 0: no timeout). */
export function exchange(s, msg, waitMs, timeoutText, onAnswer) {
  return new Promise((resolve, reject) => {
    const text = frame(s, msg);
    const ws = s.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the connection to the hub is closed'));
    // onAnswer: called with a successful answer's data as the frame is read, before the next one.
    const w = new Waiter(msg.id, resolve, reject, onAnswer, timeoutText);
    s.pending.set(msg.id, w);
    if (waitMs > 0) s.deadlines.add(w, waitMs);
    // A write error closes the socket, and closing rejects every pending exchange.
    send(s, ws, text);
  });
}

/** Serialize and write one message; resolves once it is handed to the socket. */
export function write(s, msg) {
  let text;
  try {
    text = frame(s, msg);
  } catch (err) {
    return Promise.reject(err);
  }
  const ws = s.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the connection to the hub is closed'));
  return new Promise((resolve, reject) => {
    send(s, ws, text, (err) => (err ? reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', `sending to the hub failed: ${err.message}`)) : resolve()));
  });
}

/**
 * Write without waiting (responses): a closed socket just drops it, and so does a newer
 * connection than the one the request came in on (gen): that hub is gone.
 */
export function post(s, text, gen = s.gen) {
  const ws = s.ws;
  if (ws && ws.readyState === WebSocket.OPEN && gen === s.gen) send(s, ws, text);
}

/**
 * Frames written in one turn of the event loop leave in one system call: the socket is
 * corked at the first write and uncorked once the code running now (and the promise
 * callbacks it queued) is done. A plugin answering many calls at once otherwise pays a
 * `writev` per frame, which dominated its CPU time (docs/benchmarks.md).
 */
function send(s, ws, text, cb) {
  // JSON text with no one waiting for its write joins this turn's batch; anything else leaves after it.
  if (s.batch > 0 && cb === undefined && typeof text === 'string') return queueFrame(ws, text, s.batch, s.maxBytes);
  if (s.batch > 0) flushFrames(ws);
  // ws keeps the socket it connected on as _socket; it offers no public way to reach it.
  const socket = ws._socket;
  if (socket && !corked.has(socket) && !socket.destroyed) {
    corked.add(socket);
    socket.cork();
    process.nextTick(uncork, socket);
  }
  ws.send(text, cb);
}

const corked = new WeakSet();

function uncork(socket) {
  corked.delete(socket);
  if (!socket.destroyed) socket.uncork();
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

function openSocket(url, handshakeTimeout, extra) {
  return new Promise((resolve, reject) => {
    // permessage-deflate costs latency on small messages; the hub does not use it. A frame
    // over the largest configurable message size is not read: the connection closes (1009).
    // No agent: ws never goes through HTTP_PROXY or HTTPS_PROXY (they name the plugin's
    // egress proxy, not a way to its hub), and none is given here.
    // The mask of every frame left all zeros (generateMask): ws then writes a text frame
    // without copying it into a Buffer and XOR-ing it. Masking protects HTTP proxies from
    // frames a browser script chose; a plugin's own socket or the hub's port has none.
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES, generateMask: noop, ...extra, ...(handshakeTimeout ? { handshakeTimeout } : {}) });
    const failed = (err) => {
      ws.removeAllListeners();
      ws.on('error', noop);
      reject(err);
    };
    ws.once('open', () => {
      ws.removeAllListeners();
      resolve(ws);
    });
    ws.once('error', failed);
    ws.once('unexpected-response', (req, res) => {
      // The hub's refusal names its code in a small JSON body: read it (bounded), then give up the request.
      let body = '';
      let over = false;
      const done = () => {
        if (over) return;
        over = true;
        req.destroy();
        let refusal;
        try {
          refusal = JSON.parse(body).code;
        } catch {
          refusal = undefined;
        }
        const err = new Error(`the hub answered the WebSocket upgrade with HTTP ${res.statusCode}${typeof refusal === 'string' ? ` (${refusal})` : ''}`);
        err.status = res.statusCode;
        if (typeof refusal === 'string') err.refusal = refusal;
        failed(err);
      };
      res.on('data', (c) => {
        body += c;
        if (body.length > 4096) res.destroy();
      });
      res.once('end', done);
      res.once('close', done);
      res.once('error', done);
    });
  });
}
