import type { AuditSink } from '../audit/audit-log.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { Policy } from '../policy/policy.js';
import { requireConsumedMethod, requireDeclaredTopic } from './declared.js';
import { ExpiryTimers } from './expiry.js';
import { HostRevocations } from './hosts.js';
import { NamedRevocations } from './named.js';
import type { PathGrant } from './path-grants.js';
import type { PathGrantContext } from './path-rule.js';
import { PathGrants } from './paths.js';
import { withoutEmpty, type SavedPermissions } from './saved.js';

export interface GrantsOptions {
  readonly log: Logger;
  /** Where every grant, revocation and refusal goes (the audit trail). */
  readonly audit: AuditSink;
  /** The loaded plugin of an id; throws LM_PLUGIN_NOT_FOUND. */
  readonly plugin: (id: string) => LoadedManifest;
  /** Every loaded plugin (a path grant may not cover another plugin's folder). */
  readonly plugins: () => Iterable<LoadedManifest>;
  /** The controller's home: never granted. */
  readonly homeDir: string;
  /** The policy in force: its hostPaths bound path grants. */
  readonly policy: () => Policy;
  /** A plugin's own user and group. */
  readonly idsOf: (id: string) => readonly [uid: number, gid: number];
  /** After every change of what is granted or revoked, expiries included: the controller saves state.json. */
  readonly onChange?: () => void;
  /** A temporary path grant ran out: revoke it (`revokePath` with who 'expiry', and its effect on the container). */
  readonly onPathExpired?: (pluginId: string, name: string) => void;
}

/**
 * The one owner of operator permissions at run time: methods and topic patterns revoked
 * and granted back (for a time, or for good), manifest hosts taken off a network
 * allow-list, host paths granted. It holds their expiry timers, writes their audit
 * entries, and gives what state.json keeps of them (`saved`, `restore`). The manifest is
 * the upper bound of every grant. The hub asks it (`isMethodRevoked`, `isTopicRevoked`) on
 * every call and delivery; what a change does to a running container is the controller's.
 */
export class Grants {
  private readonly timers = new ExpiryTimers();
  private readonly methods: NamedRevocations;
  private readonly topics: NamedRevocations;
  private readonly hosts: HostRevocations;
  private readonly pathGrants: PathGrants;

  constructor(private readonly opts: GrantsOptions) {
    const changed = () => opts.onChange?.();
    this.methods = new NamedRevocations('method', { audit: opts.audit, timers: this.timers, onChange: changed });
    this.topics = new NamedRevocations('topic', { audit: opts.audit, timers: this.timers, onChange: changed });
    this.hosts = new HostRevocations(opts.audit);
    this.pathGrants = new PathGrants({ audit: opts.audit, log: opts.log, timers: this.timers, onExpired: (id, name) => opts.onPathExpired?.(id, name) });
  }

  /** Has the operator taken this method (`plugin.method`, or a host method) from the plugin? */
  readonly isMethodRevoked = (pluginId: string, method: string): boolean => this.methods.has(pluginId, method);

  /** Has the operator taken this declared topic pattern from the plugin? */
  readonly isTopicRevoked = (pluginId: string, pattern: string): boolean => this.topics.has(pluginId, pattern);

  /** Take a method away from a plugin: its next call of it is LM_PERMISSION_DENIED. */
  revokeMethod(pluginId: string, method: string, who = 'operator'): void {
    this.opts.plugin(pluginId);
    this.methods.revoke(pluginId, method, who);
    this.changed();
  }

  /** Give a method back, for `ttlMs` only if given. Throws LM_PERMISSION_DENIED unless coordination.consumesMethods declares it. */
  grantMethod(pluginId: string, method: string, ttlMs?: number, who = 'operator'): void {
    requireConsumedMethod(this.opts.plugin(pluginId), method);
    this.methods.grant(pluginId, method, ttlMs, who);
    this.changed();
  }

  /** Take a declared topic pattern away: the plugin no longer publishes or hears what only it covers. Throws LM_PERMISSION_DENIED for an undeclared one. */
  revokeTopic(pluginId: string, pattern: string): void {
    requireDeclaredTopic(this.opts.plugin(pluginId), pattern, 'revoke', this.opts.audit);
    this.topics.revoke(pluginId, pattern);
    this.changed();
  }

  /** Give a revoked topic pattern back, for `ttlMs` only if given. Throws LM_PERMISSION_DENIED for an undeclared one. */
  grantTopic(pluginId: string, pattern: string, ttlMs?: number): void {
    requireDeclaredTopic(this.opts.plugin(pluginId), pattern, 'grant', this.opts.audit);
    this.topics.grant(pluginId, pattern, ttlMs);
    this.changed();
  }

  /** The manifest hosts taken off a plugin's allow-list, in normal form. */
  revokedHosts(pluginId: string): string[] {
    return this.hosts.of(pluginId);
  }

