// Stopping: the hub's shutdown, shutdown(), SIGTERM and SIGINT all end the same way: new
// requests are refused, those in flight answer within the grace period, onShutdown hooks
// run, the connection closes with status 1000.
import { flushFrames } from './batch.js';
import { WebSocket } from 'ws';
import { errorStack, LogoMeshError } from './errors.js';
import { CLOSE_WAIT_MS, noop } from './options.js';

/** The one shutdown path: shutdown message, SIGTERM/SIGINT or shutdown(). */
export function stop(s, graceMs) {
  s.stopping ??= drain(s, graceMs);
  return s.stopping;
}

/** A SIGTERM/SIGINT handler: the first signal stops, a second stops waiting for requests. */
export function signalHandler(s) {
  return (signal) => {
    if (s.stopping) {
      s.log('info', `${signal} again: closing without waiting for in-flight requests`);
      s.force.resolve();
    } else {
      s.log('info', `${signal}: shutting down`);
    }
    void stop(s, s.opts.graceMs);
  };
}

async function drain(s, graceMs) {
  s.wake.resolve();
  if (s.state === 'reconnecting') {
    // No connection to answer on: stop now (onShutdown hooks still run, within graceMs).
    s.state = 'closed';
    s.online?.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the plugin stopped while reconnecting to the hub'));
    s.online = null;
    const ws = s.ws;
    s.ws = null;
    ws?.terminate();
    await runHooks(s, Date.now() + Math.max(0, graceMs));
    s.closed.resolve();
    return;
  }
  if (s.state === 'idle' || s.state === 'closed') {
    s.state = 'closed';
    s.closed.resolve();
    return;
  }
  if (s.state === 'connecting') {
    // run() notices s.stopping once connected (or failing to) and closes.
    s.state = 'draining';
    s.ready.reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'shut down before the hub accepted hello'));
    if (!s.ws) s.closed.resolve();
    else s.ws.close(1000);
    return;
  }
  s.state = 'draining';
  const deadline = Date.now() + Math.max(0, graceMs);
  if (s.inflight > 0) {
    await within(s, deadline, new Promise((r) => (s.drained = r)));
    if (s.inflight > 0) s.log('warn', `${s.inflight} request(s) still running after the grace period; closing anyway`);
  }
  await runHooks(s, deadline);
  const ws = s.ws;
  if (ws && ws.readyState !== WebSocket.CLOSED) {
    // The last answers may still wait for the end of this turn's batch: they go before the close.
    flushFrames(ws);
    ws.close(1000, 'shutdown');
    const timer = setTimeout(() => ws.terminate(), CLOSE_WAIT_MS);
    await s.closed.promise.catch(noop);
    clearTimeout(timer);
  } else {
    s.state = 'closed';
    s.closed.resolve();
  }
}

/** Settles with promise, or when the deadline passes or a second signal forces it. */
function within(s, deadline, promise) {
  const left = deadline - Date.now();
  if (left <= 0) return Promise.resolve();
  let timer;
  return Promise.race([promise, s.force.promise, new Promise((r) => (timer = setTimeout(r, left)))]).finally(() => clearTimeout(timer));
}

async function runHooks(s, deadline) {
  for (const hook of s.shutdownHooks) {
    try {
      await within(s, deadline, Promise.resolve().then(hook));
    } catch (err) {
      s.log('error', `shutdown hook failed: ${errorStack(err)}`);
    }
  }
}
