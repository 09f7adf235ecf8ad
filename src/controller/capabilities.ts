import { realpathSync } from 'node:fs';
import path from 'node:path';
import type { Grants } from '../grants/grants.js';
import type { LoadedManifest } from '../manifest/types.js';
import { hostCovered, policyAllowsHost, policyViolations } from '../policy/decisions.js';
import type { Policy } from '../policy/policy.js';
import { normalizeHost } from '../sandbox/egress.js';

export interface CapabilityDecision {
  readonly allowed: boolean;
  readonly reason: string;
}

/**
 * May the plugin do `action` on `resource`, as its manifest, the operator's grants and the
 * policy stand now? Actions:
 * - `read` / `write` a host path: inside the plugin folder (read), a manifest grant, or an
 *   operator path grant (write needs a writable one);
 * - `connect` to `host[:port]`: a network capability covers it, the operator has not
 *   revoked it, and the policy allows it;
 * - `call` a `plugin.method` (or host method): declared and not revoked;
 * - `scope` (filesystem, network, ...): the manifest declares it and the policy allows it.
 */
export function decideCapability(loaded: LoadedManifest, policy: Policy, grants: Grants, action: string, resource: string): CapabilityDecision {
  const { manifest, pluginDir, grantedPaths } = loaded;
  const id = manifest.id;
  const violations = policyViolations(loaded, policy);
  if (violations.length) return { allowed: false, reason: `the manifest breaks the policy (${violations.map((v) => `${v.path}: ${v.rule}`).join('; ')})` };
  switch (action) {
    case 'read':
    case 'write': {
      if (!path.isAbsolute(resource)) return { allowed: false, reason: `'${resource}' is not an absolute host path` };
      let real: string;
      try {
        real = realpathSync(resource);
      } catch {
        real = path.resolve(resource);
      }
      const inside = (dir: string) => real === dir || real.startsWith(dir + path.sep);
      const write = action === 'write';
      if (!write && inside(pluginDir)) return { allowed: true, reason: `inside the plugin folder ${pluginDir} (read-only)` };
      const byManifest = grantedPaths.find((g) => inside(g.hostPath) && (!write || g.writable));
      if (byManifest) return { allowed: true, reason: `capability '${byManifest.capability}' grants ${byManifest.hostPath}${write ? ' for writing' : ''}` };
      const byOperator = grants.paths(id).find((g) => inside(g.hostPath) && (!write || g.writable));
      if (byOperator) return { allowed: true, reason: `the operator granted ${byOperator.hostPath} at ${byOperator.containerPath}${write ? ' for writing' : ''} (policy rule ${byOperator.rule})` };
      return { allowed: false, reason: `no manifest capability or operator grant covers ${real} for ${action}` };
    }
    case 'connect': {
      const revoked = new Set(grants.revokedHosts(id));
      const cap = manifest.capabilities.find((c) => c.scope === 'network' && c.hosts?.some((h) => !revoked.has(normalizeHost(h) ?? h) && hostCovered(h, resource)));
      if (!cap) {
        const taken = [...revoked].find((h) => hostCovered(h, resource));
        return { allowed: false, reason: taken ? `the operator revoked '${taken}'` : `no network capability of the manifest covers '${resource}'` };
      }
      const p = policyAllowsHost(policy, resource, id);
      return p.allowed ? { allowed: true, reason: `capability '${cap.id}' covers it; ${p.reason}` } : p;
    }
    case 'call': {
      if (!manifest.coordination.consumesMethods.includes(resource)) return { allowed: false, reason: `'${resource}' is not declared under coordination.consumesMethods` };
      if (grants.isMethodRevoked(id, resource)) return { allowed: false, reason: `the operator revoked '${resource}'` };
      return { allowed: true, reason: `declared under coordination.consumesMethods` };
    }
    case 'scope': {
      const cap = manifest.capabilities.find((c) => c.scope === resource);
      if (!cap) return { allowed: false, reason: `the manifest declares no capability of scope '${resource}'` };
      return { allowed: true, reason: `capability '${cap.id}' (the policy allows the scope)` };
    }
    default:
      return { allowed: false, reason: `unknown action '${action}' (read, write, connect, call, scope)` };
  }
}
