// Inbound messages: every frame from the hub is decoded within the protocol's limits and
// routed to a pending exchange, a method, or the event handlers. Whatever a handler throws
// or returns, its caller gets an answer with a code, and the plugin goes on.
import { errorStack, errorText, isCoded, LogoMeshError } from './errors.js';
import { post } from './writes.js';
import { responseText } from './envelopes.js';
import { decode, decodeBinary, EncodeError, encode, ID_MAX_LENGTH, topicMatches } from './protocol.js';
import { packSegments, unpackSegments } from './segments.js';
import { isThenable, nextId, pluginName } from './state.js';
import { stop } from './shutdown.js';

/** An error message in an answer is cut to this many characters when the whole would not fit. */
const MESSAGE_CUT = 1024;

export function onFrame(s, raw, isBinary) {
  if (isBinary && !s.binary) return s.log('warn', 'binary frame from the hub ignored (binary frames were not agreed in hello)');
  const { msg, refused } = isBinary ? decodeBinary(raw, s.maxBytes) : decode(raw, s.maxBytes);
  if (refused) return refuse(s, refused);
  return onMessage(s, msg);
}

/** A decoded frame (of its own, or of a batch decoded at once: batch.js). */
export function onMessage(s, msg) {
  if (msg === null || typeof msg !== 'object') return;
  switch (msg.type) {
    case 'request':
      return onRequest(s, msg);
    case 'response':
    case 'error':
      return onResponse(s, msg);
    case 'event':
    case 'broadcast':
      return onEvent(s, msg);
    case 'shutdown':
      s.log('info', 'the hub asked to shut down');
      return void stop(s, typeof msg.data?.graceMs === 'number' ? msg.data.graceMs : s.opts.graceMs);
    default:
      return undefined;
  }
}

/**
 * A frame too large, too deep or not JSON: its request is answered with the code, the
 * exchange waiting for it fails with it, anything else is dropped (and logged).
 */
function refuse(s, { code, message, fields }) {
  const id = fields.id;
  if (fields.type === 'request' && typeof id === 'string' && id.length > 0 && id.length <= ID_MAX_LENGTH) {
    s.log('warn', `refused request ${id} from the hub: ${message}`);
    return replyError(s, id, code, message);
  }
  const p = fields.type === 'response' || fields.type === 'error' ? s.pending.get(fields.correlationId) : undefined;
  if (p) {
    s.pending.delete(fields.correlationId);
    s.deadlines.remove(p);
    return p.reject(new LogoMeshError(code, `the answer was refused: ${message}`));
  }
  s.log('warn', `dropped a frame from the hub (type ${fields.type ?? 'unknown'}, ${code}): ${message}`);
}

function onResponse(s, msg) {
  const p = s.pending.get(msg.correlationId);
  if (!p) {
    // An event or broadcast the hub refused (they have no answer otherwise), or a late response.
    if (msg.type === 'error' || msg.success === false) s.log('warn', `the hub refused message ${msg.correlationId ?? '?'}: ${msg.error?.code}: ${msg.error?.message}`);
    return;
  }
  s.pending.delete(msg.correlationId);
  s.deadlines.remove(p);
  if (msg.type === 'response' && msg.success === true) {
    p.onAnswer?.(msg.data);
    p.resolve(unpackSegments(s, msg.data));
  } else {
    p.reject(new LogoMeshError(msg.error?.code ?? 'LM_PLUGIN_ERROR', msg.error?.message ?? 'the call failed without a message', msg.error?.details));
  }
}

function onRequest(s, msg) {
  const id = msg.id;
  // 'connecting' too: the hub may deliver a request right behind its answer to hello.
  if (s.state === 'draining' || s.state === 'closed') {
    return replyError(s, id, 'LM_PLUGIN_UNAVAILABLE', `plugin ${pluginName(s)} is shutting down`);
  }
  const handler = s.methods.get(msg.method);
  if (!handler) {
    return replyError(s, id, 'LM_METHOD_NOT_FOUND', `plugin ${pluginName(s)} does not serve method '${msg.method}'`, {
      method: msg.method,
      methods: [...s.methods.keys()],
    });
  }
  s.inflight++;
  const gen = s.gen;
  let result;
  try {
    result = handler(unpackSegments(s, msg.data), { from: msg.from, method: msg.method, timeout: msg.timeout });
  } catch (err) {
    replyFailure(s, id, msg.method, err, gen);
    return done(s);
  }
  if (isThenable(result)) {
    // A thenable of the plugin's own making may throw from then() itself.
    Promise.resolve()
      .then(() => result)
      .then(
        (value) => replyOk(s, id, msg.method, value, gen),
        (err) => replyFailure(s, id, msg.method, err, gen),
      )
      .catch((err) => s.log('error', `answering a request to '${msg.method}' failed: ${errorText(err)}`))
      .finally(() => done(s));
  } else {
    replyOk(s, id, msg.method, result, gen);
    done(s);
  }
}

