import { statSync } from 'node:fs';
import path from 'node:path';
import { auditLines, trailFiles } from '../audit/audit-files.js';
import { checkAudit, type AuditEntry } from '../audit/audit-log.js';

/** An audit entry with where it is in the trail (`audit.jsonl:12`): the link the timeline and the page use. */
export type AuditRow = AuditEntry & { readonly ref: string };

export interface AuditFilter {
  /** Entries by or about this plugin (its id as `who`, or the resource naming it). */
  readonly plugin?: string;
  readonly action?: string;
  readonly result?: string;
  /** ms since the epoch, inclusive. */
  readonly since?: number;
  readonly until?: number;
  /** Text anywhere in the entry (case-insensitive). */
  readonly text?: string;
  /** The newest this many (default 200, at most 1000). */
  readonly limit?: number;
}

export interface ChainStatus {
  readonly ok: boolean;
  readonly lines: number;
  readonly files: number;
  readonly breaks: { readonly file: string; readonly line: number; readonly why: string }[];
  readonly startsAfterRemovedFiles: boolean;
}

export function concerns(e: AuditEntry, plugin: string): boolean {
  return e.who === plugin || e.resource === plugin || e.resource.startsWith(`${plugin}.`) || e.resource.startsWith(`${plugin}:`);
}

/** The newest entries that match, newest first. Reads the trail line by line (it may be larger than memory). */
export function searchAudit(file: string, f: AuditFilter = {}): AuditRow[] {
  const limit = Math.min(Math.max(1, f.limit ?? 200), 1000);
  const text = f.text?.toLowerCase();
  const out: AuditRow[] = [];
  for (const l of auditLines(file)) {
    if (l.text === undefined) continue;
    let e: AuditEntry;
    try {
      e = JSON.parse(l.text) as AuditEntry;
    } catch {
      continue; // a damaged line: the chain status reports it
    }
    if (typeof e !== 'object' || e === null || typeof e.resource !== 'string' || typeof e.who !== 'string') continue;
    if (f.plugin && !concerns(e, f.plugin)) continue;
    if (f.action && e.action !== f.action) continue;
    if (f.result && e.result !== f.result) continue;
    if (f.since !== undefined && e.time < f.since) continue;
    if (f.until !== undefined && e.time > f.until) continue;
    if (text && !l.text.toLowerCase().includes(text)) continue;
    const { time, who, action, resource, result, code, reason, count } = e;
    out.push({ time, who, action, resource, result, ...(code ? { code } : {}), ...(reason ? { reason } : {}), ...(count ? { count } : {}), ref: `${path.basename(l.file)}:${l.line}` });
    if (out.length > limit) out.shift();
  }
  return out.reverse();
}

/**
 * searchAudit with its answers kept while the trail's files and sizes stay the same: pages
 * poll the timeline and the search every few seconds, and reading the whole trail each time
 * would cost the controller in proportion to the trail. At most 32 answers are kept.
 */
export class AuditReader {
  private readonly cache = new Map<string, AuditRow[]>();
  private key = '';

  constructor(private readonly file: string) {}

  search(f: AuditFilter): AuditRow[] {
    const key = trailKey(this.file);
    if (key !== this.key) {
      this.cache.clear();
      this.key = key;
    }
    const q = JSON.stringify(f);
    let rows = this.cache.get(q);
    if (!rows) {
      rows = searchAudit(this.file, f);
      if (this.cache.size >= 32) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(q, rows);
    }
    return rows;
  }
}

function trailKey(file: string): string {
  return trailFiles(file)
    .map((f) => `${f}:${sizeOf(f)}`)
    .join('|');
}

/**
 * The chain's verification (audit-log.ts checkAudit), cached while the trail's files and
 * sizes are the same: a page polling it costs one stat a file, not a read of the trail.
 */
export class ChainCheck {
  private cached?: { key: string; status: ChainStatus };

  constructor(private readonly file: string) {}

  status(): ChainStatus {
    const key = trailKey(this.file);
    if (this.cached?.key === key) return this.cached.status;
    const c = checkAudit(this.file);
    const status: ChainStatus = {
      ok: c.breaks.length === 0,
      lines: c.lines,
      files: c.files.length,
      breaks: c.breaks.slice(0, 20).map((b) => ({ file: path.basename(b.file), line: b.line, why: b.why })),
      startsAfterRemovedFiles: c.startsAfterRemovedFiles,
    };
    this.cached = { key, status };
    return status;
  }
}

function sizeOf(f: string): number {
  try {
    return statSync(f).size;
  } catch {
    return -1;
  }
}
