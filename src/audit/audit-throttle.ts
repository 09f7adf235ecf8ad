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
  /** Still counting: false once its count is written. */
  open: boolean;
}

/**
 * A window of one decision, kept by whoever records that decision again and again (the hub,
 * for each allowed call: src/hub/peer-tally.ts): `repeat` counts into it without building
 * the decision's key and looking it up. Opaque outside this file.
 */
export interface AuditRepeat {
  readonly open: boolean;
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
  record(raw: Omit<AuditEntry, 'time'>, kind = ''): AuditRepeat | undefined {
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
      return w.first.resource === resource ? w : undefined;
    }
    const entry = this.trim(raw, resource);
    const grouped = key.endsWith(`\u0000*\u0000${kind}`) && entry.resource !== '*';
    const first = grouped ? { ...entry, resource: '*', reason: `various resources; the first: ${entry.resource}` } : entry;
    const opened: Window = { first, startedAt: Date.now(), repeats: 0, open: true };
    this.open.set(key, opened);
    this.write(first);
    this.timer ??= setTimeout(() => this.flush(false), this.windowMs).unref();
    // A grouped window is not handed out: a repeat of this decision must find its own window
    // again once there is room for one, as it would by its key.
    return grouped ? undefined : opened;
  }

  /**
   * The decision `record` returned this window for, once more: counted when the window is
   * still open (exactly what `record` would do), or false and nothing counted when it has
   * been written: then the caller records the decision again.
   */
  repeat(handle: AuditRepeat): boolean {
    const w = handle as Window;
    if (!w.open) return false;
    w.repeats++;
    return true;
  }

  /** Write the counts of every window that has ended (or of all of them: on close). */
  flush(all = true): void {
    this.timer = undefined;
    const now = Date.now();
    for (const [key, w] of this.open) {
      if (!all && now - w.startedAt < this.windowMs) continue;
      this.open.delete(key);
      w.open = false;
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
