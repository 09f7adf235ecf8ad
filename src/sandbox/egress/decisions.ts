import type { AuditEntry } from '../../audit/audit-log.js';

/**
 * One decision of a plugin's egress proxy, as it reports it (images/egress/egress_report.py).
 * `cut`: an open connection closed by a reload (reason `revoked`: its host:port left the
 * allow-list; `detached`: the plugin was stopped). A DNS query has method `DNS`, the queried
 * name as `host`, its `qtype` and `transport`. Past the proxy's reporting budget, decisions
 * of one kind come together: `count` of them in `windowMs`, `host` and `port` of the last one,
 * and up to five distinct `hosts` among them.
 */
export interface EgressDecision {
  readonly plugin: string | null;
  readonly host: string | null;
  readonly port: number | null;
  readonly method: string | null;
  readonly result: 'allowed' | 'denied' | 'failed' | 'cut';
  readonly reason: string;
  readonly qtype?: string;
  readonly transport?: 'udp' | 'tcp';
  readonly count?: number;
  readonly windowMs?: number;
  readonly hosts?: readonly string[];
}

/**
 * A decision as an audit entry. Connections: `network` on `host:port`. DNS queries: `dns` on
 * the queried name, the query type in the reason. Refusals and revocation cuts carry
 * LM_EGRESS_DENIED; a cut because the plugin stopped (`detached`) is no refusal. An
 * aggregated decision says how many it stands for, and over how long, in its reason.
 */
export function auditEntry(d: EgressDecision): Omit<AuditEntry, 'time'> {
  const dns = d.method === 'DNS';
  const refused = d.result === 'denied' || d.result === 'failed' || (d.result === 'cut' && d.reason !== 'detached');
  let reason = dns && d.qtype ? `${d.reason} (${d.qtype})` : d.reason;
  if (d.count !== undefined) {
    const seconds = ((d.windowMs ?? 0) / 1000).toFixed(1);
    const among = d.hosts?.length ? `; among them ${d.hosts.join(', ')}` : '';
    reason = `${reason}: ${d.count} ${d.count === 1 ? 'time' : 'times'} in ${seconds} s, counted together past the proxy's reporting budget${among}`;
  }
  return {
    who: d.plugin ?? 'unknown',
    action: dns ? 'dns' : 'network',
    resource: dns ? (d.host ?? '?') : `${d.host ?? '?'}:${d.port ?? '?'}`,
    result: d.result,
    reason,
    ...(refused ? { code: 'LM_EGRESS_DENIED' } : {}),
  };
}
