import path from 'node:path';
// Only the comparison: semver's index loads every module of the package (ranges, coercion), ~2-8 ms of each run.
import semverLt from 'semver/functions/lt.js';
import { LogoMeshError } from '../errors.js';
import type { FsPermission, LoadedManifest } from '../manifest/types.js';
import { topicCovers } from '../manifest/topics.js';
import { RESOURCE_CEILINGS, type CapabilityRules, type HostPathRule, type Policy, type TopicRules } from './policy.js';

/**
 * The policy's decisions about one plugin: which capability scopes, resources and hosts its
 * manifest may ask for, and which host paths the operator may grant it. Pure functions of
 * the policy and the manifest; the controller audits what they decide.
 */

/** One way a manifest goes beyond the policy. */
export interface PolicyViolation {
  /** JSON pointer into the manifest: `/capabilities/1/scope`, `/resources/maxMemoryMB`. */
  readonly path: string;
  /** The policy rule it breaks: `<policy file> /capabilities/allowedScopes`. */
  readonly rule: string;
  readonly expected: string;
  readonly found: string;
}

/** The rules in force for one plugin: its override where it has one, else the policy-wide ones, each with where it is written. */
function rulesFor(
  policy: Policy,
  pluginId: string,
): { capabilities: CapabilityRules; capAt: string; hosts?: readonly string[]; hostsAt: string; topics?: TopicRules; topicsAt: string; runtime?: string; runtimeAt: string } {
  const o = Object.prototype.hasOwnProperty.call(policy.plugins, pluginId) ? policy.plugins[pluginId] : undefined;
  const hosts = o?.hosts ?? policy.hosts;
  const topics = o?.topics ?? policy.topics;
  const runtime = o?.isolation ? o.isolation.runtime : policy.isolation?.runtime;
  return {
    ...(runtime ? { runtime } : {}),
    runtimeAt: o?.isolation ? `/plugins/${pluginId}/isolation/runtime` : '/isolation/runtime',
    capabilities: o?.capabilities ?? policy.capabilities,
    capAt: o?.capabilities ? `/plugins/${pluginId}/capabilities` : '/capabilities',
    ...(hosts ? { hosts } : {}),
    hostsAt: o?.hosts ? `/plugins/${pluginId}/hosts` : '/hosts',
    ...(topics ? { topics } : {}),
    topicsAt: o?.topics ? `/plugins/${pluginId}/topics` : '/topics',
  };
}

function ruleName(policy: Policy, pointer: string): string {
  return `${policy.file ?? '(no policy)'} ${pointer}`;
}

