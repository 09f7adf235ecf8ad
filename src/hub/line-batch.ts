import type { WebSocket } from 'ws';

/**
 * Frames batched per WebSocket message (docs/protocol.md, "batched frames"). At 64 calls in
 * flight each read of the hub brings every frame the sender wrote in one turn, and each
 * frame sent on was a WebSocket message of its own: ws framed, buffered and parsed each, and
 * `writev` carried two chunks per frame. A plugin whose hello offered `batch` gets the JSON
 * text frames of one turn joined with a line feed into one message instead (JSON text never
 * holds a raw line feed: JSON.stringify escapes it inside strings, and writes no whitespace
 * between tokens), at most MAX_BATCH_FRAMES of them and at most the message size limit in all.
 */

/** The most frames one batched message may hold, either way. */
export const MAX_BATCH_FRAMES = 64;

/**
 * A batch leaves once it holds this many frames, without waiting for the turn's end: the
 * receiver starts on them while this process goes on with the rest (on two cores the three
 * processes of a call then work at once rather than in turns).
 */
export const FLUSH_FRAMES = 16;

const LF = 0x0a;

/**
 * The frames of a batched message: its parts between line feeds (an empty part is a frame like
 * any other, refused as today). It stops at MAX_BATCH_FRAMES + 1 parts: a message of line feeds
 * alone must not cost a Buffer each before it is refused.
 */
export function splitFrames(raw: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  let start = 0;
  for (let at = raw.indexOf(LF); at !== -1 && frames.length < MAX_BATCH_FRAMES; at = raw.indexOf(LF, start)) {
    frames.push(raw.subarray(start, at));
    start = at + 1;
  }
  frames.push(start === 0 ? raw : raw.subarray(start));
  return frames;
}

/** The text frames a peer is sent in this turn, written as one message once the turn ends. */
export class LineBatch {
  private lines: string[] = [];
  private bytes = 0;
  private scheduled = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly maxBytes: number,
  ) {}

  /** Bytes queued here, not yet handed to ws: they count against the peer's queue limit. */
  get queued(): number {
    return this.bytes;
  }

  /** Queue one frame of `bytes` bytes; a full batch leaves first. */
  add(text: string, bytes: number): void {
    if (this.lines.length >= FLUSH_FRAMES || (this.lines.length > 0 && this.bytes + bytes > this.maxBytes)) this.flush();
    this.lines.push(text);
    this.bytes += bytes + 1;
    if (this.scheduled) return;
    this.scheduled = true;
    process.nextTick(release, this);
  }

  /** Send what is queued, as one message (a lone frame as it is). */
  flush(): void {
    const lines = this.lines;
    if (lines.length === 0) return;
    this.lines = [];
    this.bytes = 0;
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(lines.length === 1 ? lines[0]! : lines.join('\n'));
  }

  /** @internal */
  released(): void {
    this.scheduled = false;
    this.flush();
  }
}

function release(batch: LineBatch): void {
  batch.released();
}
