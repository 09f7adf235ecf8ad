// The hub protocol's constants and its codec: JSON frames in and out, within the depth and
// size limits (docs/protocol.md). The constants mirror images/protocol/protocol.json of
// LogoMesh; the SDK's tests check that they match it. Binary (msgpack) frames once the hub
// agreed to them in its answer to hello (the msgpack codec loads on first use: codecs.js).
import { msgpack } from './codecs.js';

export const SDK_VERSION = '0.1.0';
export const PROTOCOL_VERSION = 1;
/** The message types a client sends, and those the hub sends. */
export const TO_HUB = Object.freeze(['hello', 'request', 'response', 'event', 'broadcast', 'subscribe', 'unsubscribe', 'segment']);
export const FROM_HUB = Object.freeze(['request', 'response', 'event', 'broadcast', 'shutdown', 'error']);
/** Arrays and objects nest at most this deep in a frame, the frame object itself being level 1. */
export const MAX_DEPTH = 64;
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
/**
 * The largest maximum message size an operator may configure: the SDK's limit until the hub
 * announces its own in the answer to hello. A frame over it is not even read (1009).
 */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** The hub does not read a frame over this many times its maximum. */
export const HARD_LIMIT_FACTOR = 16;
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;
export const MAX_CALL_TIMEOUT_MS = 300_000;
export const ID_MAX_LENGTH = 128;
/** The error codes that travel on the wire, and who sends them. */
export const ERROR_CODES = Object.freeze({
  LM_PROTOCOL: 'hub, sdk',
  LM_MESSAGE_TOO_LARGE: 'hub, sdk',
  LM_PERMISSION_DENIED: 'hub',
  LM_RATE_LIMITED: 'hub',
  LM_TIMEOUT: 'hub, sdk',
  LM_PLUGIN_UNAVAILABLE: 'hub, sdk',
  LM_PLUGIN_EXITED: 'hub',
  LM_PLUGIN_ERROR: 'hub, sdk',
  LM_METHOD_NOT_FOUND: 'hub, sdk',
  LM_INVALID_ARGUMENT: 'sdk',
  LM_CONTROLLER_UNAVAILABLE: 'sdk',
  LM_SEGMENT: 'hub, sdk',
  LM_MEMORY_QUOTA: 'hub',
  LM_SCHEMA: 'hub',
});

export const METHOD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
export const PLUGIN_ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const TOPIC = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
export const PATTERN = /^(?:\*|[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?)$/;

/** Does a subscription pattern (`a.b`, `a.*`, `*`) match a topic? The hub's rule. */
export function topicMatches(pattern, topic) {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return topic.startsWith(pattern.slice(0, -1));
  return pattern === topic;
}

/** How deep arrays and objects nest in a JSON text (strings skipped). */
export function depth(text) {
  return scanJson(text).depth;
}

/**
 * How deep arrays and objects nest in text[from, to) (strings skipped), and whether that span
 * is `whole`: one object, JSON whitespace aside, its strings closed. Frames that all are can
 * be joined with commas into one array and parsed at once (batch.js decodeBatch), each read
 * as it would be alone.
 */
export function scanJson(text, from = 0, to = text.length) {
  let level = 0;
  let max = 0;
  let inString = false;
  // Where the outermost value opened, and where the nesting first came back to 0.
  let opened = -1;
  let closed = -1;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // A string is skipped in one step to its closing quote (most of a frame's characters
      // are in its strings; this scan is a third of a frame's decoding): still open at `to`,
      // the span ends inside it.
      const end = closingQuote(text, i, to);
      if (end < 0) {
        inString = true;
        break;
      }
      i = end;
    } else if (c === 91 || c === 123) {
      if (opened < 0) opened = i;
      if (++level > max) max = level;
    } else if (c === 93 || c === 125) {
      if (--level === 0 && closed < 0) closed = i;
    }
  }
  const whole = !inString && opened >= 0 && text.charCodeAt(opened) === 123 && closed >= 0 && blank(text, from, opened) && blank(text, closed + 1, to);
  return { depth: max, whole };
}

/**
 * Where the string opened by the quote at `open` closes, before `to`; -1 when it does not. A
 * quote closes it unless escaped: preceded by an odd run of backslashes (the run cannot pass
 * the opening quote).
 */
function closingQuote(text, open, to) {
  for (let q = text.indexOf('"', open + 1); q !== -1 && q < to; q = text.indexOf('"', q + 1)) {
    let k = q - 1;
    while (text.charCodeAt(k) === 92) k--;
    if ((q - 1 - k) % 2 === 0) return q;
  }
  return -1;
}

/** Only JSON whitespace (space, tab, CR, LF) in text[from, to)? */
function blank(text, from, to) {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13 && c !== 10) return false;
  }
  return true;
}

const WANTED = new Set(['type', 'id', 'correlationId']);

/**
 * The string values of `type`, `id` and `correlationId` at the top level of a frame that
 * could not be used (too large, too deep, not JSON), so a refused request can be answered.
 * Read by scanning, not parsing: parsing a frame of nested brackets would cost far more
 * memory than its size.
 */
