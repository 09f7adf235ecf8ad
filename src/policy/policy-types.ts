import type { KeyObject } from 'node:crypto';
import type { CapabilityScope, FsPermission, KillOnExceed, MonitoringAlerts, Resources } from '../manifest/types.js';

/**
 * The operator policy as loadPolicy (policy.ts) returns it: validated, keys parsed, host
 * paths resolved, frozen. Its file's schema is policy.schema.json.
 */

/**
 * The start-up CPU boost (docs/security.md#start-up-cpu-boost): the CFS quota a plugin
 * container starts with, and how long it may keep it at most. startup-boost.ts decides.
 */
export interface StartupBoostPolicy {
  /** Percent of one core while the plugin starts; 0: no boost. */
  readonly cpuPercent?: number;
  /** The hard deadline after the container's start, in ms. */
  readonly maxMs?: number;
}

export interface TrustedKey {
  /** keyIdOf the key: what plugin.sig names its signer by. */
  readonly keyId: string;
  readonly key: KeyObject;
  /** Where the policy lists it: the .pub file, or `<policy file> /signatures/trustedKeys/<i>` for inline PEM. */
  readonly source: string;
}

export interface SignaturePolicy {
  /** Refuse plugins that are not signed by a trusted key. */
  readonly required: boolean;
  readonly trustedKeys: readonly TrustedKey[];
}

/** Ceilings on what a manifest may ask for; an absent field is not limited. */
export type CapabilityRules = {
  /** The capability scopes a manifest may ask for; absent: any. */
  readonly allowedScopes?: readonly CapabilityScope[];
  /** System calls on LogoMesh's seccomp deny list a manifest may ask for; absent: none. */
  readonly allowedSyscalls?: readonly string[];
} & { readonly [K in keyof Resources]?: number };

/** A host path the operator may grant to plugins (`logomesh grant <plugin> path`). */
export interface HostPathRule {
  /** Real absolute path (symlinks resolved when the policy was loaded). */
  readonly path: string;
  /** As written in the policy. */
  readonly declared: string;
  readonly permissions: readonly FsPermission[];
  /** Plugin ids it may be granted to; absent: any plugin. */
  readonly plugins?: readonly string[];
  /** JSON pointer of the rule in the policy file: `/hostPaths/<i>`. */
  readonly at: string;
}

/** How plugin containers are isolated beyond LogoMesh's defaults. */
export interface IsolationRules {
  /** The OCI runtime the engine runs the containers with (HostConfig.Runtime); absent: the engine's default. */
  readonly runtime?: string;
}

/** Ceilings on the topics a manifest may declare (coordination.publishes, .subscribes). */
export interface TopicRules {
  readonly publish?: readonly string[];
  readonly subscribe?: readonly string[];
}

/**
 * Alerts and kill rules for every plugin (docs/monitoring.md#policy): the same fields as a
 * manifest's `monitoring`, each optional. src/monitor/rules.ts combines the two.
 */
export interface MonitoringPolicy {
  readonly alerts?: Loose<MonitoringAlerts>;
  readonly killOnExceed?: Loose<KillOnExceed>;
}

/** Every field optional, one level down too (a policy rule may leave its window to the manifest). */
type Loose<T> = { readonly [K in keyof T]?: NonNullable<T[K]> extends object ? Partial<NonNullable<T[K]>> : T[K] };

/** Rules for one plugin: capabilities, hosts, topics and isolation replace the policy-wide ones. */
export interface PluginOverride {
  readonly monitoring?: MonitoringPolicy;
  readonly capabilities?: CapabilityRules;
  readonly hosts?: readonly string[];
  readonly topics?: TopicRules;
  readonly isolation?: IsolationRules;
  /** The lowest version of the plugin that is loaded (semver precedence): rollback protection. */
  readonly minVersion?: string;
  readonly startupBoost?: StartupBoostPolicy;
}

export interface Policy {
  /** Absolute path of the policy file; absent for NO_POLICY. */
  readonly file?: string;
  readonly signatures: SignaturePolicy;
  /** Capability and resource ceilings for every plugin (none by default). */
  readonly capabilities: CapabilityRules;
  /** The only hosts any plugin may be granted; absent: not limited by the policy. */
  readonly hosts?: readonly string[];
  /** The only topics any manifest may declare; absent: not limited by the policy. */
  readonly topics?: TopicRules;
  /** The OCI runtime for every plugin; absent: the engine's default. */
  readonly isolation?: IsolationRules;
  /** Alerts and kill rules for every plugin; absent: the manifests' own. */
  readonly monitoring?: MonitoringPolicy;
  /** The start-up CPU boost for every plugin; absent: the defaults (startup-boost.ts). */
  readonly startupBoost?: StartupBoostPolicy;
  /** The host paths the operator may grant (none by default: no host path can be granted). */
  readonly hostPaths: readonly HostPathRule[];
  /** Per-plugin overrides, by plugin id. */
  readonly plugins: Readonly<Record<string, PluginOverride>>;
}
