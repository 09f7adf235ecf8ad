import { randomBytes } from 'node:crypto';
import { LogoMeshError } from '../errors.js';

/** What a holder may do with a segment: map it for reading, or for reading and writing. */
export type Access = 'read' | 'write';

/** A segment id: 128 random bits in hex. Guessing one gains nothing (the kernel checks the ACL), but nobody should have to. */
export const SEGMENT_ID = /^[0-9a-f]{32}$/;

export function newSegmentId(): string {
  return randomBytes(16).toString('hex');
}

/** The controller's record of one segment. */
export interface SegmentRecord {
  readonly id: string;
  readonly owner: string;
  size: number;
  readOnly: boolean;
  /** Plugins other than the owner that may open it, and how. */
  readonly holders: Map<string, Access>;
  readonly createdAt: number;
}

/**
 * A segment handle as it travels in messages and SDKs: `path` is relative to the pool
 * (LOGOMESH_SEGMENTS_DIR in a plugin, the pool folder on the host).
 */
export interface SegmentHandle {
  readonly id: string;
  readonly owner: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly path: string;
}

/** One row of `logomesh segments`. */
export interface SegmentInfo extends SegmentHandle {
  readonly holders: readonly { readonly plugin: string; readonly access: Access }[];
  /** The owner's rights and the holders', as `ls -l` would summarize them: `rw` or `r`. */
  readonly mode: string;
  readonly createdAt: number;
  readonly ageMs: number;
}

export function relativePath(owner: string, id: string): string {
  return `${owner}/${id}`;
}

export function handleOf(r: SegmentRecord): SegmentHandle {
  return { id: r.id, owner: r.owner, size: r.size, readOnly: r.readOnly, path: relativePath(r.owner, r.id) };
}

export function infoOf(r: SegmentRecord, now = Date.now()): SegmentInfo {
  return {
    ...handleOf(r),
    holders: [...r.holders].map(([plugin, access]) => ({ plugin, access })),
    mode: r.readOnly ? 'r' : 'rw',
    createdAt: r.createdAt,
    ageMs: now - r.createdAt,
  };
}

/** The access a plugin has to a segment, or undefined. The owner writes until the segment is made read-only. */
export function accessOf(r: SegmentRecord, pluginId: string): Access | undefined {
  if (r.owner === pluginId) return r.readOnly ? 'read' : 'write';
  const a = r.holders.get(pluginId);
  return a === 'write' && r.readOnly ? 'read' : a;
}

/** Check a segment id from outside (a message, the CLI): LM_SEGMENT when it is not one. */
export function checkSegmentId(id: unknown, field = 'segment'): string {
  if (typeof id === 'string' && SEGMENT_ID.test(id)) return id;
  throw new LogoMeshError('LM_SEGMENT', `'${field}' must be a segment id (32 hexadecimal digits), found ${JSON.stringify(String(id).slice(0, 64))}`, { field, expected: '32 hexadecimal digits', found: String(id).slice(0, 64) });
}

/** Check a segment's size from outside: a whole number of bytes from 1 to the pool's size `max`; LM_SEGMENT otherwise. */
export function checkSegmentSize(size: number, max: number): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > max) {
    throw new LogoMeshError('LM_SEGMENT', `a segment's size must be a whole number of bytes from 1 to ${max} (the pool's size), found ${String(size).slice(0, 32)}`, { field: 'size', expected: `1 to ${max}`, found: String(size).slice(0, 32) });
  }
}
