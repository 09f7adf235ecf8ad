import type { AuditSink } from '../audit/audit-log.js';
import type { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import { enforcePolicy } from '../policy/decisions.js';
import type { Policy } from '../policy/policy.js';
import { signedContentOf, verifyPlugin, verifyPluginAsync, type SignedContent } from '../signing/signature.js';

/**
 * The checks a plugin passes before anything of it runs, each audited either way: its
 * signature against the operator's policy (at load, and again before every start, since
 * its folder may change meanwhile), and the policy's other rules (at load).
 */

/** verifyPlugin at load (`verify` allowed or denied). Returns what its signature vouches for (undefined: unsigned). Throws LM_SIGNATURE. */
export function verifyAtLoad(l: LoadedManifest, policy: Policy | undefined, audit: AuditSink): SignedContent | undefined {
  try {
    const v = verifyPlugin(l, policy);
    audit({ who: 'controller', action: 'verify', resource: l.manifest.id, result: 'allowed', reason: `${v.status} (at load)` });
    return signedContentOf(v);
  } catch (err) {
    const e = err as LogoMeshError;
    audit({ who: 'controller', action: 'verify', resource: l.manifest.id, result: 'denied', code: e.code ?? 'LM_SIGNATURE', reason: e.message });
    throw err;
  }
}

/**
 * The signature again before a container is created: a folder changed after load (a file
 * edited, added or removed) is refused at its next start or restart, not only at the next
 * load. Hashed a chunk at a time, so a large folder never holds the hub's other plugins.
 */
export async function verifyBeforeStart(l: LoadedManifest, policy: Policy | undefined, audit: AuditSink): Promise<SignedContent | undefined> {
  try {
    const v = await verifyPluginAsync(l, policy);
    audit({ who: 'controller', action: 'verify', resource: l.manifest.id, result: 'allowed', reason: v.status });
    return signedContentOf(v);
  } catch (err) {
    const e = err as LogoMeshError;
    audit({ who: 'controller', action: 'verify', resource: l.manifest.id, result: 'denied', code: e.code ?? 'LM_SIGNATURE', reason: e.message });
    throw err;
  }
}

/** enforcePolicy, audited: allowed, or denied with every violation. Throws LM_POLICY_DENIED. */
export function enforcePolicyAudited(l: LoadedManifest, policy: Policy, audit: AuditSink): void {
  const id = l.manifest.id;
  try {
    enforcePolicy(l, policy);
    audit({ who: 'controller', action: 'policy', resource: id, result: 'allowed' });
  } catch (err) {
    const e = err as LogoMeshError;
    audit({ who: 'controller', action: 'policy', resource: id, result: 'denied', code: e.code, reason: e.message });
    throw err;
  }
}
