import type { AuditSink } from '../audit/audit-log.js';
import type { ExpiryTimers } from './expiry.js';

/** What is revoked by name: a method (`target.method`, or a host method) or a declared topic pattern. */
export type NamedKind = 'method' | 'topic';

/** A temporary grant still running. */
export interface TimedGrant {
  readonly name: string;
  /** ms since the epoch. */
  readonly expiresAt: number;
}

/**
 * The operator's revocations of one kind of name, per plugin, and the temporary grants that
 * will revoke a name again. Every act is audited (`<plugin>:<method>` or
 * `<plugin>:topic:<pattern>`). What the manifest allows is checked by the caller (Grants).
 */
export class NamedRevocations {
  private readonly revoked = new Map<string, Set<string>>();
  private readonly expiries = new Map<string, Map<string, number>>();

  constructor(
    private readonly kind: NamedKind,
    private readonly opts: { readonly audit: AuditSink; readonly timers: ExpiryTimers; readonly onChange: () => void },
  ) {}

  has(pluginId: string, name: string): boolean {
    return this.revoked.get(pluginId)?.has(name) === true;
  }

  /** The names revoked from a plugin now. */
  of(pluginId: string): string[] {
    return [...(this.revoked.get(pluginId) ?? [])];
  }

  /** The temporary grants of a plugin still running. */
  timed(pluginId: string): TimedGrant[] {
    return [...(this.expiries.get(pluginId) ?? [])].map(([name, expiresAt]) => ({ name, expiresAt }));
  }

  /** Take a name away at once; a temporary grant of it is cancelled. */
  revoke(pluginId: string, name: string, who = 'operator', reason?: string): void {
    this.cancelExpiry(pluginId, name);
    this.add(pluginId, name, who, reason);
  }

  /** Give a name back, for `ttlMs` only if given (a new grant replaces an earlier temporary one). */
  grant(pluginId: string, name: string, ttlMs?: number, who = 'operator'): void {
    this.cancelExpiry(pluginId, name);
    this.revoked.get(pluginId)?.delete(name);
    this.opts.audit({ who, action: 'grant', resource: this.resource(pluginId, name), result: 'granted' });
    if (ttlMs !== undefined) this.expireAt(pluginId, name, Date.now() + ttlMs);
  }

  /** A revocation saved by an earlier controller of this home, applied again. */
  restoreRevoked(pluginId: string, name: string, why: string): void {
    this.add(pluginId, name, 'controller', why);
  }

  /**
   * A temporary grant saved by an earlier controller: it resumes with the time it has left,
   * or, if it ran out while no controller ran, the name is revoked now as its timer would have.
   */
  restoreTimed(pluginId: string, g: TimedGrant, why: string): void {
    if (g.expiresAt <= Date.now()) {
      this.add(pluginId, g.name, 'expiry', `the grant ran out at ${new Date(g.expiresAt).toISOString()}, while no controller ran`);
      return;
    }
    // A new controller revokes nothing: the name is usable until the expiry.
    this.expireAt(pluginId, g.name, g.expiresAt);
    this.opts.audit({ who: 'controller', action: 'grant', resource: this.resource(pluginId, g.name), result: 'granted', reason: `${why}; revoked again in ${g.expiresAt - Date.now()} ms` });
  }

  private add(pluginId: string, name: string, who: string, reason?: string): void {
    let set = this.revoked.get(pluginId);
    if (!set) this.revoked.set(pluginId, (set = new Set()));
    set.add(name);
    this.opts.audit({ who, action: 'revoke', resource: this.resource(pluginId, name), result: 'revoked', ...(reason ? { reason } : {}) });
  }

  /** Revoke `name` again at `at`; the expiry is saved so that a restarted controller keeps it. */
  private expireAt(pluginId: string, name: string, at: number): void {
    let expiries = this.expiries.get(pluginId);
    if (!expiries) this.expiries.set(pluginId, (expiries = new Map()));
    expiries.set(name, at);
    this.opts.timers.schedule(this.resource(pluginId, name), at, () => {
      this.expiries.get(pluginId)?.delete(name);
      this.add(pluginId, name, 'expiry');
      this.opts.onChange();
    });
  }

  private cancelExpiry(pluginId: string, name: string): void {
    this.opts.timers.cancel(this.resource(pluginId, name));
    this.expiries.get(pluginId)?.delete(name);
  }

  /** The audit entries' resource, and the key of its expiry timer. */
  private resource(pluginId: string, name: string): string {
    return this.kind === 'method' ? `${pluginId}:${name}` : `${pluginId}:topic:${name}`;
  }
}
