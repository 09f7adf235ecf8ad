import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { AuditSink } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import type { OwnerSpaces } from './owner-space.js';
import type { SavedSegment } from './pool-index.js';
import type { PoolRoot } from './pool-root.js';
import type { SegmentAccess } from './segment-access.js';
import type { SegmentTable } from './segment-table.js';
import type { SegmentRecord } from './segment.js';
import { pages, unmount } from './tmpfs.js';

/** The parts of a pool a takeover fills in. */
export interface PoolParts {
  readonly dir: string;
  readonly root: PoolRoot;
  readonly table: SegmentTable;
  readonly space: OwnerSpaces;
  readonly access: SegmentAccess;
  readonly log: Logger;
  readonly audit: AuditSink;
}

/**
 * After a controller was killed: take over the pool it left (its index), keeping the
 * segments a running, adopted plugin owns or holds; free the rest, and every file or
 * tmpfs the index does not explain. Without an index (or a pool) nothing is kept.
 */
export async function takeOver(pool: PoolParts, running: ReadonlySet<string>): Promise<void> {
  const mounts = pool.root.found();
  if (!mounts) return;
  const saved = pool.table.saved();
  const kept = keptRecords(pool.dir, saved, running);
  for (const r of kept) {
    pool.table.add(r);
    pool.space.account(r.owner, pages(r.size));
  }
  await sweepPool(pool.dir, mounts, kept);
  for (const owner of pool.space.owners()) await pool.space.shrink(owner, false);
  for (const r of pool.table.all()) await pool.access.apply(r).catch(() => undefined);
  const dropped = saved.length - pool.table.size;
  if (saved.length) pool.log.info({ kept: pool.table.size, dropped }, 'took over the shared-memory pool of the earlier controller');
  if (dropped) pool.audit({ who: 'controller', action: 'segment reclaim', resource: 'pool', result: 'allowed', reason: `${dropped} segment(s) of the earlier controller freed: no running plugin owned or held them` });
  pool.table.save();
}

/**
 * What a controller keeps of the pool a killed one left (its index, `saved`): the segments
 * whose file is still there and that a running (adopted) plugin owns or holds, each holding
 * only its running holders. Pure but for the existence checks.
 */
export function keptRecords(dir: string, saved: readonly SavedSegment[], running: ReadonlySet<string>): SegmentRecord[] {
  const kept: SegmentRecord[] = [];
  for (const s of saved) {
    const holders = new Map(s.holders.filter(([p]) => running.has(p)));
    if (!existsSync(path.join(dir, s.owner, s.id))) continue;
    if (!running.has(s.owner) && holders.size === 0) continue;
    kept.push({ id: s.id, owner: s.owner, size: s.size, readOnly: s.readOnly, holders, createdAt: s.createdAt });
  }
  return kept;
}

/**
 * Remove what the kept records do not explain: every owner's tmpfs of which nothing is kept
 * (unmounted), and in the others every file that is not a kept segment.
 */
export async function sweepPool(dir: string, mounts: readonly string[], kept: readonly SegmentRecord[]): Promise<void> {
  const byOwner = new Map<string, Set<string>>();
  for (const r of kept) byOwner.set(r.owner, (byOwner.get(r.owner) ?? new Set()).add(r.id));
  for (const m of mounts) if (m !== dir && !byOwner.has(path.basename(m))) await unmount(m);
  for (const [owner, ids] of byOwner) {
    let names: string[];
    try {
      names = readdirSync(path.join(dir, owner));
    } catch {
      continue;
    }
    for (const n of names) if (!ids.has(n)) rmSync(path.join(dir, owner, n), { force: true, recursive: true });
  }
}
