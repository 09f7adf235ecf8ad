import { describe, expect, it } from 'vitest';
import { CallTable, SLOTS } from '../../src/hub/call-table.js';

/** The hub's ids (hub.ts nextId). */
const hubId = (seq: number): string => `h${seq.toString(36).padStart(11, '0')}`;

describe('the table of calls in flight', () => {
  it('finds, replaces and forgets calls as a Map would, however their ids fall on its slots', () => {
    const t = new CallTable<number>();
    const m = new Map<string, number>();
    // Ids in sequence, ids SLOTS apart (the same slot: the later ones go beside it), ids not the hub's.
    const ids = [...Array.from({ length: 3 * SLOTS }, (_, i) => hubId(i + 1)), ...Array.from({ length: 50 }, (_, i) => hubId(7 + i * SLOTS)), 'x', '"q"', '', 'ab', 'zzzzzzzzzzzzzzz'];
    let n = 0;
    for (const id of ids) {
      if (m.has(id)) continue;
      t.set(id, n);
      m.set(id, n++);
      // Calls end in another order than they began: every third one at once.
      if (n % 3 === 0) expect(t.delete(id)).toBe(m.delete(id));
    }
    expect(t.size).toBe(m.size);
    for (const id of ids) expect(t.get(id)).toBe(m.get(id));
    expect(new Map(t.entries())).toEqual(m);
    for (const [id] of t.entries()) {
      expect(t.delete(id)).toBe(true);
      expect(t.delete(id)).toBe(false);
      expect(t.get(id)).toBeUndefined();
    }
    expect(t.size).toBe(0);
    expect(t.entries()).toEqual([]);
  });
});
