import { setAcl } from './acl.js';
import { HOST_ACTOR } from './actor.js';
import type { Access, SegmentRecord } from './segment.js';

/**
 * Who may open a segment, kept in step on both sides: the record's holders, and its file's
 * POSIX ACL, which the kernel checks at every open. The owner writes until the segment is
 * read-only (the host application's segments have no owner entry: root owns the file);
 * holders read or write as granted, and only read once it is read-only.
 */
export class SegmentAccess {
  constructor(
    private readonly idsOf: (pluginId: string) => [uid: number, gid: number],
    private readonly fileOf: (r: SegmentRecord) => string,
  ) {}

  /** Write the record's rights into the ACL of its file, or of `file` (a copy about to take its place). */
  async apply(r: SegmentRecord, file = this.fileOf(r)): Promise<void> {
    const owner = r.owner === HOST_ACTOR ? [] : [[r.owner, !r.readOnly] as const];
    const entries = [...owner, ...[...r.holders].map(([p, a]) => [p, a === 'write' && !r.readOnly] as const)];
    await setAcl(file, entries.map(([p, write]) => ({ uid: this.idsOf(p)[0], write })));
  }

  /** Change the holders (`change` edits them in place) and the ACL; when the ACL cannot be set, the holders are as they were. */
  async changeHolders(r: SegmentRecord, change: (holders: Map<string, Access>) => void): Promise<void> {
    const before = new Map(r.holders);
    change(r.holders);
    try {
      await this.apply(r);
    } catch (err) {
      r.holders.clear();
      for (const [p, a] of before) r.holders.set(p, a);
      throw err;
    }
  }
}
