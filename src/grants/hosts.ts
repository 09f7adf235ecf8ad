import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import { networkHosts, normalizeHost } from '../sandbox/egress/hosts.js';

/**
 * Manifest hosts the operator took off a plugin's network allow-list. Kept apart from the
 * egress proxy's own list so that they stay off across the plugin's restarts, until granted
 * back. Hosts are held in their normal form (sandbox/egress/hosts.ts): revoking one
 * spelling revokes them all.
 */
export class HostRevocations {
  private readonly revoked = new Map<string, Set<string>>();

  constructor(private readonly audit: AuditSink) {}

  of(pluginId: string): string[] {
    return [...(this.revoked.get(pluginId) ?? [])];
  }

  has(pluginId: string, host: string): boolean {
    return this.revoked.get(pluginId)?.has(host) === true;
  }

  /** Revoke a listed host (any spelling); returns it in normal form. Throws LM_PERMISSION_DENIED (audited) for one the manifest does not list. */
  revoke(loaded: LoadedManifest, spelled: string): string {
    const host = this.requireListed(loaded, spelled, 'revoke');
    this.add(loaded.manifest.id, host);
    this.audit({ who: 'operator', action: 'revoke', resource: `${loaded.manifest.id}:host:${host}`, result: 'revoked' });
    return host;
  }

  /** Give a revoked host back; `wasRevoked` false when it was not. Throws LM_PERMISSION_DENIED (audited) for one the manifest does not list. */
  grant(loaded: LoadedManifest, spelled: string): { host: string; wasRevoked: boolean } {
    const host = this.requireListed(loaded, spelled, 'grant');
    const id = loaded.manifest.id;
    const wasRevoked = this.revoked.get(id)?.delete(host) === true;
    this.audit({ who: 'operator', action: 'grant', resource: `${id}:host:${host}`, result: 'granted', ...(wasRevoked ? {} : { reason: 'it was not revoked' }) });
    return { host, wasRevoked };
  }

  /** A revocation saved by an earlier controller of this home, applied again. */
  restore(pluginId: string, saved: string, why: string): void {
    const host = normalizeHost(saved) ?? saved;
    this.add(pluginId, host);
    this.audit({ who: 'controller', action: 'revoke', resource: `${pluginId}:host:${host}`, result: 'revoked', reason: why });
  }

  private add(pluginId: string, host: string): void {
    let set = this.revoked.get(pluginId);
    if (!set) this.revoked.set(pluginId, (set = new Set()));
    set.add(host);
  }

  /**
   * The host in its normal form (any spelling: case, trailing dot, port form), or throw
   * LM_PERMISSION_DENIED (audited) unless the manifest lists it under a network capability:
   * a typo must not look done.
   */
  private requireListed(loaded: LoadedManifest, host: string, action: 'revoke' | 'grant'): string {
    const { manifest, file } = loaded;
    const listed = networkHosts(manifest);
    const normal = normalizeHost(host);
    if (normal && listed.includes(normal)) return normal;
    const first = manifest.capabilities.findIndex((c) => c.scope === 'network');
    const err = new LogoMeshError(
      'LM_PERMISSION_DENIED',
      `plugin ${manifest.id} does not list '${host}' under the hosts of a network capability, so it cannot be ${action === 'grant' ? 'granted: the manifest is the most it can be granted' : 'revoked: it is refused anyway'} (listed: ${listed.join(', ') || 'none'}; write a listed host with its port, in any spelling)`,
      {
        file,
        path: first < 0 ? '/capabilities' : `/capabilities/${first}/hosts`,
        expected: `'${host}' listed under a network capability's hosts`,
        found: listed.join(', ') || 'no network capability',
      },
    );
    this.audit({ who: 'operator', action, resource: `${manifest.id}:host:${host}`, result: 'denied', code: err.code, reason: err.message });
    throw err;
  }
}
