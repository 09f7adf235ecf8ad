// Batched frames (docs/protocol.md, "batched frames"): once the hub's answer to hello agreed,
// the JSON text frames written in one turn leave as one WebSocket message, joined with a line
// feed, and a message from the hub may hold several. At 64 calls in flight each frame as a
// message of its own cost ws its framing, buffering and parsing, at both ends, per frame.

/** The most frames one message may hold (the hub's answer may name fewer). */
export const MAX_BATCH_FRAMES = 64;

import { MAX_DEPTH, scanJson } from './protocol.js';

const LF = 0x0a;

// A batch leaves once it holds this many frames, without waiting for the turn's end: the hub
// starts on them while this process goes on with the rest (the processes of a call then work
// at once on two cores rather than in turns).
const FLUSH_FRAMES = 16;

/** Call `each` with every frame of a message from a hub that batches (JSON text never holds a raw line feed). */
export function eachFrame(raw, each) {
  let start = 0;
  for (let at = raw.indexOf(LF); at !== -1; at = raw.indexOf(LF, start)) {
    each(raw.subarray(start, at));
    start = at + 1;
  }
  each(start === 0 ? raw : raw.subarray(start));
}

/**
 * The frames of a batched message parsed with one JSON.parse of the message as an array,
 * instead of a string and a JSON.parse per frame (16 frames a message at 64 calls in flight);
 * undefined when any frame is not `whole` (one object whose braces span it, within the depth
 * limit): the caller then takes the frames one by one, each refused or read as alone. Whole
 * frames joined with commas are an array of exactly those frames, each read as alone.
 */
export function decodeBatch(raw, maxBytes) {
  if (raw.length > maxBytes) return undefined;
  const text = raw.toString('utf8');
  let frames = 0;
  let from = 0;
  for (;;) {
    const at = text.indexOf('\n', from);
    const to = at === -1 ? text.length : at;
    const scan = scanJson(text, from, to);
    if (!scan.whole || scan.depth > MAX_DEPTH) return undefined;
    frames++;
    if (at === -1) break;
    from = at + 1;
  }
  let msgs;
  try {
    // One frame (a lone call's message) is parsed as it is: no joined copy of the text.
    msgs = frames === 1 ? [JSON.parse(text)] : JSON.parse(`[${text.replaceAll('\n', ',')}]`);
  } catch {
    return undefined;
  }
  return Array.isArray(msgs) && msgs.length === frames ? msgs : undefined;
}

/** Per connection: the frames queued this turn. */
const queues = new WeakMap();

/**
 * Queue one JSON text frame for `ws`; it leaves with the others of this turn, in one message
 * of at most `maxFrames` frames and `maxBytes` bytes (a full one leaves at once).
 */
export function queueFrame(ws, text, maxFrames, maxBytes) {
  let q = queues.get(ws);
  if (!q) queues.set(ws, (q = { ws, lines: [], bytes: 0, scheduled: false }));
  // UTF-8 takes at most 3 bytes a UTF-16 unit: counted only when the bound could pass the limit.
  const bytes = q.bytes + text.length * 3 + 1 <= maxBytes ? text.length : Buffer.byteLength(text);
  if (q.lines.length >= Math.min(maxFrames, FLUSH_FRAMES) || (q.lines.length > 0 && q.bytes + bytes + 1 > maxBytes)) flush(q);
  q.lines.push(text);
  q.bytes += bytes + 1;
  if (q.scheduled) return;
  q.scheduled = true;
  process.nextTick(release, q);
}

/** Send what is queued for `ws` now (before a frame that does not take the queue). */
export function flushFrames(ws) {
  const q = queues.get(ws);
  if (q) flush(q);
}

function release(q) {
  q.scheduled = false;
  flush(q);
}

function flush(q) {
  const lines = q.lines;
  if (lines.length === 0) return;
  q.lines = [];
  q.bytes = 0;
  // A closed socket drops it, as a single frame's send would: closing rejects every pending exchange.
  if (q.ws.readyState === 1) q.ws.send(lines.length === 1 ? lines[0] : lines.join('\n'));
}
