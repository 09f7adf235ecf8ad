import type { ErrorCode } from '../errors.js';
import { topLevelStrings } from './codec.js';
import { scanFrame } from './frame-scan.js';
import { unpackFrame } from './frames.js';
import { CONSTANTS } from './protocol-constants.js';
import { parseSegment, segmentsOf, TARGET, type SegmentMsg, type SegmentRef } from './protocol-segments.js';
import { isTopicPattern, MAX_TOPIC_LENGTH } from '../manifest/topics.js';

export { MAX_SEGMENTS, type SegmentMsg, type SegmentOp, type SegmentRef } from './protocol-segments.js';

/** The protocol major version this hub speaks (docs/protocol.md). */
export const PROTOCOL_VERSION = CONSTANTS.protocol;
export const DEFAULT_MAX_MESSAGE_BYTES = CONSTANTS.messageBytes.default;
/** The largest maximum message size an operator may set: every SDK accepts up to it. */
export const MAX_MAX_MESSAGE_BYTES = CONSTANTS.messageBytes.max;
/** Frames above max x this are not even read: the connection is closed (1009). */
export const HARD_LIMIT_FACTOR = CONSTANTS.messageBytes.hardLimitFactor;
export const DEFAULT_CALL_TIMEOUT_MS = CONSTANTS.callTimeoutMs.default;
/** Call timeouts outside [MIN, MAX] are refused: below it a call could never be answered. */
const MIN_CALL_TIMEOUT_MS = 1;
export const MAX_CALL_TIMEOUT_MS = CONSTANTS.callTimeoutMs.max;
/** Nesting of arrays and objects a frame may have, the frame object itself being level 1. */
export const MAX_DEPTH = CONSTANTS.maxDepth;
/** Plugins one event may name in `to`. */
const MAX_RECIPIENTS = 64;
export { MAX_TOPIC_LENGTH, topicMatches } from '../manifest/topics.js';
/** Who the host application is in `from` and `to`. */
export const HOST = 'host';

export interface WireError {
  code: ErrorCode | string;
  message: string;
  details?: unknown;
}

export interface Base {
  id: string;
  from?: string;
  timestamp?: number;
}

export interface Hello extends Base {
  type: 'hello';
  protocol: number;
  methods: string[];
  sdk?: string;
  /** Topics to subscribe to before the plugin counts as ready, so no event sent after its start is missed. */
  subscriptions?: string[];
  /** The frame encodings it speaks besides JSON text (`msgpack`): the hub answers in the first it also speaks. */
  encodings?: string[];
  /** It reads and writes batched frames (several JSON text frames in one message, line-batch.ts). */
  batch?: boolean;
}
export interface Request extends Base {
  type: 'request';
  to: [string];
  method: string;
  data?: unknown;
  timeout?: number;
  segments?: SegmentRef[];
}
export interface Response extends Base {
  type: 'response';
  correlationId: string;
  success: boolean;
  data?: unknown;
  error?: WireError;
  segments?: SegmentRef[];
}
export interface EventMsg extends Base {
  type: 'event';
  topic: string;
  data?: unknown;
  to?: string[];
  segments?: SegmentRef[];
  /** The sender waits for the hub's answer: success once published, or the refusal (docs/protocol.md#events-and-broadcasts). */
  ack?: boolean;
}
export interface Broadcast extends Base {
  type: 'broadcast';
  topic?: string;
  data?: unknown;
  ack?: boolean;
}
export interface Subscribe extends Base {
  type: 'subscribe' | 'unsubscribe';
  topic: string;
}
export interface Shutdown extends Base {
  type: 'shutdown';
  data: { graceMs: number };
}
export interface ErrorMsg extends Base {
  type: 'error';
  correlationId?: string;
  error: WireError;
}

/** A host client registers the host methods it serves (the operator must have declared them). */
export interface Register extends Base {
  type: 'register';
  methods: string[];
}

export type ClientMessage = Hello | Request | Response | EventMsg | Broadcast | Subscribe | SegmentMsg | Register;
export type HubMessage = Request | Response | EventMsg | Broadcast | Shutdown | ErrorMsg;

/**
 * `claimedFrom`: a `from` the client put in its frame (the hub ignores it, and sets its own).
 * `rawData`: the text of a request's or a successful response's `data` in the frame, which
 * can be forwarded as it is (frame-scan.ts, forward.ts); absent for msgpack frames.
 */
export type Parsed =
  | { ok: true; msg: ClientMessage; claimedFrom?: string; rawData?: string }
  /** `answers`: the call a refused response was for, when it could be read (a frame too large to parse). */
  | { ok: false; id?: string; answers?: string; error: WireError };

const ID = new RegExp(`^[\\x20-\\x7e]{1,${CONSTANTS.idMaxLength}}$`);
const TOPIC = { test: isTopicPattern };
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A frame refused before parsing still has its id (and, for a response, the call it answers)
 * read from its top level, so the refusal reaches the right caller at once.
 */
