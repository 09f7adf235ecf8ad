// The connection to the hub as the plugin lives it: waiting for it, making a socket the current
// one, and losing it: failing what waits, then reconnecting after a loss (docs/protocol.md,
// "reconnecting"). Opening a socket is dial.js, hello and subscriptions hello.js, writes writes.js.
import { WebSocket } from 'ws';
import { ConnectionLost, errorText, LogoMeshError } from './errors.js';
import { CONTROL_TIMEOUT_MS, RECONNECT_FIRST_DELAY_MS, RECONNECT_MAX_DELAY_MS } from './options.js';
import { MAX_MESSAGE_BYTES } from './protocol.js';
import { deferred, pluginName } from './state.js';
import { decodeBatch, eachFrame } from './batch.js';
import { endpoint, noteRefusal, openHub } from './dial.js';
import { accepted, helloMessage, isRefusal, sayHello, subscribeRest } from './hello.js';

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
