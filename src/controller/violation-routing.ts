import type { AuditSink } from '../audit/audit-log.js';
import { AuditThrottle } from '../audit/audit-throttle.js';
import type { ErrorCode } from '../errors.js';
import { TokenBucket } from '../hub/token-bucket.js';
import type { Logger } from '../log.js';
import type { MonitorMetrics, ResourceViolation } from '../monitor/index.js';

/**
 * The hub topic of resource violations: each is emitted as an event on
 * `logomesh.resource.violation.<plugin>`, from the host. The host hears them with
 * `controller.on('logomesh.resource.violation.*', ...)`; a plugin hears those its manifest's
 * `coordination.subscribes` covers (and the policy's topic rules allow, and the operator has
 * not revoked). Plugins cannot publish under `logomesh.` (hub/acl.ts).
 */
export const VIOLATION_TOPIC = 'logomesh.resource.violation';

/** Log lines and hub events per plugin per second, sustained: a plugin that crosses and re-crosses a threshold on purpose cannot flood either. */
const EVENTS_PER_SECOND = 10;

export interface ViolationSinks {
  readonly log: Logger;
  readonly audit: AuditSink;
  readonly metrics: MonitorMetrics;
  /** Emit an event on the hub as the host. */
  readonly emit: (topic: string, data: unknown) => void;
}

/** The code a violation carries in the audit trail and the log. */
export function violationCode(v: ResourceViolation): ErrorCode {
  return v.action === 'kill' ? 'LM_RESOURCE_EXCEEDED' : 'LM_RESOURCE_VIOLATION';
}

/**
 * Where each resource violation goes: counted in the metrics (always), the audit trail
 * (repeats within a second aggregated, as the hub does), the log and the hub (at most
 * EVENTS_PER_SECOND a plugin, with the number left out said in the next one).
 */
export class ViolationRouter {
  private readonly throttle: AuditThrottle;
  private readonly buckets = new Map<string, { bucket: TokenBucket; dropped: number }>();

  constructor(private readonly sinks: ViolationSinks) {
    this.throttle = new AuditThrottle(sinks.audit);
  }

  route(v: ResourceViolation): void {
    const { log, metrics } = this.sinks;
    metrics.recordViolation(v);
    const code = violationCode(v);
    this.throttle.record({ who: v.plugin, action: 'violation', resource: v.kind, result: v.action === 'kill' ? 'killed' : v.action === 'alert' ? 'alert' : 'enforced', code, reason: v.detail });
    let b = this.buckets.get(v.plugin);
    if (!b) this.buckets.set(v.plugin, (b = { bucket: new TokenBucket(EVENTS_PER_SECOND), dropped: 0 }));
    if (!b.bucket.take()) {
      b.dropped++;
      return;
    }
    const dropped = b.dropped;
    b.dropped = 0;
    const fields = { plugin: v.plugin, kind: v.kind, action: v.action, value: v.value, limit: v.limit, unit: v.unit, source: v.source, code, ...(dropped ? { notLogged: dropped } : {}) };
    if (v.action === 'kill') log.error(fields, `${code}: ${v.detail}`);
    else log.warn(fields, `${code}: ${v.detail}`);
    this.sinks.emit(`${VIOLATION_TOPIC}.${v.plugin}`, dropped ? { ...v, notSent: dropped } : v);
  }

  /** A plugin was unloaded: forget its rate. */
  forget(pluginId: string): void {
    this.buckets.delete(pluginId);
  }

  close(): void {
    this.throttle.close();
  }
}
