import { CONSTANTS } from './protocol-constants.js';
import type { Base } from './protocol.js';

/**
 * The shared-memory side of the hub protocol (docs/shared-memory.md): the `segment`
 * message and the `segments` a request, response or event carries, each checked field by
 * field. protocol.ts parses the rest of a frame and calls these.
 */

/**
 * A shared-memory segment a request, response or event carries (docs/shared-memory.md): its
 * id, and `grant` when the sender, its owner, gives the receiver that access on the way.
 */
export interface SegmentRef {
  id: string;
  grant?: 'read' | 'write';
}

/** What a plugin asks of the shared-memory pool (answered with a response). */
export type SegmentOp = 'allocate' | 'free' | 'resize' | 'readonly' | 'share' | 'release' | 'list' | 'publish' | 'lookup';

export interface SegmentMsg extends Base {
  type: 'segment';
  op: SegmentOp;
  segment?: string;
  size?: number;
  plugins?: string[];
  access?: 'read' | 'write';
  key?: string;
  ttlMs?: number;
}

/** A plugin id: what `to` and `plugins` name. */
export const TARGET = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const SEGMENT = /^[0-9a-f]{32}$/;
/** Segments one message may carry. */
export const MAX_SEGMENTS = CONSTANTS.segments.maxPerMessage;
const SEGMENT_OPS: ReadonlySet<string> = new Set<SegmentOp>(['allocate', 'free', 'resize', 'readonly', 'share', 'release', 'list', 'publish', 'lookup']);
const CACHE_KEY = /^[\x21-\x7e]{1,256}$/;

type SegmentsField = { ok: true; value?: SegmentRef[] } | { ok: false; error: string };

/** The `segments` of a request, response or event: absent, or up to MAX_SEGMENTS distinct refs. */
export function segmentsOf(v: unknown): SegmentsField {
  if (v === undefined) return { ok: true };
  const bad = { ok: false as const, error: `'segments' must be an array of at most ${MAX_SEGMENTS} objects {"id": <32 hex digits>, "grant"?: "read" | "write"}, each segment once` };
  if (!Array.isArray(v) || v.length > MAX_SEGMENTS) return bad;
  const out: SegmentRef[] = [];
  for (const x of v) {
    const r = x as Record<string, unknown>;
    if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || !SEGMENT.test(r.id)) return bad;
    if (r.grant !== undefined && r.grant !== 'read' && r.grant !== 'write') return bad;
    if (out.some((o) => o.id === r.id)) return bad;
    out.push({ id: r.id, ...(r.grant ? { grant: r.grant } : {}) });
  }
  return out.length ? { ok: true, value: out } : { ok: true };
}

/** A `segment` message: the op and just the fields it needs, each checked. */
export function parseSegment(m: Record<string, unknown>, id: string): { ok: true; msg: SegmentMsg } | { ok: false; message: string } {
  if (typeof m.op !== 'string' || !SEGMENT_OPS.has(m.op)) return { ok: false, message: `segment needs 'op': one of ${[...SEGMENT_OPS].join(', ')}` };
  const op = m.op as SegmentOp;
  const msg: SegmentMsg = { type: 'segment', id, op };
  if (op !== 'allocate' && op !== 'list' && op !== 'lookup') {
    if (typeof m.segment !== 'string' || !SEGMENT.test(m.segment)) return { ok: false, message: `segment ${op} needs 'segment': a segment id (32 hexadecimal digits)` };
    msg.segment = m.segment;
  }
  if (op === 'allocate' || op === 'resize') {
    if (!Number.isSafeInteger(m.size) || (m.size as number) < 1) return { ok: false, message: `segment ${op} needs 'size': a whole number of bytes, at least 1` };
    msg.size = m.size as number;
  }
  if (op === 'share') {
    if (!Array.isArray(m.plugins) || m.plugins.length > 64 || !m.plugins.every((x) => typeof x === 'string' && TARGET.test(x))) return { ok: false, message: "segment share needs 'plugins': an array of at most 64 plugin ids" };
    msg.plugins = [...new Set(m.plugins as string[])];
  }
  if (m.access !== undefined) {
    if (m.access !== 'read' && m.access !== 'write') return { ok: false, message: "'access' must be \"read\" or \"write\"" };
    msg.access = m.access;
  }
  if (op === 'publish' || op === 'lookup') {
    if (typeof m.key !== 'string' || !CACHE_KEY.test(m.key)) return { ok: false, message: `segment ${op} needs 'key': 1-256 printable characters without spaces` };
    msg.key = m.key;
  }
  if (op === 'publish') {
    if (!Number.isSafeInteger(m.ttlMs) || (m.ttlMs as number) < 1 || (m.ttlMs as number) > 86_400_000) return { ok: false, message: "segment publish needs 'ttlMs': 1 to 86400000 milliseconds" };
    msg.ttlMs = m.ttlMs as number;
  }
  return { ok: true, msg };
}