export function topFields(text) {
  const fields = {};
  let level = 0;
  // At level 1: 0 nothing, 1 a key may come, 2 a ':' may come, 3 a value may come.
  let state = 0;
  let key;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      const start = i;
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
      if (level !== 1) continue;
      let value;
      try {
        value = JSON.parse(text.slice(start, i + 1));
      } catch {
        value = undefined;
      }
      if (state === 1) {
        key = WANTED.has(value) ? value : undefined;
        state = 2;
      } else if (state === 3) {
        if (key !== undefined && !(key in fields) && typeof value === 'string') fields[key] = value;
        state = 0;
      }
    } else if (c === 91 || c === 123) {
      level++;
      if (level === 1 && c === 123) state = 1;
      else if (level === 2) state = 0;
    } else if (c === 93 || c === 125) level--;
    else if (level === 1 && c === 58) state = state === 2 ? 3 : 0;
    else if (level === 1 && c === 44) state = 1;
  }
  return fields;
}

/**
 * One frame from the hub: `{ msg }`, or `{ refused: { code, message, fields } }` when it is
 * larger than maxBytes, nested deeper than MAX_DEPTH, or not JSON.
 */
/** A binary (msgpack) frame: the same limits as a text one; the decoder is iterative, and the depth is checked before anything walks the value. */
export function decodeBinary(raw, maxBytes) {
  if (raw.length > maxBytes) return refuse('LM_MESSAGE_TOO_LARGE', `a message of ${raw.length} bytes exceeds the maximum message size of ${maxBytes} bytes`, '');
  let msg;
  try {
    msg = msgpack().decode(raw);
  } catch (err) {
    return refuse('LM_PROTOCOL', `a binary frame that is not msgpack: ${err instanceof Error ? err.message : String(err)}`, '');
  }
  const stack = [[msg, 1]];
  while (stack.length) {
    const [v, d] = stack.pop();
    if (v === null || typeof v !== 'object') continue;
    if (d > MAX_DEPTH) return refuse('LM_PROTOCOL', `a message nested more than ${MAX_DEPTH} levels deep`, '');
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, d + 1]);
  }
  return { msg };
}

/** Does the message hold a whole number past 2^53 (or a BigInt)? Iterative; cycles and depth are the encoders' to refuse. */
export function holdsUnsafeInteger(msg) {
  const stack = [msg];
  let seen = 0;
  while (stack.length) {
    const v = stack.pop();
    if (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v))) return true;
    if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) continue;
    if (++seen > 1_000_000) return false; // a cycle or a huge value: the encoder refuses or sends it
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push(x);
  }
  return false;
}

function encodeBinary(msg, maxBytes) {
  let bytes;
  try {
    bytes = msgpack().encode(msg, { maxDepth: MAX_DEPTH, ignoreUndefined: true });
  } catch (err) {
    throw new EncodeError(`cannot be sent as msgpack: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (bytes.length > maxBytes) throw new EncodeError(`is ${bytes.length} bytes, over the maximum message size of ${maxBytes} bytes`, true);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function decode(raw, maxBytes) {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > maxBytes) {
    return refuse('LM_MESSAGE_TOO_LARGE', `a message of ${size} bytes exceeds the maximum message size of ${maxBytes} bytes`, text);
  }
  const levels = depth(text);
  if (levels > MAX_DEPTH) return refuse('LM_PROTOCOL', `a message nested ${levels} levels deep exceeds the maximum depth of ${MAX_DEPTH}`, text);
  try {
    return { msg: JSON.parse(text) };
  } catch (err) {
    return refuse('LM_PROTOCOL', `a message that is not JSON: ${err instanceof Error ? err.message : String(err)}`, text);
  }
}

function refuse(code, message, text) {
  return { refused: { code, message, fields: topFields(text) } };
}

/** A message that cannot be sent: not JSON (a cycle, a BigInt), too deep, or too large. */
export class EncodeError extends Error {
  constructor(reason, tooLarge = false) {
    super(reason);
    this.reason = reason;
    this.tooLarge = tooLarge;
  }
}

/**
 * A message as one frame: JSON text, or msgpack bytes once the hub agreed to binary frames
 * (`binary`); throws EncodeError when it cannot be sent.
 */
export function encode(msg, maxBytes, binary = false) {
  // A whole number past 2^53 goes as text: the hub refuses it in a binary frame (a JSON peer could not receive it exactly).
  if (binary && !holdsUnsafeInteger(msg)) return encodeBinary(msg, maxBytes);
  return checkedText(jsonText(msg), maxBytes);
}

/** JSON.stringify, its failures as EncodeError (undefined for a value JSON leaves out: a function, undefined). */
export function jsonText(value) {
  try {
    return JSON.stringify(value);
  } catch (err) {
    // RangeError: nested too deep for the stack; TypeError: a cycle or a BigInt.
    if (err instanceof RangeError) throw new EncodeError(`is nested deeper than ${MAX_DEPTH} levels`);
    throw new EncodeError(`is not JSON-serializable: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A frame's JSON text within the depth and size limits; throws EncodeError when it is not. */
export function checkedText(text, maxBytes) {
  // Each level of nesting takes two characters (its brackets): a text of at most 2 * MAX_DEPTH
  // characters cannot be deeper than MAX_DEPTH, and a call's frame usually is one (its scan was
  // about a tenth of the caller's CPU a call; docs/performance.md#the-hub).
  const levels = text.length <= 2 * MAX_DEPTH ? 0 : depth(text);
  if (levels > MAX_DEPTH) throw new EncodeError(`is nested ${levels} levels deep, over the maximum depth of ${MAX_DEPTH}`);
  // A string's UTF-8 bytes are at most 3x its length: counted only when that could pass the limit.
  const size = text.length * 3 <= maxBytes ? text.length : Buffer.byteLength(text);
  if (size > maxBytes) throw new EncodeError(`is ${size} bytes, over the maximum message size of ${maxBytes} bytes`, true);
  return text;
}
