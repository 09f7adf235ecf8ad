import type { AuditSink } from '../audit/audit-log.js';

/**
 * What the operator took away from plugins at run time: methods (`target.method`, or a host
 * method name) and declared topic patterns, per plugin. Checked on every call and every
 * delivery; a revocation bites on the next one.
 */
export class Revocations {
  private readonly revoked = new Map<string, Set<string>>();
  private readonly topics = new Map<string, Set<string>>();

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

  revokeTopic(pluginId: string, pattern: string, who = 'operator', reason?: string): void {
    let set = this.topics.get(pluginId);
    if (!set) this.topics.set(pluginId, (set = new Set()));
    set.add(pattern);
    this.audit({ who, action: 'revoke', resource: `${pluginId}:topic:${pattern}`, result: 'revoked', ...(reason ? { reason } : {}) });
  }

  restoreTopic(pluginId: string, pattern: string, who = 'operator'): void {
    this.topics.get(pluginId)?.delete(pattern);
    this.audit({ who, action: 'grant', resource: `${pluginId}:topic:${pattern}`, result: 'granted' });
  }

  hasTopic(pluginId: string, pattern: string): boolean {
    return this.topics.get(pluginId)?.has(pattern) === true;
  }

  topicsOf(pluginId: string): string[] {
    return [...(this.topics.get(pluginId) ?? [])];
  }
}