function withAnswers(refused: Extract<Parsed, { ok: false }>, buf: Buffer): Extract<Parsed, { ok: false }> {
  const top = topLevelStrings(buf, ['id', 'type', 'correlationId']);
  return { ...refused, ...(top.id ? { id: top.id } : {}), ...(top.type === 'response' && top.correlationId ? { answers: top.correlationId } : {}) };
}

function fail(message: string, id?: string, code: ErrorCode = 'LM_PROTOCOL'): Extract<Parsed, { ok: false }> {
  return { ok: false, ...(id ? { id } : {}), error: { code, message } };
}

/**
 * Parse and check one frame. Never throws: whatever a peer sends becomes either a
 * well-typed message or an error to send back to it.
 */
export function parseFrame(raw: Buffer | string, isBinary: boolean, maxBytes: number, binary = false): Parsed {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > maxBytes) {
    return withAnswers(fail(`message of ${size} bytes exceeds the maximum of ${maxBytes} bytes`, undefined, 'LM_MESSAGE_TOO_LARGE'), typeof raw === 'string' ? Buffer.from(raw) : raw);
  }
  if (isBinary) {
    if (!binary) return fail("binary frames are accepted only from a plugin whose hello listed 'msgpack' under encodings; send JSON text frames");
    const u = unpackFrame(typeof raw === 'string' ? Buffer.from(raw) : raw, MAX_DEPTH);
    if (!u.ok) return fail(u.message);
    return checked(u.value);
  }
  const buf = typeof raw === 'string' ? Buffer.from(raw) : raw;
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  const scan = scanFrame(buf, text, MAX_DEPTH);
  if (scan.depth > MAX_DEPTH) return withAnswers(fail(`frame nests arrays and objects more than ${MAX_DEPTH} levels deep`), buf);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return fail(`frame is not JSON: ${(err as Error).message}`);
  }
  return checked(v, scan.data);
}

/** A decoded frame (from JSON text or msgpack) checked and typed; `rawData` the text of its `data` (frame-scan.ts). */
export function checked(v: unknown, rawData?: string): Parsed {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('frame must be a JSON object');
  const m = v as Record<string, unknown>;
  const id = typeof m.id === 'string' && ID.test(m.id) ? m.id : undefined;
  if (!id) return fail("field 'id' must be a string of 1-128 printable characters");
  const parsed = parseMessage(m, id);
  if (!parsed.ok) return parsed;
  // Only a call's params and a successful answer's result go on as text (an error is rebuilt).
  const t = parsed.msg.type;
  const raw = rawData !== undefined && ((t === 'request' && m.data !== undefined) || (t === 'response' && m.success === true)) ? rawData : undefined;
  const claimedFrom = typeof m.from === 'string' && m.from !== '' ? m.from : undefined;
  return { ok: true, msg: parsed.msg, claimedFrom, rawData: raw };
}

