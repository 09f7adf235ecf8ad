import type { ErrorCode } from '../errors.js';

/**
 * Frames in and out of the hub, bounded in depth and size. `JSON.parse` copes with any
 * nesting, but everything that walks the value afterwards (`JSON.stringify` above all)
 * recurses, and a 10 KB frame nested a few thousand levels deep overflows the stack. So
 * depth is measured on the bytes before parsing (frame-scan.ts), and nothing deeper than
 * `maxDepth` is ever turned into a value.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The string values of a few top-level keys of a JSON object, found without parsing it: what
 * the hub needs to answer a frame it will not parse (one over the size limit). Returns what
 * it finds among `keys`; values that are not plain strings of 1-128 printable characters
 * are left out.
 */
export function topLevelStrings(buf: Buffer, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const text = buf.toString('latin1');
  let depth = 0;
  let expectKey = false;
  let lastKey: string | undefined;
  let i = 0;
  while (i < text.length && Object.keys(out).length < keys.length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (depth === 1) {
        const raw = text.slice(i + 1, end);
        if (expectKey) lastKey = raw;
        else if (lastKey !== undefined && keys.includes(lastKey) && /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,128}$/.test(raw)) out[lastKey] = raw;
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
      if (depth === 1 && c === OPEN_BRACE) expectKey = true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
    else if (depth === 1 && c === 0x2c /* , */) {
      expectKey = true;
      lastKey = undefined;
    }
    i++;
  }
  return out;
}

function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i;
    else i++;
  }
  return text.length;
}

/** Objects a value may hold to be walked without a set of those seen (smallDepth). */
const SMALL_WALK = 64;
/** The objects of the small walk under way, kept in one preallocated array and cleared after it (nothing is retained). */
const walked: object[] = new Array<object>(SMALL_WALK);
let walkedCount = 0;
let walking = false;

/**
 * The depth of a value made in this process (host methods, the in-process host client). A
 * small value (at most SMALL_WALK objects, within the limit) is walked recursively, the
 * objects seen kept in a preallocated array: the full walk's stack of pairs and set of seen
 * objects were a part of what every host call gave the controller's scavenges
 * (docs/performance.md#the-hub). Anything else (more objects, deeper than the limit, an
 * object met twice, as a cycle's is) takes the full walk, whose result it is either way.
 */
export function valueDepth(value: unknown, limit: number): number {
  if (value === null || typeof value !== 'object') return 0;
  // A getter of the value that sends data itself would walk within this walk: it takes the full one.
  if (walking) return fullDepth(value, limit);
  walking = true;
  walkedCount = 0;
  let small = -1;
  try {
    small = smallDepth(value, 1, limit);
  } finally {
    for (let i = 0; i < walkedCount; i++) walked[i] = undefined as unknown as object;
    walking = false;
  }
  return small > 0 ? small : fullDepth(value, limit);
}

/** The depth of `v` at depth `d`, or -1: past the limit or SMALL_WALK, or `v` seen before. */
function smallDepth(v: object, d: number, limit: number): number {
  if (d > limit || walkedCount === SMALL_WALK) return -1;
  for (let i = 0; i < walkedCount; i++) if (walked[i] === v) return -1;
  walked[walkedCount++] = v;
  let max = d;
  if (Array.isArray(v)) {
    for (const x of v as unknown[]) {
      if (x === null || typeof x !== 'object') continue;
      const s = smallDepth(x, d + 1, limit);
      if (s < 0) return -1;
      if (s > max) max = s;
    }
    return max;
  }
  for (const k in v) {
    if (!Object.prototype.hasOwnProperty.call(v, k)) continue;
    const x = (v as Record<string, unknown>)[k];
    if (x === null || typeof x !== 'object') continue;
    const s = smallDepth(x, d + 1, limit);
    if (s < 0) return -1;
    if (s > max) max = s;
  }
  return max;
}

/** The full walk, iteratively: any size, cycles found (Infinity). Exported for the test that checks valueDepth's small walk against it. */
export function fullDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  const seen = new Set<object>();
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (seen.has(v)) return Infinity; // a cycle can never be sent
    seen.add(v);
    if (d > max) {
      max = d;
      if (max > limit) return max;
    }
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (x !== null && typeof x === 'object') stack.push([x, d + 1]);
  }
  return max;
}

/** A message serialized once for every peer it goes to; `binary` is its msgpack form, made on first need (peers with binary frames). */
export type Encoded = { ok: true; text: string; bytes: number; binary?: Uint8Array } | { ok: false; code: ErrorCode; message: string };

/**
 * Serialize an outgoing message. Never throws: a value that cannot be JSON (a cycle, a
 * BigInt, nesting past the limit, a getter that throws) becomes a coded failure for the
 * caller to answer with.
 */
export function encode(msg: unknown, maxBytes: number): Encoded {
  let text: string;
  try {
    text = JSON.stringify(msg);
  } catch (err) {
    return { ok: false, code: 'LM_PROTOCOL', message: `the message cannot be sent as JSON: ${String((err as Error)?.message ?? err).slice(0, 200)}` };
  }
  if (typeof text !== 'string') return { ok: false, code: 'LM_PROTOCOL', message: 'the message cannot be sent as JSON' };
  // Byte length only when it could matter: a string's bytes are at most 3x its UTF-16 length.
  const bytes = text.length * 3 <= maxBytes ? text.length : Buffer.byteLength(text);
  if (bytes > maxBytes) return { ok: false, code: 'LM_MESSAGE_TOO_LARGE', message: `the message is ${bytes} bytes, over the maximum of ${maxBytes}` };
  return { ok: true, text, bytes };
}
