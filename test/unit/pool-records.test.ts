import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { segmentsTable } from '../../src/cli/segments.js';
import { readIndex, writeIndex, type SavedSegment } from '../../src/memory/pool-index.js';
import { keptRecords } from '../../src/memory/pool-takeover.js';
import { accessOf, checkSegmentId, infoOf, newSegmentId, type SegmentRecord } from '../../src/memory/segment.js';
import { pages } from '../../src/memory/tmpfs.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function record(over: Partial<SegmentRecord> = {}): SegmentRecord {
  return { id: newSegmentId(), owner: 'producer', size: 5000, readOnly: false, holders: new Map([['reader', 'read']]), createdAt: 1_000, ...over };
}

/** The pool's records and rules that need no kernel: what a restarted controller reads back, who may do what, how sizes count. */
describe('shared-memory pool records', () => {
  it('writes the index for the controller only, and reads back what it wrote', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-pool-index-'));
    dirs.push(dir);
    const file = path.join(dir, 'segments.json');
    const r = record();
    writeIndex(file, [r]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readIndex(file)).toEqual([{ id: r.id, owner: 'producer', size: 5000, readOnly: false, holders: [['reader', 'read']], createdAt: 1_000 }]);
  });

  it('keeps nothing of a damaged or missing index, and drops records that are not records', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-pool-index-'));
    dirs.push(dir);
    const file = path.join(dir, 'segments.json');
    expect(readIndex(file)).toEqual([]);
    writeFileSync(file, '{"segments": [');
    expect(readIndex(file)).toEqual([]);
    const good = { id: 'a'.repeat(32), owner: 'p', size: 1, readOnly: true, holders: [], createdAt: 1 };
    writeFileSync(file, JSON.stringify({ segments: [good, { ...good, id: '../../etc' }, { ...good, owner: '../x' }, { ...good, holders: [['q', 'root']] }, 'x'] }));
    expect(readIndex(file)).toEqual([good]);
  });

  it('the owner writes until read-only; a reader reads; anyone else nothing', () => {
    const r = record({ holders: new Map([['reader', 'read'], ['writer', 'write']]) });
    expect([accessOf(r, 'producer'), accessOf(r, 'reader'), accessOf(r, 'writer'), accessOf(r, 'stranger')]).toEqual(['write', 'read', 'write', undefined]);
    r.readOnly = true;
    expect([accessOf(r, 'producer'), accessOf(r, 'writer')]).toEqual(['read', 'read']);
    expect(infoOf(r, 3_000)).toMatchObject({ mode: 'r', ageMs: 2_000, path: `producer/${r.id}`, holders: [{ plugin: 'reader', access: 'read' }, { plugin: 'writer', access: 'write' }] });
  });

  it('sizes count in whole pages, never zero (a tmpfs of size 0 has no limit)', () => {
    expect([pages(0), pages(1), pages(4096), pages(4097)]).toEqual([4096, 4096, 4096, 8192]);
  });

  it('refuses an id that is not one, naming the field', () => {
    expect(() => checkSegmentId('../../etc/passwd')).toThrow(expect.objectContaining({ code: 'LM_SEGMENT', message: expect.stringContaining("'segment' must be a segment id") }));
    expect(checkSegmentId('f'.repeat(32))).toBe('f'.repeat(32));
  });

  it('a restarted controller keeps a segment only if its file is there and a running plugin owns or holds it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-pool-takeover-'));
    dirs.push(dir);
    const saved = (owner: string, holders: [string, 'read' | 'write'][]): SavedSegment => ({ id: newSegmentId(), owner, size: 10, readOnly: false, holders, createdAt: 1 });
    const ownedLive = saved('live', [['gone', 'read']]);
    const heldByLive = saved('dead', [['live', 'write'], ['gone', 'read']]);
    const nobody = saved('dead', [['gone', 'read']]);
    const noFile = saved('live', []);
    for (const s of [ownedLive, heldByLive, nobody]) {
      mkdirSync(path.join(dir, s.owner), { recursive: true });
      writeFileSync(path.join(dir, s.owner, s.id), '');
    }
    const kept = keptRecords(dir, [ownedLive, heldByLive, nobody, noFile], new Set(['live']));
    expect(kept.map((r) => r.id)).toEqual([ownedLive.id, heldByLive.id]);
    // Holders that are not running lose their place.
    expect(kept.map((r) => [...r.holders])).toEqual([[], [['live', 'write']]]);
  });

  it('logomesh segments shows owner, size, mode, holders and age', () => {
    const r = record();
    const table = segmentsTable([{ ...infoOf(r, 75_000) }]);
    expect(table.split('\n')[0]).toMatch(/^SEGMENT\s+OWNER\s+SIZE\s+MODE\s+HOLDERS\s+AGE$/);
    expect(table.split('\n')[1]).toMatch(new RegExp(`^${r.id}\\s+producer\\s+4\\.9 KiB\\s+rw\\s+reader\\(r\\)\\s+1m14s$`));
    expect(segmentsTable([])).toBe('no segments in the pool');
  });
});
