import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { Decision } from '../hub/acl.js';
import type { SegmentMsg, SegmentRef } from '../hub/protocol.js';
import type { SegmentBroker } from '../hub/segments.js';
import type { Logger } from '../log.js';
import { frameStructured, unframeStructured, type Format, type MessageType } from '../memory/bridge.js';
import { SegmentCache } from '../memory/cache.js';
import { HOST_ACTOR, SharedMemoryPool } from '../memory/pool.js';
import { removeLeftPool } from '../memory/tmpfs.js';
import type { Access, SegmentHandle, SegmentInfo } from '../memory/segment.js';
import type { Home } from './home.js';
import { isUp } from './managed.js';
import type { PluginRegistry } from './registry.js';

/** Where a home's pool and its records are. */
export function poolPaths(home: Home): { dir: string; indexFile: string } {
  return { dir: path.join(home.dir, 'pool'), indexFile: path.join(home.dir, 'segments.json') };
}

/** Remove the pool a killed controller of this home left, when no controller runs there (see removeLeftPool). */
export function removeLeftPoolOf(home: Home): Promise<number> {
  const { dir, indexFile } = poolPaths(home);
  return removeLeftPool(dir, indexFile);
}

/** The pool's default size, and the most one plugin's segments may hold whatever its memory limit. */
export const DEFAULT_POOL_BYTES = 1024 * 1024 * 1024;

export interface SegmentsOptions {
  readonly home: Home;
  readonly log: Logger;
  readonly audit: AuditSink;
  readonly registry: PluginRegistry;
  readonly idsOf: (pluginId: string) => [number, number];
  /** The pool's size in bytes (default 1 GiB). */
  readonly poolBytes?: number;
  /** The most one plugin's segments may hold (default: the pool's size); never more than its resources.maxMemoryMB. */
  readonly maxPluginBytes?: number;
}

const MB = 1024 * 1024;

/**
 * The controller's shared-memory part: the pool in `<home>/pool` (mounted on first use),
 * the segment cache, and the hub's broker for `segment` messages and handles in messages.
 * A plugin's quota is its resources.maxMemoryMB (it pays for the pages it touches in its
 * own memory cgroup anyway), at most maxPluginBytes. See docs/shared-memory.md.
 */
export class Segments implements SegmentBroker {
  readonly pool: SharedMemoryPool;
  readonly cache: SegmentCache;
  private adopted?: Promise<void>;

  constructor(private readonly opts: SegmentsOptions) {
    const max = opts.poolBytes ?? DEFAULT_POOL_BYTES;
    this.pool = new SharedMemoryPool({
      ...poolPaths(opts.home),
      log: opts.log.child({ component: 'pool' }),
      audit: opts.audit,
      idsOf: opts.idsOf,
      maxBytes: max,
      quotaOf: (id) => Math.min(opts.maxPluginBytes ?? max, (opts.registry.find(id)?.loaded.manifest.resources.maxMemoryMB ?? 0) * MB),
      isLive: (id) => {
        const m = opts.registry.find(id);
        return m !== undefined && isUp(m);
      },
    });
    this.cache = new SegmentCache(this.pool, opts.audit);
  }

  /** The host folder to bind-mount into a plugin whose manifest sets sharedMemory (mounted now if it was not). */
  async mountFor(pluginId: string): Promise<string | undefined> {
    if (!this.opts.registry.get(pluginId).loaded.manifest.coordination.sharedMemory) return undefined;
    await this.pool.ensure();
    return this.pool.dir;
  }

  /** Once, after adoption: keep the segments of the earlier controller that running plugins own or hold. */
  adopt(): Promise<void> {
    this.adopted ??= this.pool.adopt(new Set(this.opts.registry.records().filter(isUp).map((m) => m.loaded.manifest.id))).catch((err: unknown) => {
      this.opts.log.warn({ err: String(err) }, 'could not take over the shared-memory pool of the earlier controller');
    });
    return this.adopted;
  }

  // --- the hub's broker -----------------------------------------------------------------------

  async request(pluginId: string, m: SegmentMsg): Promise<unknown> {
    const { pool } = this;
    switch (m.op) {
      case 'allocate':
        return pool.allocate(m.size!, pluginId);
      case 'free':
        await pool.deallocate(m.segment!, pluginId);
        return { segment: m.segment };
      case 'resize':
        return pool.resize(m.segment!, m.size!, pluginId);
      case 'readonly':
        return pool.setReadOnly(m.segment!, pluginId);
      case 'share':
        for (const p of m.plugins!) this.checkReceiver(p);
        return pool.setAccessibleTo(m.segment!, m.plugins!, pluginId, m.access ?? 'read');
      case 'release':
        await pool.releaseHold(m.segment!, pluginId);
        return { segment: m.segment };
      case 'list':
        return { segments: pool.list(pluginId) };
      case 'publish':
        return this.cache.publish(m.key!, m.segment!, pluginId, m.ttlMs!);
      case 'lookup':
        return this.cache.lookup(m.key!, pluginId);
    }
  }

