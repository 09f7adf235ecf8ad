import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { Actor } from './actor.js';
import type { SharedMemoryPool } from './pool.js';
import type { SegmentHandle } from './segment.js';

interface Entry {
  readonly segment: string;
  readonly publisher: Actor;
  readonly expiresAt: number;
  readonly timer: NodeJS.Timeout;
}

/** Keys a cache holds at once. */
const MAX_KEYS = 4096;
/** The longest time a key lives: a day (setTimeout's own limit is about 24.8 days, past which it fires at once). */
const CACHE_KEY = /^[\x21-\x7e]{1,256}$/;
export const MAX_TTL_MS = 86_400_000;

/**
 * The spec's cacheSerializedData: a segment published under a key for a time, found by key
 * and read by many, each mapping the same pages (nothing goes through the hub but the
 * handle). Publishing makes the segment read-only, so what readers map cannot change under
 * them. A lookup gives the reader read access (audited by the pool). When the time is up the
 * key goes; readers keep the access they got until the segment is freed by its owner (or
 * with its owner).
 */
export class SegmentCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly pool: SharedMemoryPool,
    private readonly audit: AuditSink,
  ) {}

  async publish(key: string, segment: string, by: Actor, ttlMs: number): Promise<SegmentHandle> {
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS) throw new LogoMeshError('LM_SEGMENT', `a cached segment's time to live must be 1 to ${MAX_TTL_MS} milliseconds, found ${String(ttlMs).slice(0, 32)}`, { field: 'ttlMs', expected: `1 to ${MAX_TTL_MS}`, found: String(ttlMs).slice(0, 32) });
    // The hub checks the same for plugins (src/hub/protocol.ts); this is for the host's API.
    if (typeof key !== 'string' || !CACHE_KEY.test(key)) throw new LogoMeshError('LM_SEGMENT', `a cache key must be 1 to 256 printable characters without spaces, found ${JSON.stringify(String(key).slice(0, 64))}`, { field: 'key', expected: '1 to 256 printable characters without spaces', found: String(key).slice(0, 64) });
    if (!this.entries.has(key) && this.entries.size >= MAX_KEYS) throw new LogoMeshError('LM_MEMORY_QUOTA', `the segment cache holds ${MAX_KEYS} keys, the most it keeps`, { field: 'key', expected: `at most ${MAX_KEYS} keys`, found: String(this.entries.size) });
    const handle = await this.pool.setReadOnly(segment, by);
    this.drop(key);
    const timer = setTimeout(() => {
      if (this.entries.get(key)?.segment !== segment) return;
      this.drop(key);
      this.audit({ who: 'controller', action: 'cache expire', resource: key, result: 'allowed', reason: `segment ${segment}` });
    }, ttlMs);
    timer.unref();
    this.entries.set(key, { segment, publisher: by, expiresAt: Date.now() + ttlMs, timer });
    this.audit({ who: by, action: 'cache publish', resource: key, result: 'allowed', reason: `segment ${segment} for ${ttlMs} ms` });
    return handle;
  }

  /** The segment under `key`, with read access given to `by`; LM_SEGMENT when there is none (never published, expired, or freed). */
  async lookup(key: string, by: Actor): Promise<SegmentHandle> {
    const e = this.entries.get(key);
    const handle = e && e.expiresAt > Date.now() ? this.pool.handle(e.segment) : undefined;
    if (!e || !handle) {
      if (e) this.drop(key);
      throw new LogoMeshError('LM_SEGMENT', `nothing is cached under '${key.slice(0, 64)}' (never published, expired, or its segment was freed)`, { field: 'key', expected: 'a key published and not expired', found: key.slice(0, 64) });
    }
    if (by !== handle.owner && this.pool.accessOf(e.segment, by) === undefined) await this.pool.grant(e.segment, by, e.publisher, 'read');
    return handle;
  }

  close(): void {
    for (const key of [...this.entries.keys()]) this.drop(key);
  }

  private drop(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    clearTimeout(e.timer);
    this.entries.delete(key);
  }
}