function done(s) {
  if (--s.inflight === 0) s.drained?.();
}

function replyOk(s, correlationId, method, value, gen) {
  let text;
  try {
    const [data, segments] = packSegments(value === undefined ? null : value);
    if (segments.length === 0 && !s.binary && typeof correlationId === 'string') {
      // The usual answer: its JSON text written around its data's (envelopes.js).
      text = responseText(nextId(s), correlationId, data, s.maxBytes);
    } else {
      // Built without a conditional spread: this runs for every answer.
      const msg = { type: 'response', id: nextId(s), correlationId, success: true, data };
      if (segments.length) msg.segments = segments;
      text = encode(msg, s.maxBytes, s.binary);
    }
  } catch (err) {
    const tooLarge = err instanceof EncodeError && err.tooLarge;
    const reason = err instanceof EncodeError ? err.reason : 'cannot be encoded';
    return replyError(s, correlationId, tooLarge ? 'LM_MESSAGE_TOO_LARGE' : 'LM_PLUGIN_ERROR', `the result of method '${method}' ${reason}`, undefined, gen);
  }
  post(s, text, gen);
}

function replyFailure(s, correlationId, method, err, gen) {
  let code, message, details;
  try {
    if (isCoded(err)) {
      [code, message, details] = [err.code, String(err.message ?? err.code), err.details];
    } else {
      s.log('error', `method '${method}' failed: ${errorStack(err)}`);
      [code, message, details] = ['LM_PLUGIN_ERROR', errorText(err), err instanceof Error ? { type: String(err.name) } : undefined];
    }
  } catch {
    // What was thrown fights being read (a getter or a proxy that throws).
    [code, message, details] = ['LM_PLUGIN_ERROR', `method '${method}' failed with a value that cannot be read`, undefined];
  }
  replyError(s, correlationId, code, message, details, gen);
}

/**
 * A failed response. Details that cannot be sent are left out, and a message too long for
 * the maximum message size is cut, so that the caller always gets its code.
 */
function replyError(s, correlationId, code, message, details, gen = s.gen) {
  const error = { code, message };
  if (details !== undefined) error.details = details;
  const msg = { type: 'response', id: nextId(s), correlationId, success: false, error };
  let text;
  try {
    text = encode(msg, s.maxBytes, s.binary);
  } catch {
    delete error.details;
    try {
      text = encode(msg, s.maxBytes, s.binary);
    } catch {
      error.code = typeof code === 'string' && code.length <= 64 ? code : 'LM_PLUGIN_ERROR';
      error.message = String(message).slice(0, MESSAGE_CUT);
      try {
        text = encode(msg, s.maxBytes, s.binary);
      } catch (err) {
        // Only a hub announcing an absurdly small maximum gets here: nothing can be sent.
        return s.log('warn', `the answer to request ${correlationId} cannot be sent: it ${err.reason ?? errorText(err)}`);
      }
    }
  }
  post(s, text, gen);
}

/**
 * Events and broadcasts go to every handler whose pattern matches, with the hub's own
 * sender and topic in meta (the hub sets `from` on all it relays; a `from` in data is
 * whatever the sender wrote).
 */
function onEvent(s, msg) {
  const topic = typeof msg.topic === 'string' ? msg.topic : undefined;
  const meta = { type: msg.type, topic, from: msg.from, timestamp: msg.timestamp };
  for (const [pattern, sub] of s.subs) {
    if (topic === undefined ? pattern !== '*' : !topicMatches(pattern, topic)) continue;
    for (const handler of sub.handlers) {
      try {
        const r = handler(unpackSegments(s, msg.data), meta);
        if (isThenable(r)) Promise.resolve().then(() => r).then(undefined, (err) => handlerFailed(s, pattern, err));
      } catch (err) {
        handlerFailed(s, pattern, err);
      }
    }
  }
}

function handlerFailed(s, pattern, err) {
  s.log('error', `handler for '${pattern}' failed: ${errorStack(err)}`);
}