  async pass(sender: string, receiver: string, refs: readonly SegmentRef[]): Promise<Decision> {
    try {
      this.checkReceiver(receiver);
    } catch (err) {
      return { allowed: false, code: (err as LogoMeshError).code, reason: (err as Error).message };
    }
    for (const ref of refs) {
      const handle = this.pool.handle(ref.id);
      const held = sender === HOST_ACTOR ? (handle ? 'write' : undefined) : this.pool.accessOf(ref.id, sender);
      if (!handle || !held) return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `${who(sender)} does not hold segment ${ref.id}, so it cannot send it` };
      const has = this.pool.accessOf(ref.id, receiver);
      const wants: Access = ref.grant ?? 'read';
      if (has === 'write' || (has === 'read' && wants === 'read')) continue;
      if (!ref.grant) return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `plugin ${receiver} has no access to segment ${ref.id}; its owner may send it with "grant"` };
      if (sender !== HOST_ACTOR && sender !== handle.owner) return { allowed: false, code: 'LM_PERMISSION_DENIED', reason: `only the owner of segment ${ref.id} (${handle.owner}) may grant access to it; ${who(sender)} asked` };
      try {
        await this.pool.grant(ref.id, receiver, sender, wants);
      } catch (err) {
        return { allowed: false, code: (err as LogoMeshError).code ?? 'LM_MEMORY_POOL', reason: (err as Error).message };
      }
    }
    return { allowed: true };
  }

  // --- the host application's API (Controller.memory) ---------------------------------------------

  allocate(size: number, owner: string = HOST_ACTOR): Promise<SegmentHandle> {
    if (owner !== HOST_ACTOR) this.checkReceiver(owner);
    return this.pool.allocate(size, owner, HOST_ACTOR);
  }

  deallocate(segment: string): Promise<void> {
    return this.pool.deallocate(segment, HOST_ACTOR);
  }

  resize(segment: string, size: number): Promise<SegmentHandle> {
    return this.pool.resize(segment, size, HOST_ACTOR);
  }

  setReadOnly(segment: string): Promise<SegmentHandle> {
    return this.pool.setReadOnly(segment, HOST_ACTOR);
  }

  setAccessibleTo(segment: string, pluginIds: readonly string[], access: Access = 'read'): Promise<SegmentHandle> {
    for (const p of pluginIds) this.checkReceiver(p);
    return this.pool.setAccessibleTo(segment, pluginIds, HOST_ACTOR, access);
  }

  list(): SegmentInfo[] {
    return this.pool.list();
  }

  /**
   * The data bridge's writeStructured: `value` in `fmt`, with the bridge's header, at the start
   * of the segment. Returns the bytes written. `message`: a declared message type for protobuf.
   */
  writeStructured(segment: string, value: unknown, fmt: Format = 'json', message?: MessageType): number {
    const h = this.known(segment);
    const bytes = frameStructured(value, fmt, message);
    if (bytes.length > h.size) throw new LogoMeshError('LM_INVALID_ARGUMENT', `the data takes ${bytes.length} bytes in ${fmt}; segment ${segment} has ${h.size}`, { field: 'value', expected: `at most ${h.size} bytes`, found: `${bytes.length} bytes` });
    if (h.readOnly) throw new LogoMeshError('LM_SEGMENT', `segment ${segment} is read-only`, { field: 'segment', expected: 'a writable segment', found: 'read-only' });
    const fd = openSync(path.join(this.pool.dir, h.path), 'r+');
    try {
      return writeSync(fd, bytes, 0, bytes.length, 0);
    } finally {
      closeSync(fd);
    }
  }

  /** The data bridge's readStructured: the value the segment holds (its format from the header; `fmt`, when given, must match). */
  readStructured(segment: string, fmt?: Format, message?: MessageType): unknown {
    const h = this.known(segment);
    const buf = Buffer.alloc(h.size);
    const fd = openSync(path.join(this.pool.dir, h.path), 'r');
    try {
      readSync(fd, buf, 0, h.size, 0);
    } finally {
      closeSync(fd);
    }
    return unframeStructured(buf, fmt, message).value;
  }

  /**
   * The spec's cacheSerializedData: `value` written in `fmt` into a new segment of the host's,
   * published read-only under `key` for `ttlMs`: plugins find it with a `lookup` and map it.
   */
  async cacheSerializedData(key: string, value: unknown, fmt: Format, ttlMs: number): Promise<SegmentHandle> {
    const bytes = frameStructured(value, fmt);
    const h = await this.pool.allocate(bytes.length, HOST_ACTOR, HOST_ACTOR);
    this.writeStructured(h.id, value, fmt);
    return this.cache.publish(key, h.id, HOST_ACTOR, ttlMs);
  }

  private known(segment: string): SegmentHandle {
    const h = this.pool.handle(segment);
    if (!h) throw new LogoMeshError('LM_SEGMENT', `no segment ${String(segment).slice(0, 64)} in the pool`, { field: 'segment', expected: 'a segment of the pool', found: String(segment).slice(0, 64) });
    return h;
  }

  /** A plugin stopped: see SharedMemoryPool.pluginGone (unload: its segments go even if held). */
  pluginGone(pluginId: string, unload = false): Promise<void> {
    return this.pool.pluginGone(pluginId, !unload);
  }

  async close(): Promise<void> {
    this.cache.close();
    await this.pool.close();
  }

  /** A receiver must be a loaded plugin that sets sharedMemory: only then is the pool in its container. */
  private checkReceiver(pluginId: string): void {
    if (pluginId === HOST_ACTOR) return;
    const m = this.opts.registry.find(pluginId);
    if (!m) throw new LogoMeshError('LM_PLUGIN_NOT_FOUND', `no plugin ${pluginId} is loaded`, { plugin: pluginId });
    if (!m.loaded.manifest.coordination.sharedMemory) throw new LogoMeshError('LM_PERMISSION_DENIED', `plugin ${pluginId} does not set coordination.sharedMemory: true, so it cannot map segments`, { plugin: pluginId });
  }
}

function who(actor: string): string {
  return actor === HOST_ACTOR ? 'the host' : `plugin ${actor}`;
}