/** Every way `loaded`'s manifest asks for more than the policy allows; empty when it does not. */
export function policyViolations(loaded: LoadedManifest, policy: Policy): PolicyViolation[] {
  const { manifest } = loaded;
  const r = rulesFor(policy, manifest.id);
  const out: PolicyViolation[] = [];
  const scopes = r.capabilities.allowedScopes;
  manifest.capabilities.forEach((cap, i) => {
    if (scopes && !scopes.includes(cap.scope)) {
      out.push({
        path: `/capabilities/${i}/scope`,
        rule: ruleName(policy, `${r.capAt}/allowedScopes`),
        expected: `a scope the policy allows (${scopes.join(', ') || 'none'})`,
        found: `'${cap.scope}' (capability '${cap.id}')`,
      });
    }
    if (cap.scope === 'network' && r.hosts) {
      const allowed = r.hosts;
      cap.hosts?.forEach((h, j) => {
        if (!allowed.some((p) => hostCovered(p, h))) {
          out.push({
            path: `/capabilities/${i}/hosts/${j}`,
            rule: ruleName(policy, r.hostsAt),
            expected: `a host the policy allows (${allowed.join(', ') || 'none'})`,
            found: `'${h}'`,
          });
        }
      });
    }
  });
  // Unlike the other ceilings, an absent list allows nothing: no policy, no extra system call.
  const syscalls = r.capabilities.allowedSyscalls ?? [];
  manifest.security.syscalls.forEach((name, j) => {
    if (!syscalls.includes(name)) {
      out.push({
        path: `/security/syscalls/${j}`,
        rule: ruleName(policy, `${r.capAt}/allowedSyscalls`),
        expected: `a system call the policy allows (${syscalls.join(', ') || 'none'})`,
        found: `'${name}'`,
      });
    }
  });
  const oci = ociRuntimeFor(policy, loaded);
  if (manifest.security.isolationLevel === 3 && !oci.sandboxing) {
    out.push({
      path: '/security/isolationLevel',
      rule: oci.rule,
      expected: `a sandboxing OCI runtime for isolation level 3 (not ${PLAIN_RUNTIMES.join(', ')})`,
      found: `'${oci.runtime ?? 'the engine default'}'`,
    });
  }
  // Rollback protection: an older version, however validly signed, does not replace a newer one.
  const pinned = Object.prototype.hasOwnProperty.call(policy.plugins, manifest.id) ? policy.plugins[manifest.id]?.minVersion : undefined;
  if (pinned !== undefined && semverLt(manifest.version, pinned)) {
    out.push({ path: '/version', rule: ruleName(policy, `/plugins/${manifest.id}/minVersion`), expected: `version ${pinned} or later (the policy pins the lowest version of ${manifest.id})`, found: `'${manifest.version}'` });
  }
  for (const field of RESOURCE_CEILINGS) {
    const ceiling = r.capabilities[field];
    const asked = manifest.resources[field];
    if (ceiling !== undefined && asked > ceiling) {
      out.push({ path: `/resources/${field}`, rule: ruleName(policy, `${r.capAt}/${field}`), expected: `at most ${ceiling}`, found: String(asked) });
    }
  }
  for (const [field, rule] of [['publishes', 'publish'], ['subscribes', 'subscribe']] as const) {
    const allowed = r.topics?.[rule];
    if (!allowed) continue;
    manifest.coordination[field].forEach((t, k) => {
      if (allowed.some((p) => topicCovers(p, t))) return;
      out.push({ path: `/coordination/${field}/${k}`, rule: ruleName(policy, `${r.topicsAt}/${rule}`), expected: `a topic the policy's ${rule} list covers (${allowed.join(', ') || 'none'})`, found: `'${t}'` });
    });
  }
  return out;
}

/** Refuse a plugin whose manifest asks for more than the policy allows. Throws LM_POLICY_DENIED naming every violation. */
export function enforcePolicy(loaded: LoadedManifest, policy: Policy): void {
  const v = policyViolations(loaded, policy);
  if (v.length === 0) return;
  const id = loaded.manifest.id;
  const lines = v.map((x) => `${loaded.file} ${x.path}: expected ${x.expected}, found ${x.found} (policy rule ${x.rule})`);
  throw new LogoMeshError('LM_POLICY_DENIED', `plugin ${id} refused by the policy:\n${lines.join('\n')}`, {
    plugin: id,
    file: loaded.file,
    path: v[0]!.path,
    expected: v[0]!.expected,
    found: v[0]!.found,
    rule: v[0]!.rule,
    violations: v,
    ...(policy.file ? { policy: policy.file } : {}),
  });
}

/** Name and port in the form the egress proxy compares (sandbox/egress/hosts.ts): lower case, no trailing dot, the port as a number. */
function splitHost(pattern: string): { host: string; port?: string } {
  const i = pattern.lastIndexOf(':');
  const name = (i < 0 ? pattern : pattern.slice(0, i)).trim().toLowerCase().replace(/\.$/, '');
  if (i < 0) return { host: name };
  const port = pattern.slice(i + 1).trim();
  return { host: name, port: /^[0-9]+$/.test(port) ? String(Number(port)) : port };
}

/**
 * Does the policy pattern cover the requested host (itself a pattern, from a manifest, or a
 * concrete `host[:port]`)? `*.example.com` covers every name below example.com (not
 * example.com itself) and every narrower wildcard; a pattern without a port covers every
 * port, one with a port only that port.
 */
