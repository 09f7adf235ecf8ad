import type { AuditSink } from '../permissions/audit-log.js';

/**
 * Methods the operator took away from plugins at run time: `target.method` (or a host
 * method name) per plugin. Checked on every call; a revocation bites on the next one.
 */
export class Revocations {
  private readonly revoked = new Map<string, Set<string>>();

  constructor(private readonly audit: AuditSink) {}

  revoke(pluginId: string, method: string, who = 'operator', reason?: string): void {
    let set = this.revoked.get(pluginId);
    if (!set) this.revoked.set(pluginId, (set = new Set()));
    set.add(method);
    this.audit({ who, action: 'revoke', resource: `${pluginId}:${method}`, result: 'revoked', ...(reason ? { reason } : {}) });
  }

  restore(pluginId: string, method: string, who = 'operator'): void {
    this.revoked.get(pluginId)?.delete(method);
    this.audit({ who, action: 'grant', resource: `${pluginId}:${method}`, result: 'granted' });
  }

  has(pluginId: string, method: string): boolean {
    return this.revoked.get(pluginId)?.has(method) === true;
  }

  of(pluginId: string): string[] {
    return [...(this.revoked.get(pluginId) ?? [])];
  }
}
