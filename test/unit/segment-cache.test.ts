import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AuditEntry } from '../../src/audit/audit-log.js';
import { MAX_TTL_MS, SegmentCache } from '../../src/memory/cache.js';
import type { SharedMemoryPool } from '../../src/memory/pool.js';
import type { SegmentHandle } from '../../src/memory/segment.js';

const SEG = 'a'.repeat(32);

/** Just what the cache asks of the pool: the kernel side is proven in test/integration/shared-memory.test.ts. */
function fakePool(): { pool: SharedMemoryPool; grants: string[]; freed: () => void } {
  let exists = true;
  const grants: string[] = [];
  const handle = { id: SEG, owner: 'producer', size: 10, readOnly: true, path: `producer/${SEG}` } as unknown as SegmentHandle;
  const pool = {
    setReadOnly: async () => handle,
    handle: () => (exists ? handle : undefined),
    accessOf: (_id: string, p: string) => (grants.includes(p) ? 'read' : undefined),
    grant: async (_id: string, p: string) => {
      grants.push(p);
    },
  } as unknown as SharedMemoryPool;
  return { pool, grants, freed: () => (exists = false) };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('the segment cache (cacheSerializedData)', () => {
  it('a key lives for its time to live, then is gone and audited', async () => {
    vi.useFakeTimers();
    const audit: Omit<AuditEntry, 'time'>[] = [];
    const { pool, grants } = fakePool();
    const cache = new SegmentCache(pool, (e) => audit.push(e));
    await cache.publish('report.latest', SEG, 'producer', 10_000);
    vi.advanceTimersByTime(9_999);
    expect((await cache.lookup('report.latest', 'reader')).id).toBe(SEG);
    expect(grants).toEqual(['reader']);
    await cache.lookup('report.latest', 'reader');
    expect(grants).toEqual(['reader']); // one grant per reader
    vi.advanceTimersByTime(1);
    await expect(cache.lookup('report.latest', 'reader')).rejects.toMatchObject({ code: 'LM_SEGMENT', message: expect.stringContaining("nothing is cached under 'report.latest'") });
    expect(audit.map((e) => e.action)).toEqual(['cache publish', 'cache expire']);
    cache.close();
  });

  it('publishing a key again replaces it and its time; the old timer does not drop the new entry', async () => {
    vi.useFakeTimers();
    const { pool } = fakePool();
    const cache = new SegmentCache(pool, () => undefined);
    await cache.publish('k', SEG, 'producer', 1_000);
    await cache.publish('k', SEG, 'producer', 5_000);
    vi.advanceTimersByTime(4_000);
    expect((await cache.lookup('k', 'reader')).id).toBe(SEG);
    vi.advanceTimersByTime(1_000);
    await expect(cache.lookup('k', 'reader')).rejects.toMatchObject({ code: 'LM_SEGMENT' });
  });

  it('a key whose segment was freed is gone before its time', async () => {
    const { pool, freed } = fakePool();
    const cache = new SegmentCache(pool, () => undefined);
    await cache.publish('k', SEG, 'producer', 60_000);
    freed();
    await expect(cache.lookup('k', 'reader')).rejects.toMatchObject({ code: 'LM_SEGMENT' });
    cache.close();
  });

  it('refuses a time to live or key it cannot keep, naming the field (the host API has no hub in front)', async () => {
    const { pool } = fakePool();
    const cache = new SegmentCache(pool, () => undefined);
    for (const ttl of [0, -5, 1.5, Number.NaN, MAX_TTL_MS + 1, 2 ** 31]) {
      await expect(cache.publish('k', SEG, 'host', ttl)).rejects.toMatchObject({ code: 'LM_SEGMENT', details: expect.objectContaining({ field: 'ttlMs' }) });
    }
    for (const key of ['', 'with space', 'x'.repeat(257)]) {
      await expect(cache.publish(key, SEG, 'host', 1_000)).rejects.toMatchObject({ code: 'LM_SEGMENT', details: expect.objectContaining({ field: 'key' }) });
    }
  });
});