export function hostCovered(pattern: string, requested: string): boolean {
  const p = splitHost(pattern);
  const r = splitHost(requested);
  if (p.port !== undefined && p.port !== r.port) return false;
  if (p.host.startsWith('*.')) {
    const suffix = p.host.slice(1);
    const name = r.host.startsWith('*.') ? r.host.slice(1) : r.host;
    return name.endsWith(suffix) && name.length > suffix.length;
  }
  return !r.host.startsWith('*.') && p.host === r.host;
}

/**
 * May `host` (`name[:port]`, or a pattern) be granted to a plugin at all? With no host
 * rule in the policy, yes; otherwise only if one of the rules in force for the plugin (its
 * override, else the policy-wide list) covers it.
 */
export function policyAllowsHost(policy: Policy, host: string, pluginId?: string): { allowed: boolean; reason: string } {
  const r = pluginId === undefined ? { hosts: policy.hosts, hostsAt: '/hosts' } : rulesFor(policy, pluginId);
  if (!r.hosts) return { allowed: true, reason: 'the policy does not limit hosts' };
  const match = r.hosts.find((p) => hostCovered(p, host));
  return match
    ? { allowed: true, reason: `covered by '${match}' (policy rule ${ruleName(policy, r.hostsAt)})` }
    : { allowed: false, reason: `'${host}' is not covered by the policy's hosts (${r.hosts.join(', ') || 'none'}; policy rule ${ruleName(policy, r.hostsAt)})` };
}

/**
 * The policy's hostPaths rule that lets the operator grant `realPath` (already resolved)
 * with `permission` to `pluginId`, if any.
 */
export function hostPathRuleFor(policy: Policy, pluginId: string, realPath: string, permission: FsPermission): HostPathRule | undefined {
  return policy.hostPaths.find(
    (h) => (realPath === h.path || realPath.startsWith(h.path.endsWith(path.sep) ? h.path : h.path + path.sep)) && h.permissions.includes(permission) && (!h.plugins || h.plugins.includes(pluginId)),
  );
}

/** OCI runtimes that run containers as ordinary processes on the host kernel: isolation levels 1 and 2 only. */
const PLAIN_RUNTIMES = ['runc', 'crun', 'youki', 'io.containerd.runc.v2', 'io.containerd.runtime.v1.linux'] as const;

/** The runtime an isolation level 3 plugin gets when the policy names none: gVisor. */
export const DEFAULT_SANDBOX_RUNTIME = 'runsc';

/** The OCI runtime a plugin's containers run with, and why. */
export interface OciRuntimeDecision {
  /** The engine's runtime name for HostConfig.Runtime; absent: the engine's default. */
  readonly runtime?: string;
  /** Not one of PLAIN_RUNTIMES (the engine's default counts as plain). */
  readonly sandboxing: boolean;
  /** Where it comes from: the policy rule, or the manifest's isolation level. */
  readonly rule: string;
}

/**
 * The OCI runtime for a plugin: the policy's isolation.runtime (its override, else the
 * policy-wide one); with none, DEFAULT_SANDBOX_RUNTIME for a manifest that asks for
 * isolation level 3, else the engine's default. Pure: whether the engine has it is checked
 * when the container is created (sandbox/oci-runtime.ts).
 */
export function ociRuntimeFor(policy: Policy, loaded: LoadedManifest): OciRuntimeDecision {
  const r = rulesFor(policy, loaded.manifest.id);
  const plain = (name: string) => (PLAIN_RUNTIMES as readonly string[]).includes(name);
  if (r.runtime) return { runtime: r.runtime, sandboxing: !plain(r.runtime), rule: ruleName(policy, r.runtimeAt) };
  if (loaded.manifest.security.isolationLevel === 3) return { runtime: DEFAULT_SANDBOX_RUNTIME, sandboxing: true, rule: `${loaded.file} /security/isolationLevel` };
  return { sandboxing: false, rule: ruleName(policy, r.runtimeAt) };
}
