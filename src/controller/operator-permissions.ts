import type { AuditLog } from '../audit/audit-log.js';
import type { LogoMeshError } from '../errors.js';
import type { Grants } from '../grants/grants.js';
import type { PathGrant } from '../grants/path-grants.js';
import type { Logger } from '../log.js';
import type { Policy } from '../policy/policy.js';
import type { Backend, Lifecycle } from './backend.js';
import { decideCapability, type CapabilityDecision } from './capabilities.js';
import { isUp, type Managed } from './managed.js';
import type { PluginRegistry } from './registry.js';
import type { SavedState } from './saved-state.js';

export interface OperatorPermissionsDeps {
  readonly log: Logger;
  readonly audit: AuditLog;
  readonly grants: Grants;
  readonly registry: PluginRegistry;
  readonly saved: SavedState;
  readonly backend: Backend;
  readonly launcher: Lifecycle;
  readonly stateFile: string;
  policy(): Policy;
  /** The controller's own stop and start (serialized per plugin). */
  stop(id: string): Promise<void>;
  start(id: string): Promise<void>;
}

/**
 * The operator's changes that reach a running container: a host's network grant and a host
 * path's mount change only with a new container, so those verbs recreate it (audited); a
 * revoked host or path takes effect at once. The grants themselves are Grants' (src/grants/).
 */
export class OperatorPermissions {
  constructor(private readonly deps: OperatorPermissionsDeps) {}

  async revokeHost(pluginId: string, spelled: string): Promise<boolean> {
    const host = this.deps.grants.revokeHost(pluginId, spelled);
    return this.deps.backend.revokeHost(pluginId, host);
  }

  async grantHost(pluginId: string, spelled: string): Promise<void> {
    const m = this.deps.registry.get(pluginId);
    const { host, wasRevoked } = this.deps.grants.grantHost(pluginId, spelled);
    if (wasRevoked) await this.recreate(m, `host grant ${host}`);
  }

  async grantPath(pluginId: string, target: string, opts: { write?: boolean; ttlMs?: number }): Promise<PathGrant> {
    const m = this.deps.registry.get(pluginId);
    const grant = this.deps.grants.grantPath(pluginId, target, opts);
    await this.recreate(m, `path grant ${grant.name}`);
    return grant;
  }

  async revokePath(pluginId: string, nameOrPath: string, who: string): Promise<PathGrant> {
    const m = this.deps.registry.get(pluginId);
    let wasRunning = false;
    const g = await this.deps.grants.revokePath(pluginId, nameOrPath, who, async () => {
      // At once: the container is killed without the shutdown message or SIGTERM's grace, so a
      // plugin that ignores both cannot keep reading or writing; the entry says when it ended.
      wasRunning = isUp(m);
      const ended = wasRunning && m.container ? await this.deps.launcher.killAtOnce(m) : undefined;
      return ended === undefined ? 'the plugin was not running' : `access ended at ${new Date(ended).toISOString()}: the container was killed at once, without grace`;
    });
    if (wasRunning) await this.recreate(m, `path revocation ${g.name}`, true);
    return g;
  }

  checkCapability(pluginId: string, action: string, resource: string): CapabilityDecision {
    const m = this.deps.registry.get(pluginId);
    const decision = decideCapability(m.loaded, this.deps.policy(), this.deps.grants, action, resource);
    this.deps.audit.record({ who: 'controller', action: 'check', resource: `${pluginId}:${action}:${resource}`, result: decision.allowed ? 'allowed' : 'denied', reason: decision.reason });
    return decision;
  }

  /** What the operator changed on this plugin under an earlier controller of this home, applied again at its load. */
  restore(m: Managed): void {
    const id = m.loaded.manifest.id;
    const saved = this.deps.saved.takePermissions(id);
    if (!saved) return;
    this.deps.grants.restore(id, saved, `restored from ${this.deps.stateFile} after a controller restart`);
    this.deps.log.info({ plugin: id }, 'restored the operator permission changes of the earlier controller');
  }

  /** Mounts and networks change only with a new container: stop and start a running plugin (or one just killed: `killed`), audited. */
  private async recreate(m: Managed, why: string, killed = false): Promise<void> {
    const id = m.loaded.manifest.id;
    if (!killed && !isUp(m)) return; // takes effect at its next start
    const { audit } = this.deps;
    audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'stopping', reason: why });
    await this.deps.stop(id);
    try {
      await this.deps.start(id);
      audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'ready', reason: why });
    } catch (err) {
      audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'failed', code: (err as LogoMeshError).code ?? 'LM_ENGINE_ERROR', reason: (err as Error).message });
      throw err;
    }
  }
}
