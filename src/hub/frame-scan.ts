/**
 * One pass over a JSON text frame before it is parsed: how deep it nests (codec.ts says why
 * that is measured on the text), and where the value of its top-level `data` lies, so that
 * the hub can forward a call's params or result as the very text it received instead of
 * serializing the parsed value again (docs/performance.md#the-hub).
 *
 * The span is only given when the scanner's view of the top-level keys cannot differ from
 * `JSON.parse`'s: exactly one key spelled `data` and no top-level key written with an escape
 * (`"d\u0061ta"` is `data` to the parser, not to a byte scanner). The caller parses the
 * frame whole all the same: a span out of a frame that is not valid JSON is never used.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

export interface FrameScan {
  /** The deepest nesting, counting the outermost as 1; `limit + 1` as soon as `limit` is passed. */
  readonly depth: number;
  /** The text of the top-level `data` value, when it can stand for the parsed value. */
  readonly data?: string;
  /**
   * The frame is one object whose braces span it (JSON whitespace aside) with its strings
   * closed: nothing of it lies outside its own `{...}`. Frames that all are can be parsed as
   * the elements of one array (batch-parse.ts) without a comma of one frame standing for a
   * separator between two.
   */
  readonly whole?: boolean;
}

const D = 0x64;
const A = 0x61;
const T = 0x74;

/**
 * Scan the frame's bytes (faster than its characters); `text` is the same bytes decoded,
 * from which the span is cut: at the same offsets when every byte is one character (ASCII),
 * decoded from its bytes otherwise. Its ends are ASCII (`:`, `,`, `}`), never inside a
 * character's bytes. `from` and `to` bound the frame within `buf` (one frame of a batched
 * message; `text` is then the whole message's).
 */
export function scanFrame(buf: Buffer, text: string, limit: number, from = 0, to = buf.length): FrameScan {
  let depth = 0;
  let max = 0;
  let expectKey = false;
  let keyIsData = false;
  let dataKeys = 0;
  let escapedKey = false;
  let start = -1;
  let end = -1;
  // Where the outermost value opened and where depth first came back to 0.
  let opened = -1;
  let closed = -1;
  const n = to;
  for (let i = from; i < n; i++) {
    const c = buf[i]!;
    if (c === QUOTE) {
      const open = i;
      let escaped = false;
      for (i++; i < n; i++) {
        const s = buf[i]!;
        if (s === BACKSLASH) {
          escaped = true;
          i++;
        } else if (s === QUOTE) break;
      }
      if (depth === 1 && expectKey) {
        expectKey = false;
        if (escaped) escapedKey = true;
        keyIsData = i - open === 5 && buf[open + 1] === D && buf[open + 2] === A && buf[open + 3] === T && buf[open + 4] === A;
        if (keyIsData) dataKeys++;
      }
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return { depth: max };
      }
      if (depth === 1 && c === OPEN_BRACE) expectKey = true;
      if (opened < 0) opened = i;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (depth === 1 && start >= 0 && end < 0) end = i;
      depth--;
      if (depth === 0 && closed < 0) closed = i;
    } else if (depth === 1) {
      if (c === COLON && keyIsData && start < 0) start = i + 1;
      else if (c === COMMA) {
        if (start >= 0 && end < 0) end = i;
        expectKey = true;
        keyIsData = false;
      }
    }
  }
  const whole = opened >= 0 && buf[opened] === OPEN_BRACE && closed >= 0 && blank(buf, from, opened) && blank(buf, closed + 1, to);
  if (dataKeys !== 1 || escapedKey || start < 0 || end < 0) return { depth: max, whole };
  const data = text.length === buf.length ? text.slice(start, end) : buf.toString('utf8', start, end);
  return { depth: max, data: data.trim(), whole };
}

/** Only JSON whitespace between `from` and `to` (space, tab, CR, LF)? */
function blank(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = buf[i];
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0a) return false;
  }
  return true;
}
