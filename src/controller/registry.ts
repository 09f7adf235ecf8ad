import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { Policy } from '../policy/policy.js';
import { dependentsOf, startLevels } from './dependency-graph.js';
import { enforcePolicyAudited, verifyAtLoad } from './load-checks.js';
import { managed, type Managed } from './managed.js';
import type { SignedContent } from '../signing/signature.js';
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
   * Add validated manifests. The whole set is checked before any is added (see checkSet),
   * unless `verified` says a deploy has just checked them.
   * Restart counts survive a controller restart, for the same manifest. `added` is called
   * for each record once it is in the registry, in order.
   */
  add(manifests: readonly LoadedManifest[], saved: ControllerState | undefined, added: (m: Managed) => void, verified?: ReadonlyMap<LoadedManifest, SignedContent | undefined>): string[] {
    // Manifests a deploy has just checked (checkSet) as part of its new set are not checked twice.
    const signed = verified ?? this.checkSet([...this.records().map((m) => m.loaded), ...manifests], manifests);
    for (const l of manifests) {
      const m = managed(l, signed.get(l));
      const before = saved?.plugins[l.manifest.id];
      if (before?.manifestHash === l.hash) m.restarts = before.restarts;
      this.plugins.set(l.manifest.id, m);
      added(m);
    }
    return manifests.map((l) => l.manifest.id);
  }

  /**
   * Would `all` be a valid set of loaded plugins? The `fresh` ones (new, or changed since
   * they were loaded) have their signatures (LM_SIGNATURE) and the policy's rules
   * (LM_POLICY_DENIED) checked, both audited; then the whole set: id clashes and shared
   * users (LM_PLUGIN_CONFLICT), dependencies present and without cycles (LM_DEPENDENCY).
   * Changes nothing. Returns what each fresh plugin's signature vouches for. `audit`
   * replaces the audit sink (a dry run audits nothing); `policy`, the policy in force.
   */
  checkSet(all: readonly LoadedManifest[], fresh: readonly LoadedManifest[], opts: { audit?: AuditSink; policy?: Policy } = {}): Map<LoadedManifest, SignedContent | undefined> {
    const audit = opts.audit ?? this.opts.audit;
    const policy = opts.policy ?? this.opts.policy();
    const signed = new Map(fresh.map((l) => [l, verifyAtLoad(l, opts.policy ?? this.opts.verifyPolicy, audit)] as const));
    for (const l of fresh) enforcePolicyAudited(l, policy, audit);
    const byId = new Map<string, LoadedManifest>();
    for (const l of all) {
      const clash = byId.get(l.manifest.id);
      if (clash) {
        throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugin id ${l.manifest.id} is declared by both ${clash.file} and ${l.file}`, {
          file: l.file,
          path: '/id',
          expected: 'a plugin id not used by another loaded plugin',
          found: l.manifest.id,
        });
      }
      byId.set(l.manifest.id, l);
    }
    startLevels(all.map((l) => ({ id: l.manifest.id, dependsOn: l.manifest.dependencies.plugins }))); // throws LM_DEPENDENCY
    this.checkDistinctUsers(byId.keys());
    return signed;
  }

  /** Put a plugin's new record in place of its old one (a deploy replaced it). */
  replace(m: Managed): void {
    this.get(m.loaded.manifest.id);
    this.plugins.set(m.loaded.manifest.id, m);
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
  private checkDistinctUsers(ids: Iterable<string>): void {
    const byUid = new Map<number, string>();
    for (const id of ids) {
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
