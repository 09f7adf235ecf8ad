import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import { hostPathRuleFor } from '../policy/decisions.js';
import type { Policy } from '../policy/policy.js';
import { checkWritableGrants } from '../sandbox/writable-grants.js';
import { overlaps } from './path-grants.js';

/** What a path grant is checked against: the plugin, the others loaded beside it, the controller's home, the policy. */
export interface PathGrantContext {
  readonly loaded: LoadedManifest;
  /** Every other loaded plugin: a plugin is never granted another plugin's folder. */
  readonly others: readonly LoadedManifest[];
  readonly homeDir: string;
  readonly policy: Policy;
  /** The plugin's own user and group: a write grant must be writable by them. */
  readonly uid: number;
  readonly gid: number;
}

/**
 * The checks of a path grant beyond its path resolving: outside the plugin folder, every
 * other plugin's folder and the controller's home, the policy file not writable, covered by
 * the policy's hostPaths for the plugin and permission, writable by the plugin's user for a
 * write grant. Returns the policy rule that allows it (`<policy file> /hostPaths/<i>`).
 * Throws LM_GRANT_PATH, LM_POLICY_DENIED or LM_PATH_NOT_WRITABLE. Used at grant time and
 * when a restarted controller restores the grant.
 */
export function grantRule(cx: PathGrantContext, real: string, name: string, writable: boolean): string {
  const { loaded, policy } = cx;
  const pluginId = loaded.manifest.id;
  if (overlaps(real, loaded.pluginDir)) {
    throw new LogoMeshError('LM_GRANT_PATH', `${real} overlaps the plugin folder ${loaded.pluginDir}; the manifest grants paths inside it`, { file: real, expected: 'a host path outside the plugin folder', found: real });
  }
  // Nor another plugin's folder: written to, it would change that plugin's code or turn
  // one of its declared paths into a symlink for its next start.
  const other = cx.others.find((o) => overlaps(real, o.pluginDir));
  if (other) {
    throw new LogoMeshError('LM_GRANT_PATH', `${real} overlaps the folder ${other.pluginDir} of plugin ${other.manifest.id}; a plugin is never granted another plugin's folder`, {
      file: real,
      expected: "a host path outside every loaded plugin's folder",
      found: `${real} (plugin ${other.manifest.id})`,
    });
  }
  if (overlaps(real, cx.homeDir)) {
    throw new LogoMeshError('LM_GRANT_PATH', `${real} overlaps the controller's home ${cx.homeDir} (hub sockets, state, audit trail)`, { file: real, expected: "a host path outside the controller's home", found: real });
  }
  if (writable && policy.file && overlaps(real, policy.file)) {
    throw new LogoMeshError('LM_GRANT_PATH', `${real} holds the policy file ${policy.file}; it cannot be granted for writing`, { file: real, expected: 'a host path without the policy file', found: real });
  }
  const permission = writable ? 'write' : 'read';
  const rule = hostPathRuleFor(policy, pluginId, real, permission);
  if (!rule) {
    const listed = policy.hostPaths.map((h) => `${h.path} [${h.permissions.join(',')}]${h.plugins ? ` for ${h.plugins.join(',')}` : ''}`);
    throw new LogoMeshError('LM_POLICY_DENIED', `plugin ${pluginId} refused: the policy ${policy.file ?? '(none)'} does not allow granting ${real} for ${permission} to it (hostPaths: ${listed.join('; ') || 'none'})`, {
      plugin: pluginId,
      ...(policy.file ? { file: policy.file } : {}),
      path: '/hostPaths',
      rule: `${policy.file ?? '(no policy)'} /hostPaths`,
      expected: `a hostPaths entry covering ${real} with '${permission}'`,
      found: listed.join('; ') || 'none',
    });
  }
  if (writable) checkWritableGrants([{ capability: `grant ${name}`, hostPath: real, relative: name, writable: true }], cx.uid, cx.gid);
  return `${policy.file ?? '(no policy)'} ${rule.at}`;
}
