import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { Policy } from '../policy/policy.js';
import { dependentsOf, startLevels } from './dependency-graph.js';
import { enforcePolicyAudited, verifyAtLoad } from './load-checks.js';
import { managed, type Managed } from './managed.js';
import type { ControllerState } from './state-store.js';

export interface RegistryOptions {
  readonly audit: AuditSink;
  /** The policy signatures are verified against (as given; undefined: verifyPlugin's own default). */
  readonly verifyPolicy: Policy | undefined;
  /** The policy in force, whose rules each manifest must meet. */
  readonly policy: () => Policy;
  /** A plugin's own user and group under this controller. */
  readonly idsOf: (id: string) => readonly [uid: number, gid: number];
  /** The controller instance, for messages. */
  readonly instance: string;
}

/**
 * The loaded plugins: the one map of plugin records, the checks a set passes to be loaded
 * (signatures, policy, unique ids and users, dependencies present and without cycles), and
 * the dependency graph: start levels, stop order, dependents.
 */
export class PluginRegistry {
  private readonly plugins = new Map<string, Managed>();

  constructor(private readonly opts: RegistryOptions) {}

  /** The record of a loaded plugin; throws LM_PLUGIN_NOT_FOUND naming the loaded ones. */
  get(id: string): Managed {
    const m = this.plugins.get(id);
    if (!m) {
      throw new LogoMeshError('LM_PLUGIN_NOT_FOUND', `no plugin ${id} is loaded (loaded: ${[...this.plugins.keys()].join(', ') || 'none'})`, {
        expected: 'a loaded plugin id',
        found: id,
      });
    }
    return m;
  }

  find(id: string): Managed | undefined {
    return this.plugins.get(id);
  }

  ids(): string[] {
    return [...this.plugins.keys()];
  }

  records(): Managed[] {
    return [...this.plugins.values()];
  }

  /**
   * Add validated manifests. The whole set is checked before any is added: signatures
   * (LM_SIGNATURE) and policy (LM_POLICY_DENIED), both audited, then id clashes and shared
   * users (LM_PLUGIN_CONFLICT) and dependencies (LM_DEPENDENCY) with the plugins already
   * loaded. Restart counts survive a controller restart, for the same manifest. `added` is
   * called for each record once it is in the registry, in order.
   */
  add(manifests: readonly LoadedManifest[], saved: ControllerState | undefined, added: (m: Managed) => void): string[] {
    const signed = new Map(manifests.map((l) => [l, verifyAtLoad(l, this.opts.verifyPolicy, this.opts.audit)] as const));
    for (const l of manifests) enforcePolicyAudited(l, this.opts.policy(), this.opts.audit);
    const next = new Map(this.plugins);
    for (const l of manifests) {
      const clash = next.get(l.manifest.id);
      if (clash) {
        throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugin id ${l.manifest.id} is declared by both ${clash.loaded.file} and ${l.file}`, {
          file: l.file,
          path: '/id',
          expected: 'a plugin id not used by another loaded plugin',
          found: l.manifest.id,
        });
      }
      next.set(l.manifest.id, managed(l, signed.get(l)));
    }
    startLevels(graphOf(next)); // throws LM_DEPENDENCY
    this.checkDistinctUsers(next);
    for (const l of manifests) {
      const m = next.get(l.manifest.id)!;
      const before = saved?.plugins[l.manifest.id];
      if (before?.manifestHash === l.hash) m.restarts = before.restarts;
      this.plugins.set(l.manifest.id, m);
      added(m);
    }
    return manifests.map((l) => l.manifest.id);
  }

  /** Forget a plugin (its container is gone). */
  remove(id: string): void {
    this.plugins.delete(id);
  }

  /** Start order: levels whose plugins depend only on earlier levels. */
  levels(): string[][] {
    return startLevels(graphOf(this.plugins));
  }

  /** Stop order: the start levels reversed, or all at once if the graph cannot be ordered. */
  stopLevels(): string[][] {
    try {
      return this.levels().reverse();
    } catch {
      return [this.ids()];
    }
  }

  /** Plugins that depend on `id`, directly or not. */
  dependents(id: string): string[] {
    return dependentsOf(graphOf(this.plugins), id);
  }

  /**
   * Two plugins whose derived users coincide (about one chance in 10^8 per pair) would share
   * their files and sockets: refused (LM_PLUGIN_CONFLICT), as for a shared id.
   */
  private checkDistinctUsers(plugins: Map<string, Managed>): void {
    const byUid = new Map<number, string>();
    for (const id of plugins.keys()) {
      const [uid] = this.opts.idsOf(id);
      const other = byUid.get(uid);
      if (other !== undefined) throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugins ${other} and ${id} would run as the same user (uid ${uid}) under instance ${this.opts.instance}; rename one of them`, { expected: 'a user of its own for each plugin', found: `uid ${uid} for ${other} and ${id}` });
      byUid.set(uid, id);
    }
  }
}

function graphOf(plugins: Map<string, Managed>) {
  return [...plugins.values()].map((m) => ({ id: m.loaded.manifest.id, dependsOn: m.loaded.manifest.dependencies.plugins }));
}
