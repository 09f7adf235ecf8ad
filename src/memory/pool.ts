import { renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { actsFor, HOST_ACTOR, type Actor } from './actor.js';
import { OwnerSpaces } from './owner-space.js';
import { PoolRoot } from './pool-root.js';
import { takeOver } from './pool-takeover.js';
import { SegmentAccess } from './segment-access.js';
import { copySegmentFile, createSegmentFile, truncateSegmentFile } from './segment-files.js';
import { SegmentTable } from './segment-table.js';
import { checkSegmentSize, handleOf, newSegmentId, type Access, type SegmentHandle, type SegmentInfo, type SegmentRecord } from './segment.js';
import { SerialQueue } from './serial-queue.js';
import { pages } from './tmpfs.js';

// Who acts, beside the pool it acts on: the controller imports both from here.
export { HOST_ACTOR, type Actor } from './actor.js';

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

/**
 * The shared-memory pool (the spec's SharedMemoryPool): a tmpfs the controller owns
 * (pool-root.ts), with one tmpfs per owning plugin under it whose size is always exactly what
 * that plugin has allocated (owner-space.ts), so the kernel itself refuses to let a plugin
 * grow its segments past what the controller accounted (quota per plugin and for the pool,
 * LM_MEMORY_QUOTA). Each segment is a file owned by root, in the owner's group, whose POSIX
 * ACL names the plugin users that may open it and how (segment-access.ts): access is the
 * kernel's decision at every open. Changes are made one at a time (they spawn mount and
 * setfacl) and recorded in the index for adoption (segment-table.ts).
 */
export class SharedMemoryPool {
  private readonly table: SegmentTable;
  private readonly space: OwnerSpaces;
  private readonly root: PoolRoot;
  private readonly access: SegmentAccess;
  private readonly queue = new SerialQueue();

  constructor(private readonly opts: PoolOptions) {
    this.table = new SegmentTable(opts.indexFile, opts.audit);
    this.space = new OwnerSpaces({ dir: opts.dir, maxBytes: opts.maxBytes, audit: opts.audit, quotaOf: (owner) => (owner === HOST_ACTOR ? opts.maxBytes : opts.quotaOf(owner)) });
    this.root = new PoolRoot(opts.dir);
    this.access = new SegmentAccess(opts.idsOf, (r) => this.fileOf(r.owner, r.id));
  }

  get dir(): string {
    return this.opts.dir;
  }

  /** Mount the pool's root now (idempotent): before the first container that maps it is created. */
  ensure(): Promise<void> {
    return this.queue.run(() => this.root.ensure());
  }

  allocate(size: number, owner: string, by: Actor = owner): Promise<SegmentHandle> {
    return this.queue.run(async () => {
      mayOwn(owner, by);
      checkSegmentSize(size, this.opts.maxBytes);
      await this.root.ensure();
      await this.space.reserve(owner, pages(size), 'allocate');
      const id = newSegmentId();
      const file = this.fileOf(owner, id);
      try {
        createSegmentFile(file, this.gidOf(owner), size);
        const r: SegmentRecord = { id, owner, size, readOnly: false, holders: new Map(), createdAt: Date.now() };
        await this.access.apply(r);
        this.table.add(r);
      } catch (err) {
        rmSync(file, { force: true });
        await this.release(owner, pages(size));
        throw err;
      }
      this.table.save();
      this.opts.audit({ who: by, action: 'segment allocate', resource: id, result: 'allowed', reason: `${size} bytes owned by ${owner}` });
      return handleOf(this.table.get(id));
    });
  }

  deallocate(id: string, by: Actor): Promise<void> {
    return this.queue.run(async () => {
      const r = this.table.owned(id, by, 'free');
      await this.free(r, by, 'freed by its owner');
    });
  }

  /** Change a segment's size; its first min(old, new) bytes stay as they were. */
  resize(id: string, size: number, by: Actor): Promise<SegmentHandle> {
    return this.queue.run(async () => {
      const r = this.table.owned(id, by, 'resize');
      if (r.readOnly) throw new LogoMeshError('LM_SEGMENT', `segment ${id} is read-only: it cannot be resized`, { field: 'segment', expected: 'a writable segment', found: 'read-only' });
      checkSegmentSize(size, this.opts.maxBytes);
      const delta = pages(size) - pages(r.size);
      if (delta > 0) await this.space.reserve(r.owner, delta, 'resize');
      truncateSegmentFile(this.fileOf(r.owner, id), size);
      if (delta < 0) await this.release(r.owner, -delta);
      r.size = size;
      this.table.save();
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
    return this.queue.run(async () => {
      const r = this.table.owned(id, by, 'make read-only');
      if (r.readOnly) return handleOf(r);
      const file = this.fileOf(r.owner, id);
      const copy = `${file}.ro`;
      // The copy needs room beside the original until the original's last mapping closes.
      await this.space.grow(r.owner, pages(r.size));
      try {
        copySegmentFile(file, copy, this.gidOf(r.owner));
        r.readOnly = true;
        await this.access.apply(r, copy);
        renameSync(copy, file);
      } catch (err) {
        r.readOnly = false;
        rmSync(copy, { force: true });
        throw err;
      } finally {
        await this.space.shrink(r.owner, false);
      }
      this.table.save();
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
    return this.queue.run(async () => {
      const r = this.table.owned(id, by, 'share');
      await this.access.changeHolders(r, (holders) => {
        holders.clear();
        for (const p of pluginIds) if (p !== r.owner) holders.set(p, access);
      });
      this.table.save();
      this.opts.audit({ who: by, action: 'segment share', resource: id, result: 'allowed', reason: `${access}: ${pluginIds.join(', ') || 'nobody'}` });
      return handleOf(r);
    });
  }

  /** Give one more plugin access (a handle sent with a grant); audited as `segment grant`. */
  grant(id: string, pluginId: string, by: Actor, access: Access = 'read'): Promise<void> {
    return this.queue.run(async () => {
      const r = this.table.owned(id, by, 'grant');
      if (pluginId === r.owner || r.holders.get(pluginId) === access) return;
      await this.access.changeHolders(r, (holders) => {
        holders.set(pluginId, access);
      });
      this.table.save();
      this.opts.audit({ who: by, action: 'segment grant', resource: id, result: 'allowed', reason: `${access} to ${pluginId}` });
    });
  }

  /** A holder gives its access up. A segment whose owner is gone is freed with its last holder. */
  releaseHold(id: string, pluginId: string): Promise<void> {
    return this.queue.run(async () => {
      const r = this.table.get(id);
      if (!r.holders.delete(pluginId)) throw new LogoMeshError('LM_SEGMENT', `plugin ${pluginId} holds no segment ${id}`, { field: 'segment', expected: 'a segment it holds', found: id });
      if (!this.live(r.owner) && !this.heldByLive(r)) await this.free(r, pluginId, 'released by its last holder; its owner is gone');
      else await this.access.apply(r);
      this.table.save();
    });
  }

  /** The access a plugin has to a segment now, or undefined (unknown segment included). */
  accessOf(id: string, pluginId: string): Access | undefined {
    return this.table.accessOf(id, pluginId);
  }

  handle(id: string): SegmentHandle | undefined {
    return this.table.handle(id);
  }

  list(pluginId?: string): SegmentInfo[] {
    return this.table.list(pluginId);
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
    return this.queue.run(async () => {
      for (const r of this.table.all()) {
        if (r.holders.delete(pluginId)) {
          if (!this.live(r.owner) && !this.heldByLive(r)) await this.free(r, 'controller', `${pluginId}, its last holder, stopped; its owner is gone`);
          else await this.access.apply(r).catch((err: unknown) => this.opts.log.warn({ segment: r.id, err: String(err) }, 'could not take a stopped plugin off a segment'));
        }
      }
      for (const r of this.table.all()) {
        if (r.owner !== pluginId) continue;
        if (keepHeld && this.heldByLive(r)) continue;
        await this.free(r, 'controller', `its owner ${pluginId} stopped`);
      }
      this.table.save();
    });
  }

  /** After a controller was killed: take over the pool it left, keeping what running plugins own or hold (pool-takeover.ts). */
  adopt(running: ReadonlySet<string>): Promise<void> {
    const { dir, log, audit } = this.opts;
    return this.queue.run(() => takeOver({ dir, root: this.root, table: this.table, space: this.space, access: this.access, log, audit }, running));
  }

  /** Free every segment and unmount the pool. Idempotent. */
  close(): Promise<void> {
    return this.queue.run(async () => {
      this.table.clear();
      this.space.clear();
      await this.root.remove();
      this.table.removeIndex();
    });
  }

  // --- internals ------------------------------------------------------------------------------

  private fileOf(owner: string, id: string): string {
    return path.join(this.opts.dir, owner, id);
  }

  /** Account `bytes` less to `owner`; its tmpfs goes with its last segment. */
  private async release(owner: string, bytes: number): Promise<void> {
    await this.space.release(owner, bytes, !this.table.owns(owner));
  }

  private async free(r: SegmentRecord, by: Actor, why: string): Promise<void> {
    this.table.delete(r.id);
    rmSync(this.fileOf(r.owner, r.id), { force: true });
    await this.release(r.owner, pages(r.size));
    this.table.save();
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
}

function mayOwn(owner: string, by: Actor): void {
  if (!actsFor(by, owner)) throw new LogoMeshError('LM_SEGMENT', `plugin ${by} cannot allocate a segment owned by ${owner}`, { field: 'owner', expected: by, found: owner });
}