  isHostRevoked(pluginId: string, host: string): boolean {
    return this.hosts.has(pluginId, host);
  }

  /** Take a listed host off the allow-list (returned in normal form). Throws LM_PERMISSION_DENIED for one the manifest does not list. */
  revokeHost(pluginId: string, spelled: string): string {
    const host = this.hosts.revoke(this.opts.plugin(pluginId), spelled);
    this.changed();
    return host;
  }

  /** Give a revoked host back. Throws LM_PERMISSION_DENIED for one the manifest does not list. */
  grantHost(pluginId: string, spelled: string): { host: string; wasRevoked: boolean } {
    const r = this.hosts.grant(this.opts.plugin(pluginId), spelled);
    this.changed();
    return r;
  }

  /** The host paths granted to a plugin now. */
  paths(pluginId: string): PathGrant[] {
    return this.pathGrants.of(pluginId);
  }

  path(pluginId: string, name: string): PathGrant | undefined {
    return this.pathGrants.get(pluginId, name);
  }

  /** Grant a host path (see Controller.grantPath). Throws LM_POLICY_DENIED, LM_GRANT_PATH or LM_PATH_NOT_WRITABLE, audited. */
  grantPath(pluginId: string, target: string, opts: { write?: boolean; ttlMs?: number } = {}): PathGrant {
    const grant = this.pathGrants.grant(this.contextOf(pluginId), target, opts);
    this.changed();
    return grant;
  }

  /**
   * Take a granted path away (by name or host path). `endAccess` ends the plugin's use of it
   * (kills a running container) and says how, for the audit entry written after it. Throws
   * LM_GRANT_PATH (audited) when there is no such grant.
   */
  async revokePath(pluginId: string, nameOrPath: string, who: string, endAccess: (g: PathGrant) => Promise<string>): Promise<PathGrant> {
    this.opts.plugin(pluginId);
    const g = this.pathGrants.take(pluginId, nameOrPath, who);
    this.changed();
    this.pathGrants.revoked(pluginId, g, who, await endAccess(g));
    return g;
  }

  /** Every path grant of a plugin resolved again right before its container is created (audited). */
  recheckPaths(pluginId: string): PathGrant[] {
    return this.pathGrants.recheck(pluginId, ...this.opts.idsOf(pluginId));
  }

  /** A plugin's permission changes as they stand, for state.json; undefined when none. */
  saved(pluginId: string): SavedPermissions | undefined {
    return withoutEmpty({
      revokedMethods: this.methods.of(pluginId),
      methodGrants: this.methods.timed(pluginId).map((g) => ({ method: g.name, expiresAt: g.expiresAt })),
      revokedTopics: this.topics.of(pluginId),
      topicGrants: this.topics.timed(pluginId).map((g) => ({ topic: g.name, expiresAt: g.expiresAt })),
      pathGrants: this.pathGrants.of(pluginId),
      revokedHosts: this.hosts.of(pluginId),
    });
  }

  /**
   * Apply again what the operator changed on this plugin under an earlier controller of the
   * same home. Called at load, before the plugin is attached to the hub, adopted or started,
   * so that its first call already meets them. A temporary grant resumes with the time it
   * has left; one that ran out while no controller ran is revoked now, as its timer would
   * have done. A path grant goes through the checks of grant time again and is dropped if
   * it fails them now. Every step is audited. No onChange: the caller saves once after.
   */
  restore(pluginId: string, saved: SavedPermissions, why: string): void {
    for (const method of saved.revokedMethods ?? []) this.methods.restoreRevoked(pluginId, method, why);
    for (const g of saved.methodGrants ?? []) this.methods.restoreTimed(pluginId, { name: g.method, expiresAt: g.expiresAt }, why);
    for (const topic of saved.revokedTopics ?? []) this.topics.restoreRevoked(pluginId, topic, why);
    for (const g of saved.topicGrants ?? []) this.topics.restoreTimed(pluginId, { name: g.topic, expiresAt: g.expiresAt }, why);
    const cx = saved.pathGrants?.length ? this.contextOf(pluginId) : undefined;
    for (const g of saved.pathGrants ?? []) this.pathGrants.restore(cx!, g, why);
    for (const host of saved.revokedHosts ?? []) this.hosts.restore(pluginId, host, why);
  }

  /** Stop every expiry timer (the controller closes; the saved expiries resume under its successor). */
  close(): void {
    this.timers.clear();
  }

  private contextOf(pluginId: string): PathGrantContext {
    const loaded = this.opts.plugin(pluginId);
    const [uid, gid] = this.opts.idsOf(pluginId);
    const others = [...this.opts.plugins()].filter((l) => l.manifest.id !== pluginId);
    return { loaded, others, homeDir: this.opts.homeDir, policy: this.opts.policy(), uid, gid };
  }

  private changed(): void {
    this.opts.onChange?.();
  }
}
