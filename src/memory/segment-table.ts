import { rmSync } from 'node:fs';
import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import { actsFor, type Actor } from './actor.js';
import { readIndex, writeIndex, type SavedSegment } from './pool-index.js';
import { accessOf, checkSegmentId, handleOf, infoOf, type Access, type SegmentHandle, type SegmentInfo, type SegmentRecord } from './segment.js';

/**
 * The pool's records of its segments, their one owner: looked up by id with the pool's
 * errors (LM_SEGMENT, and an audited denial for one who does not own it), and written to the
 * index (pool-index.ts) whenever the pool saves, for a controller that comes after a killed one.
 */
export class SegmentTable {
  private readonly records = new Map<string, SegmentRecord>();

  constructor(
    private readonly indexFile: string,
    private readonly audit: AuditSink,
  ) {}

  get size(): number {
    return this.records.size;
  }

  all(): SegmentRecord[] {
    return [...this.records.values()];
  }

  add(r: SegmentRecord): void {
    this.records.set(r.id, r);
  }

  delete(id: string): void {
    this.records.delete(id);
  }

  /** Does `owner` own any segment still? */
  owns(owner: string): boolean {
    return this.all().some((r) => r.owner === owner);
  }

  /** The segment with this id (checked: it comes from a message or the CLI); LM_SEGMENT when there is none. */
  get(id: string): SegmentRecord {
    const r = this.records.get(checkSegmentId(id));
    if (!r) throw new LogoMeshError('LM_SEGMENT', `no segment ${id} in the pool (never allocated, or freed)`, { field: 'segment', expected: 'a segment of the pool', found: id });
    return r;
  }

  /** The segment, if `by` owns it (the host acts on any); a denial is audited as `segment <what>`. */
  owned(id: string, by: Actor, what: string): SegmentRecord {
    const r = this.get(id);
    if (!actsFor(by, r.owner)) {
      this.audit({ who: by, action: `segment ${what}`, resource: id, result: 'denied', code: 'LM_SEGMENT', reason: `owned by ${r.owner}` });
      throw new LogoMeshError('LM_SEGMENT', `only the owner of segment ${id} (${r.owner}) may ${what} it; ${by} asked`, { field: 'segment', expected: `its owner ${r.owner}`, found: by });
    }
    return r;
  }

  /** The access a plugin has to a segment now, or undefined (unknown segment included). */
  accessOf(id: string, pluginId: string): Access | undefined {
    const r = this.records.get(id);
    return r && accessOf(r, pluginId);
  }

  handle(id: string): SegmentHandle | undefined {
    const r = this.records.get(id);
    return r && handleOf(r);
  }

  /** The rows of `logomesh segments`, oldest first: all, or those a plugin owns or holds. */
  list(pluginId?: string): SegmentInfo[] {
    const now = Date.now();
    return this.all().filter((r) => !pluginId || accessOf(r, pluginId)).map((r) => infoOf(r, now)).sort((a, b) => a.createdAt - b.createdAt);
  }

  /** The records the index holds now: an earlier controller's, before this one saves. */
  saved(): SavedSegment[] {
    return readIndex(this.indexFile);
  }

  save(): void {
    writeIndex(this.indexFile, this.records.values());
  }

  clear(): void {
    this.records.clear();
  }

  removeIndex(): void {
    rmSync(this.indexFile, { force: true });
  }
}
