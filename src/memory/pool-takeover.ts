import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { SavedSegment } from './pool-index.js';
import type { SegmentRecord } from './segment.js';
import { unmount } from './tmpfs.js';

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
