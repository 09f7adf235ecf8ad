import { mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { setAcl } from './acl.js';
import { readIndex, writeIndex } from './pool-index.js';
import { keptRecords, sweepPool } from './pool-takeover.js';
import { copySegmentFile, createSegmentFile, truncateSegmentFile } from './segment-files.js';
import { accessOf, checkSegmentId, handleOf, infoOf, newSegmentId, type Access, type SegmentHandle, type SegmentInfo, type SegmentRecord } from './segment.js';
import { OwnerSpaces } from './owner-space.js';
import { checkPropagation } from './propagation.js';
import { mountTmpfs, pages, tmpfsMountsUnder, unmount } from './tmpfs.js';

export interface PoolOptions {
  /** The pool's folder on the host: a tmpfs of its own is mounted there, and one per owning plugin under it. */
  readonly dir: string;
  /** Where the pool's records are kept for a controller that comes after a killed one. */
  readonly indexFile: string;
  readonly log: Logger;
  readonly audit: AuditSink;
  /** A plugin's own user and group. */
  readonly idsOf: (pluginId: string) => [uid: number, gid: number];
  /** What one plugin's segments may add up to, in bytes. */
  readonly quotaOf: (pluginId: string) => number;
  /** What all segments may add up to, in bytes. */
  readonly maxBytes: number;
  /** Is this plugin running now? A segment whose owner is gone lives on while a running plugin holds it. */
  readonly isLive: (pluginId: string) => boolean;
}

/** Who acts: a plugin id, or the host application (the controller's own API), which may act on any segment. */
export type Actor = string;
export const HOST_ACTOR = 'host';

/**
 * The shared-memory pool (the spec's SharedMemoryPool): a tmpfs the controller owns, with one
 * tmpfs per owning plugin under it whose size is always exactly what that plugin has
 * allocated, so the kernel itself refuses to let a plugin grow its segments past what the
 * controller accounted (quota per plugin and for the pool, LM_MEMORY_QUOTA). Each segment is
 * a file owned by root, in the owner's group, whose POSIX ACL names the plugin users that may
 * open it and how: access is the kernel's decision at every open. Changes are made one at a
 * time (they spawn mount and setfacl) and recorded in the index for adoption.
 */
export class SharedMemoryPool {
  private readonly segments = new Map<string, SegmentRecord>();
  private readonly space: OwnerSpaces;
  private chain: Promise<unknown> = Promise.resolve();
  private mounted = false;

  constructor(private readonly opts: PoolOptions) {
    this.space = new OwnerSpaces({ dir: opts.dir, maxBytes: opts.maxBytes, audit: opts.audit, quotaOf: (owner) => (owner === HOST_ACTOR ? opts.maxBytes : opts.quotaOf(owner)) });
  }

  get dir(): string {
    return this.opts.dir;
  }

  /** Mount the pool's root now (idempotent): before the first container that maps it is created. */
  ensure(): Promise<void> {
    return this.exclusive(() => this.mountRoot());
  }

  allocate(size: number, owner: string, by: Actor = owner): Promise<SegmentHandle> {
    return this.exclusive(async () => {
      this.mayOwn(owner, by);
      checkSize(size, this.opts.maxBytes);
      await this.mountRoot();
      await this.space.reserve(owner, pages(size), 'allocate');
      const id = newSegmentId();
      const file = this.fileOf(owner, id);
      try {
        createSegmentFile(file, this.gidOf(owner), size);
        const r: SegmentRecord = { id, owner, size, readOnly: false, holders: new Map(), createdAt: Date.now() };
        await this.applyAcl(r);
        this.segments.set(id, r);
      } catch (err) {
        rmSync(file, { force: true });
        await this.release(owner, pages(size));
        throw err;
      }
      this.save();
      this.opts.audit({ who: by, action: 'segment allocate', resource: id, result: 'allowed', reason: `${size} bytes owned by ${owner}` });
      return handleOf(this.segments.get(id)!);
    });
  }

  deallocate(id: string, by: Actor): Promise<void> {
    return this.exclusive(async () => {
      const r = this.owned(id, by, 'free');
      await this.free(r, by, 'freed by its owner');
    });
  }

  /** Change a segment's size; its first min(old, new) bytes stay as they were. */
  resize(id: string, size: number, by: Actor): Promise<SegmentHandle> {
    return this.exclusive(async () => {
      const r = this.owned(id, by, 'resize');
      if (r.readOnly) throw new LogoMeshError('LM_SEGMENT', `segment ${id} is read-only: it cannot be resized`, { field: 'segment', expected: 'a writable segment', found: 'read-only' });
      checkSize(size, this.opts.maxBytes);
      const delta = pages(size) - pages(r.size);
      if (delta > 0) await this.space.reserve(r.owner, delta, 'resize');
      truncateSegmentFile(this.fileOf(r.owner, id), size);
      if (delta < 0) await this.release(r.owner, -delta);
      r.size = size;
      this.save();
      this.opts.audit({ who: by, action: 'segment resize', resource: id, result: 'allowed', reason: `${size} bytes` });
      return handleOf(r);
    });
  }

  /**
   * Make a segment read-only for everyone, its owner included. Its bytes are copied to a new
   * file (a new inode) that takes its name, so a descriptor opened for writing earlier,
   * which the kernel would let write on, reaches only the old copy: whoever opens the
   * segment from now on sees bytes nobody can change.
   */
  setReadOnly(id: string, by: Actor): Promise<SegmentHandle> {
    return this.exclusive(async () => {
      const r = this.owned(id, by, 'make read-only');
      if (r.readOnly) return handleOf(r);
      const file = this.fileOf(r.owner, id);
      const copy = `${file}.ro`;
      // The copy needs room beside the original until the original's last mapping closes.
      await this.space.grow(r.owner, pages(r.size));
      try {
        copySegmentFile(file, copy, this.gidOf(r.owner));
        r.readOnly = true;
        await this.applyAcl(r, copy);
        renameSync(copy, file);
      } catch (err) {
        r.readOnly = false;
        rmSync(copy, { force: true });
        throw err;
      } finally {
        await this.space.shrink(r.owner, false);
      }
      this.save();
      this.opts.audit({ who: by, action: 'segment read-only', resource: id, result: 'allowed' });
      return handleOf(r);
    });
  }

  /**
   * The spec's setAccessibleTo: exactly these plugins (besides the owner) may open the
   * segment from now on, with `access`. One dropped from the list can no longer open it; a
   * mapping it already has stays valid until it closes it (the kernel checks at open).
   */
  setAccessibleTo(id: string, pluginIds: readonly string[], by: Actor, access: Access = 'read'): Promise<SegmentHandle> {
    return this.exclusive(async () => {
      const r = this.owned(id, by, 'share');
      const before = new Map(r.holders);
      r.holders.clear();
      for (const p of pluginIds) if (p !== r.owner) r.holders.set(p, access);
      try {
        await this.applyAcl(r);
      } catch (err) {
        r.holders.clear();
        for (const [p, a] of before) r.holders.set(p, a);
        throw err;
      }
      this.save();
      this.opts.audit({ who: by, action: 'segment share', resource: id, result: 'allowed', reason: `${access}: ${pluginIds.join(', ') || 'nobody'}` });
      return handleOf(r);
    });
  }

  /** Give one more plugin access (a handle sent with a grant); audited as `segment grant`. */
  grant(id: string, pluginId: string, by: Actor, access: Access = 'read'): Promise<void> {
    return this.exclusive(async () => {
      const r = this.owned(id, by, 'grant');
      if (pluginId === r.owner || r.holders.get(pluginId) === access) return;
      const before = r.holders.get(pluginId);
      r.holders.set(pluginId, access);
      try {
        await this.applyAcl(r);
      } catch (err) {
        if (before) r.holders.set(pluginId, before);
        else r.holders.delete(pluginId);
        throw err;
      }
      this.save();
      this.opts.audit({ who: by, action: 'segment grant', resource: id, result: 'allowed', reason: `${access} to ${pluginId}` });
    });
  }

  /** A holder gives its access up. A segment whose owner is gone is freed with its last holder. */
  releaseHold(id: string, pluginId: string): Promise<void> {
    return this.exclusive(async () => {
      const r = this.get(id);
      if (!r.holders.delete(pluginId)) throw new LogoMeshError('LM_SEGMENT', `plugin ${pluginId} holds no segment ${id}`, { field: 'segment', expected: 'a segment it holds', found: id });
      if (!this.live(r.owner) && !this.heldByLive(r)) await this.free(r, pluginId, 'released by its last holder; its owner is gone');
      else await this.applyAcl(r);
      this.save();
    });
  }

  /** The access a plugin has to a segment now, or undefined (unknown segment included). */
  accessOf(id: string, pluginId: string): Access | undefined {
    const r = this.segments.get(id);
    return r && accessOf(r, pluginId);
  }

  handle(id: string): SegmentHandle | undefined {
    const r = this.segments.get(id);
    return r && handleOf(r);
  }

  list(pluginId?: string): SegmentInfo[] {
    const now = Date.now();
    return [...this.segments.values()].filter((r) => !pluginId || accessOf(r, pluginId)).map((r) => infoOf(r, now)).sort((a, b) => a.createdAt - b.createdAt);
  }

  /** The bytes (whole pages) a plugin's segments hold now. */
  usedBy(pluginId: string): number {
    return this.space.usedBy(pluginId);
  }

  /**
   * A plugin stopped (exited, crashed, was stopped or unloaded): it loses what it held, and
   * its own segments are freed unless a running plugin holds them (`keepHeld`, not on
   * unload). The ones kept are freed with their last holder.
   */
  pluginGone(pluginId: string, keepHeld = true): Promise<void> {
    return this.exclusive(async () => {
      for (const r of [...this.segments.values()]) {
        if (r.holders.delete(pluginId)) {
          if (!this.live(r.owner) && !this.heldByLive(r)) await this.free(r, 'controller', `${pluginId}, its last holder, stopped; its owner is gone`);
          else await this.applyAcl(r).catch((err: unknown) => this.opts.log.warn({ segment: r.id, err: String(err) }, 'could not take a stopped plugin off a segment'));
        }
      }
      for (const r of [...this.segments.values()]) {
        if (r.owner !== pluginId) continue;
        if (keepHeld && this.heldByLive(r)) continue;
        await this.free(r, 'controller', `its owner ${pluginId} stopped`);
      }
      this.save();
    });
  }

  /**
   * After a controller was killed: take over the pool it left (its index), keeping the
   * segments a running, adopted plugin owns or holds; free the rest, and every file or
   * tmpfs the index does not explain. Without an index (or a pool) nothing is kept.
   */
  adopt(running: ReadonlySet<string>): Promise<void> {
    return this.exclusive(async () => {
      const mounts = tmpfsMountsUnder(this.opts.dir);
      if (!mounts.includes(this.opts.dir)) return;
      this.mounted = true;
      const saved = readIndex(this.opts.indexFile);
      const kept = keptRecords(this.opts.dir, saved, running);
      for (const r of kept) {
        this.segments.set(r.id, r);
        this.space.account(r.owner, pages(r.size));
      }
      await sweepPool(this.opts.dir, mounts, kept);
      for (const owner of this.space.owners()) await this.space.shrink(owner, false);
      for (const r of this.segments.values()) await this.applyAcl(r).catch(() => undefined);
      const dropped = saved.length - this.segments.size;
      if (saved.length) this.opts.log.info({ kept: this.segments.size, dropped }, 'took over the shared-memory pool of the earlier controller');
      if (dropped) this.opts.audit({ who: 'controller', action: 'segment reclaim', resource: 'pool', result: 'allowed', reason: `${dropped} segment(s) of the earlier controller freed: no running plugin owned or held them` });
      this.save();
    });
  }

  /** Free every segment and unmount the pool. Idempotent. */
  close(): Promise<void> {
    return this.exclusive(async () => {
      this.segments.clear();
      this.space.clear();
      for (const m of tmpfsMountsUnder(this.opts.dir)) await unmount(m);
      rmSync(this.opts.dir, { recursive: true, force: true });
      rmSync(this.opts.indexFile, { force: true });
      this.mounted = false;
    });
  }

  // --- internals ------------------------------------------------------------------------------

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async mountRoot(): Promise<void> {
    if (this.mounted) return;
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o711 });
    if (!tmpfsMountsUnder(this.opts.dir).includes(this.opts.dir)) {
      checkPropagation(this.opts.dir);
      await mountTmpfs(this.opts.dir, 64 * 1024, 'logomesh-pool', true);
    }
    this.mounted = true;
  }

  private fileOf(owner: string, id: string): string {
    return path.join(this.opts.dir, owner, id);
  }

  private get(id: string): SegmentRecord {
    const r = this.segments.get(checkSegmentId(id));
    if (!r) throw new LogoMeshError('LM_SEGMENT', `no segment ${id} in the pool (never allocated, or freed)`, { field: 'segment', expected: 'a segment of the pool', found: id });
    return r;
  }

  /** The segment, if `by` owns it (the host acts on any). */
  private owned(id: string, by: Actor, what: string): SegmentRecord {
    const r = this.get(id);
    if (by !== HOST_ACTOR && by !== r.owner) {
      this.opts.audit({ who: by, action: `segment ${what}`, resource: id, result: 'denied', code: 'LM_SEGMENT', reason: `owned by ${r.owner}` });
      throw new LogoMeshError('LM_SEGMENT', `only the owner of segment ${id} (${r.owner}) may ${what} it; ${by} asked`, { field: 'segment', expected: `its owner ${r.owner}`, found: by });
    }
    return r;
  }

  private mayOwn(owner: string, by: Actor): void {
    if (by !== HOST_ACTOR && by !== owner) throw new LogoMeshError('LM_SEGMENT', `plugin ${by} cannot allocate a segment owned by ${owner}`, { field: 'owner', expected: by, found: owner });
  }

  /** Account `bytes` less to `owner`; its tmpfs goes with its last segment. */
  private async release(owner: string, bytes: number): Promise<void> {
    await this.space.release(owner, bytes, ![...this.segments.values()].some((r) => r.owner === owner));
  }

  private async free(r: SegmentRecord, by: Actor, why: string): Promise<void> {
    this.segments.delete(r.id);
    rmSync(this.fileOf(r.owner, r.id), { force: true });
    await this.release(r.owner, pages(r.size));
    this.save();
    this.opts.audit({ who: by, action: 'segment free', resource: r.id, result: 'allowed', reason: why });
  }

  private live(pluginId: string): boolean {
    return pluginId === HOST_ACTOR || this.opts.isLive(pluginId);
  }

  private heldByLive(r: SegmentRecord): boolean {
    return [...r.holders.keys()].some((p) => this.opts.isLive(p));
  }

  /** The host application's segments are root's group; a plugin's are its own group's. */
  private gidOf(owner: string): number {
    return owner === HOST_ACTOR ? 0 : this.opts.idsOf(owner)[1];
  }

  private async applyAcl(r: SegmentRecord, file = this.fileOf(r.owner, r.id)): Promise<void> {
    const owner = r.owner === HOST_ACTOR ? [] : [[r.owner, !r.readOnly] as const];
    const entries = [...owner, ...[...r.holders].map(([p, a]) => [p, a === 'write' && !r.readOnly] as const)];
    await setAcl(file, entries.map(([p, write]) => ({ uid: this.opts.idsOf(p)[0], write })));
  }

  private save(): void {
    writeIndex(this.opts.indexFile, [...this.segments.values()]);
  }
}

function checkSize(size: number, max: number): void {
  if (!Number.isSafeInteger(size) || size < 1 || size > max) {
    throw new LogoMeshError('LM_SEGMENT', `a segment's size must be a whole number of bytes from 1 to ${max} (the pool's size), found ${String(size).slice(0, 32)}`, { field: 'size', expected: `1 to ${max}`, found: String(size).slice(0, 32) });
  }
}
