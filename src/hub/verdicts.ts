import type { ErrorCode } from '../errors.js';
import type { AuditThrottle } from '../audit/audit-throttle.js';
import type { HubMetrics } from './hub-metrics.js';
import type { Inbound } from './intake.js';
import type { Peer } from './peer.js';
import type { CallTally } from './peer-tally.js';

/** What a violation was, so that different ones with one code are not counted together. */
export type ViolationKind = 'frame' | 'closed' | 'cut' | 'rate' | 'from' | 'timeout';

export interface VerdictsDeps {
  /** The audit trail, aggregated: a flood of one decision costs a few lines a second. */
  readonly throttle: AuditThrottle;
  readonly nextId: () => string;
  readonly metrics?: HubMetrics | undefined;
}

/**
 * The hub's answers and its record of them, in one place: every decision the hub makes about
 * a message (sent on, refused, a broken rule) is answered to the peer and audited here, so
 * that no path can answer without the record or record without the answer.
 */
export class Verdicts {
  constructor(private readonly deps: VerdictsDeps) {}

  /** A call was sent on. */
  allowed(peer: Peer, resource: string): void {
    this.deps.throttle.record({ who: peer.id, action: 'call', resource, result: 'allowed' });
  }

  /**
   * A call to a plugin was sent on: counted into the audit window its tally holds while that
   * is open (no key built), else recorded as `allowed` would, and the new window kept.
   */
  allowedCall(peer: Peer, tally: CallTally): void {
    if (tally.audit !== undefined && this.deps.throttle.repeat(tally.audit)) return;
    tally.audit = this.deps.throttle.record({ who: peer.id, action: 'call', resource: tally.resource, result: 'allowed' });
  }

  /** Refuse a message: audited, and answered with the coded error. */
  refuse(f: Inbound, action: string, resource: string, code: ErrorCode, reason: string): void {
    this.deps.throttle.record({ who: f.peer.id, action, resource, result: 'denied', code, reason });
    if (f.msg.type === 'request') this.deps.metrics?.calls(f.peer.id, f.msg.to[0] ?? '', f.msg.method).observe(0, code);
    this.replyError(f.peer, f.msg.id, code, reason);
  }

  /** A peer broke the protocol or a limit: on its record, aggregated. */
  violation(peer: Peer, code: ErrorCode, reason: string, kind: ViolationKind): void {
    const where = peer.kind === 'host' ? ` (host client ${peer.origin})` : '';
    this.violationOf(peer.id, code, `${reason}${where}`, kind);
  }

  violationOf(who: string, code: ErrorCode, reason: string, kind: ViolationKind): void {
    this.deps.throttle.record({ who, action: 'violation', resource: 'hub', result: 'denied', code, reason }, kind);
  }

  /** On the record, without an answer (a refused response: its sender waits for nothing). */
  deny(who: string, action: string, resource: string, code: ErrorCode, reason: string): void {
    this.deps.throttle.record({ who, action, resource, result: 'denied', code, reason });
  }

  replyError(peer: Peer, correlationId: string, code: ErrorCode, message: string): void {
    peer.deliver({ type: 'response', id: this.deps.nextId(), correlationId, success: false, error: { code, message }, timestamp: Date.now() });
  }

  ok(peer: Peer, correlationId: string, data: unknown): void {
    peer.deliver({ type: 'response', id: this.deps.nextId(), correlationId, success: true, data });
  }
}
