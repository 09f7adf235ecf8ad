// Writing to the hub: a message encoded within the hub's limits, exchanges that wait for
// their answer (Waiter, timed by deadlines.js), writes that wait for the socket, answers
// posted without waiting, and the corking that sends one turn's frames in one system call.
import { WebSocket } from 'ws';
import { LogoMeshError } from './errors.js';
import { EncodeError, encode } from './protocol.js';
import { flushFrames, queueFrame } from './batch.js';

/** A message ready to write; LM_INVALID_ARGUMENT (or LM_MESSAGE_TOO_LARGE) when it cannot be. */
function frame(s, msg) {
  try {
    return encode(msg, s.maxBytes, s.binary);
  } catch (err) {
    throw unsendable(msg.type, err);
  }
}

/** What a caller gets for a message of `type` that could not be encoded (an EncodeError; anything else as it is). */
export function unsendable(type, err) {
  if (!(err instanceof EncodeError)) return err;
  return new LogoMeshError(err.tooLarge ? 'LM_MESSAGE_TOO_LARGE' : 'LM_INVALID_ARGUMENT', `the data of ${type} ${err.reason}`);
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
  let text;
  try {
    text = frame(s, msg);
  } catch (err) {
    return Promise.reject(err);
  }
  return exchangeText(s, msg.id, text, waitMs, timeoutText, onAnswer);
}

/** exchange() of a message already encoded (`text`, whose id is `id`: envelopes.js). */
export function exchangeText(s, id, text, waitMs, timeoutText, onAnswer) {
  return new Promise((resolve, reject) => {
    const ws = s.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return reject(new LogoMeshError('LM_CONTROLLER_UNAVAILABLE', 'the connection to the hub is closed'));
    // onAnswer: called with a successful answer's data as the frame is read, before the next one.
    const w = new Waiter(id, resolve, reject, onAnswer, timeoutText);
    s.pending.set(id, w);
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
