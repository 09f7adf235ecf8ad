import type { AuditEntry, AuditSink } from './audit-log.js';

export interface AuditThrottleOptions {
  /** The window in which repeats of one decision are counted instead of written (default 1 s). */
  readonly windowMs?: number;
  /** Distinct decisions tracked in one window; past that, repeats are grouped per who, action, result and code (default 1024). */
  readonly maxKeys?: number;
  /** Longest `reason` and `resource` written, in characters (default 256 and 200). */
  readonly maxReason?: number;
  readonly maxResource?: number;
  /** Told of each entry written (so a log line can follow the audit trail, at the same rate). */
  readonly onWrite?: (entry: Omit<AuditEntry, 'time'>) => void;
}

interface Window {
  readonly first: Omit<AuditEntry, 'time'>;
  readonly startedAt: number;
  repeats: number;
}

/**
 * Aggregates repeated audit entries so that a flood costs a few lines a second, not a line a
 * message. The first of a kind (same who, action, resource, result and code) is written at
 * once; repeats within the window are counted, and one entry with `count` (how many more)
 * closes the window. Nothing is lost: every decision is in a line or in a count. Attacker
 * strings are truncated.
 */
export class AuditThrottle {
  private readonly windowMs: number;
  private readonly maxKeys: number;
  private readonly maxReason: number;
  private readonly maxResource: number;
  private readonly open = new Map<string, Window>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: AuditSink,
    private readonly opts: AuditThrottleOptions = {},
  ) {
    this.windowMs = opts.windowMs ?? 1_000;
    this.maxKeys = opts.maxKeys ?? 1_024;
    this.maxReason = opts.maxReason ?? 256;
    this.maxResource = opts.maxResource ?? 200;
  }

  /** `kind` tells apart decisions that share who, action, result and code but differ in nature (a refused frame, a closed connection). */
  record(raw: Omit<AuditEntry, 'time'>, kind = ''): void {
    // Every call the hub lets through comes here: a repeat costs one key and one lookup,
    // and the entry is copied and trimmed only when it opens a window.
    const resource = raw.resource.length > this.maxResource ? `${raw.resource.slice(0, this.maxResource)}…` : raw.resource;
    let key = keyOf(raw, resource, kind);
    let w = this.open.get(key);
    if (w === undefined && this.open.size >= this.maxKeys) {
      key = keyOf(raw, '*', kind);
      w = this.open.get(key);
    }
    if (w !== undefined) {
      w.repeats++;
      return;
    }
    const entry = this.trim(raw, resource);
    const grouped = key.endsWith(`\u0000*\u0000${kind}`) && entry.resource !== '*';
    const first = grouped ? { ...entry, resource: '*', reason: `various resources; the first: ${entry.resource}` } : entry;
    this.open.set(key, { first, startedAt: Date.now(), repeats: 0 });
    this.write(first);
    this.timer ??= setTimeout(() => this.flush(false), this.windowMs).unref();
  }

  /** Write the counts of every window that has ended (or of all of them: on close). */
  flush(all = true): void {
    this.timer = undefined;
    const now = Date.now();
    for (const [key, w] of this.open) {
      if (!all && now - w.startedAt < this.windowMs) continue;
      this.open.delete(key);
      if (w.repeats > 0) this.write({ ...w.first, count: w.repeats, reason: `${w.repeats} more like this within ${this.windowMs} ms${w.first.reason ? `; the first: ${w.first.reason}` : ''}`.slice(0, this.maxReason + 64) });
    }
    if (this.open.size > 0) this.timer = setTimeout(() => this.flush(false), this.windowMs).unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.flush(true);
  }

  private write(entry: Omit<AuditEntry, 'time'>): void {
    this.sink(entry);
    this.opts.onWrite?.(entry);
  }

  private trim(e: Omit<AuditEntry, 'time'>, resource: string): Omit<AuditEntry, 'time'> {
    const reason = e.reason !== undefined && e.reason.length > this.maxReason ? `${e.reason.slice(0, this.maxReason)}… (${e.reason.length} characters)` : e.reason;
    return { ...e, resource, ...(reason !== undefined ? { reason } : {}) };
  }
}

function keyOf(e: Omit<AuditEntry, 'time'>, resource: string, kind: string): string {
  return `${e.who}\u0000${e.action}\u0000${e.result}\u0000${e.code ?? ''}\u0000${resource}\u0000${kind}`;
}