function parseMessage(m: Record<string, unknown>, id: string): Parsed {
  switch (m.type) {
    case 'hello':
      if (typeof m.protocol !== 'number') return fail("hello needs a numeric 'protocol'", id);
      if (!Array.isArray(m.methods) || !m.methods.every((x) => typeof x === 'string' && NAME.test(x))) {
        return fail("hello needs 'methods': an array of method names", id);
      }
      if (m.subscriptions !== undefined && (!Array.isArray(m.subscriptions) || !m.subscriptions.every((x) => typeof x === 'string' && TOPIC.test(x)))) {
        return fail(`hello 'subscriptions' must be an array of topics (dotted names of at most ${MAX_TOPIC_LENGTH} characters, optionally ending in .*, or *)`, id);
      }
      return {
        ok: true,
        msg: {
          type: 'hello',
          id,
          protocol: m.protocol,
          methods: m.methods as string[],
          ...(typeof m.sdk === 'string' ? { sdk: m.sdk.slice(0, 64) } : {}),
          ...(m.subscriptions ? { subscriptions: [...new Set(m.subscriptions as string[])] } : {}),
          ...(Array.isArray(m.encodings) ? { encodings: m.encodings.filter((x): x is string => typeof x === 'string').slice(0, 8) } : {}),
          ...(m.batch === true ? { batch: true } : {}),
        },
      };
    case 'request': {
      const to = m.to;
      if (!Array.isArray(to) || to.length !== 1 || typeof to[0] !== 'string' || !(to[0] === HOST || TARGET.test(to[0]))) {
        return fail("request needs 'to': an array with exactly one plugin id or \"host\"", id);
      }
      if (typeof m.method !== 'string' || !NAME.test(m.method)) return fail("request needs 'method': a method name", id);
      if (m.timeout !== undefined && (typeof m.timeout !== 'number' || !(m.timeout >= MIN_CALL_TIMEOUT_MS && m.timeout <= MAX_CALL_TIMEOUT_MS))) {
        return fail(`'timeout' must be a number of milliseconds from ${MIN_CALL_TIMEOUT_MS} to ${MAX_CALL_TIMEOUT_MS}, found ${describe(m.timeout)}`, id);
      }
      const segs = segmentsOf(m.segments);
      if (!segs.ok) return fail(segs.error, id);
      // The parsed frame's own array (checked: one id), not a copy: nothing else holds it.
      const msg: Request = { type: 'request', id, to: to as [string], method: m.method, data: m.data };
      if (m.timeout !== undefined) msg.timeout = m.timeout as number;
      if (segs.value) msg.segments = segs.value;
      return { ok: true, msg };
    }
    case 'response': {
      if (typeof m.correlationId !== 'string') return fail("response needs 'correlationId'", id);
      if (typeof m.success !== 'boolean') return { ...fail("response needs a boolean 'success'", id), answers: m.correlationId };
      let error: WireError | undefined;
      if (!m.success) {
        const e = m.error as Record<string, unknown> | undefined;
        error = {
          code: typeof e?.code === 'string' ? e.code : 'LM_PLUGIN_ERROR',
          message: typeof e?.message === 'string' ? e.message : 'the plugin reported a failure without a message',
          ...(e?.details !== undefined ? { details: e.details } : {}),
        };
      }
      const segs = segmentsOf(m.success ? m.segments : undefined);
      if (!segs.ok) return { ...fail(segs.error, id), answers: m.correlationId };
      // Built field by field, not with conditional spreads: this runs for every answer (calls.ts, replyTo).
      const msg = (m.success ? { type: 'response', id, correlationId: m.correlationId, success: true, data: m.data } : { type: 'response', id, correlationId: m.correlationId, success: false, error }) as Response;
      if (segs.value) msg.segments = segs.value;
      return { ok: true, msg };
    }
    case 'event':
      if (typeof m.topic !== 'string' || !TOPIC.test(m.topic) || m.topic.includes('*')) return fail(`event needs 'topic': a dotted name without wildcards, at most ${MAX_TOPIC_LENGTH} characters`, id);
      if (m.to !== undefined && (!Array.isArray(m.to) || !m.to.every((x) => typeof x === 'string' && (x === HOST || TARGET.test(x))))) return fail("'to' must be an array of plugin ids (or \"host\")", id);
      if (m.to !== undefined && new Set(m.to as string[]).size > MAX_RECIPIENTS) return fail(`'to' names more than ${MAX_RECIPIENTS} recipients`, id);
      {
        const segs = segmentsOf(m.segments);
        if (!segs.ok) return fail(segs.error, id);
        if (segs.value && m.to === undefined) return fail("an event that carries 'segments' must name its recipients in 'to'", id);
        return { ok: true, msg: { type: 'event', id, topic: m.topic, data: m.data, ...(m.to ? { to: [...new Set(m.to as string[])] } : {}), ...(segs.value ? { segments: segs.value } : {}), ...(m.ack === true ? { ack: true } : {}) } };
      }
    case 'broadcast':
      if (m.segments !== undefined) return fail("a broadcast cannot carry 'segments' (send an event with 'to')", id);
      if (m.topic !== undefined && (typeof m.topic !== 'string' || !TOPIC.test(m.topic) || m.topic.includes('*'))) return fail(`broadcast 'topic' must be a dotted name without wildcards, at most ${MAX_TOPIC_LENGTH} characters`, id);
      return { ok: true, msg: { type: 'broadcast', id, data: m.data, ...(typeof m.topic === 'string' ? { topic: m.topic } : {}), ...(m.ack === true ? { ack: true } : {}) } };
    case 'register':
      if (!Array.isArray(m.methods) || m.methods.length === 0 || m.methods.length > 256 || !m.methods.every((x) => typeof x === 'string' && NAME.test(x))) {
        return fail("register needs 'methods': an array of 1 to 256 method names", id);
      }
      return { ok: true, msg: { type: 'register', id, methods: [...new Set(m.methods as string[])] } };
    case 'subscribe':
    case 'unsubscribe':
      if (typeof m.topic !== 'string' || !TOPIC.test(m.topic)) return fail(`${m.type} needs 'topic': a dotted name of at most ${MAX_TOPIC_LENGTH} characters, optionally ending in .* (or * for all)`, id);
      return { ok: true, msg: { type: m.type, id, topic: m.topic } };
    case 'segment': {
      const seg = parseSegment(m, id);
      return seg.ok ? seg : fail(seg.message, id);
    }
    default:
      return fail(`unknown message type ${JSON.stringify(String(m.type).slice(0, 64))}`, id);
  }
}

function describe(v: unknown): string {
  return typeof v === 'number' ? String(v) : typeof v;
}
