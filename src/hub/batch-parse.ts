import { scanFrame, type FrameScan } from './frame-scan.js';
import { MAX_BATCH_FRAMES } from './line-batch.js';
import { checked, MAX_DEPTH, type Parsed } from './protocol.js';

/**
 * The frames of a batched message (line-batch.ts) parsed with one `JSON.parse` of the message
 * as an array, instead of a Buffer, a string and a `JSON.parse` per frame: at 64 calls in
 * flight each message brings 16 frames, and those per-frame costs were a fifth of the hub's
 * CPU (docs/performance.md#the-hub).
 *
 * The fast path only takes a message whose every frame the byte scan (frame-scan.ts) found
 * within the depth limit and `whole`: one object whose braces span it. Then the message with
 * its line feeds turned into commas is an array of exactly those frames, each parsed as
 * `JSON.parse` parses it alone (an array's element is a JSON text like any other), and each
 * is checked and typed as a frame of its own (`checked`). Anything else (a frame too deep,
 * not an object, not JSON, more frames than a batch may hold) returns undefined: the caller
 * takes the frames one by one, as before, and refuses each bad one with its own error.
 * The message is within the size limit (the hub checked it whole), so each frame is.
 */
export function parseBatch(raw: Buffer): Parsed[] | undefined {
  const text = raw.toString('utf8');
  const scans: FrameScan[] = [];
  let from = 0;
  for (;;) {
    const at = raw.indexOf(0x0a, from);
    const to = at === -1 ? raw.length : at;
    const scan = scanFrame(raw, text, MAX_DEPTH, from, to);
    if (scan.depth > MAX_DEPTH || scan.whole !== true) return undefined;
    scans.push(scan);
    if (at === -1) break;
    if (scans.length === MAX_BATCH_FRAMES) return undefined;
    from = at + 1;
  }
  let values: unknown;
  try {
    values = JSON.parse(`[${text.replaceAll('\n', ',')}]`);
  } catch {
    return undefined;
  }
  if (!Array.isArray(values) || values.length !== scans.length) return undefined;
  const out: Parsed[] = new Array(scans.length);
  for (let i = 0; i < scans.length; i++) out[i] = checked(values[i], scans[i]!.data);
  return out;
}
