import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Access, SegmentRecord } from './segment.js';
import { SEGMENT_ID } from './segment.js';

/** A segment as the index keeps it: what a controller after a killed one needs to take the pool over. */
export interface SavedSegment {
  readonly id: string;
  readonly owner: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly holders: readonly [string, Access][];
  readonly createdAt: number;
}

/** Written whole on every change, atomically (a new file renamed over the old), readable by the controller's user only. */
export function writeIndex(file: string, segments: Iterable<SegmentRecord>): void {
  const saved: SavedSegment[] = [...segments].map((r) => ({ id: r.id, owner: r.owner, size: r.size, readOnly: r.readOnly, holders: [...r.holders], createdAt: r.createdAt }));
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ version: 1, segments: saved }), { mode: 0o600 });
  renameSync(tmp, file);
}

/** The index a controller left; a missing or damaged one keeps nothing (every segment is then reclaimed). */
export function readIndex(file: string): SavedSegment[] {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
  const list = (v as { segments?: unknown })?.segments;
  if (!Array.isArray(list)) return [];
  return list.filter(isSaved);
}

function isSaved(x: unknown): x is SavedSegment {
  const s = x as SavedSegment;
  return (
    typeof s === 'object' &&
    s !== null &&
    typeof s.id === 'string' &&
    SEGMENT_ID.test(s.id) &&
    typeof s.owner === 'string' &&
    /^[a-z0-9-]{1,64}$/.test(s.owner) &&
    Number.isSafeInteger(s.size) &&
    typeof s.readOnly === 'boolean' &&
    Array.isArray(s.holders) &&
    s.holders.every((h) => Array.isArray(h) && typeof h[0] === 'string' && (h[1] === 'read' || h[1] === 'write')) &&
    typeof s.createdAt === 'number'
  );
}
