import type { AuditSink } from '../audit/audit-log.js';
import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';

/**
 * The manifest is the most a plugin can be granted. A method given back must be declared
 * under coordination.consumesMethods; throws LM_PERMISSION_DENIED naming the field.
 */
export function requireConsumedMethod(loaded: LoadedManifest, method: string): void {
  const { manifest, file } = loaded;
  if (manifest.coordination.consumesMethods.includes(method)) return;
  throw new LogoMeshError('LM_PERMISSION_DENIED', `plugin ${manifest.id} does not declare '${method}' under coordination.consumesMethods; the manifest is the most it can be granted`, {
    file,
    path: '/coordination/consumesMethods',
    expected: `'${method}' declared`,
    found: manifest.coordination.consumesMethods.join(', ') || 'nothing',
  });
}

/**
 * A topic pattern revoked or granted must be one the manifest lists, exactly as written,
 * under coordination.publishes or .subscribes: revocations act on declared patterns (a
 * pattern revoked no longer covers anything for the plugin), and a typo must not look
 * done. Throws LM_PERMISSION_DENIED (audited) naming both fields.
 */
export function requireDeclaredTopic(loaded: LoadedManifest, pattern: string, action: 'revoke' | 'grant', audit: AuditSink): void {
  const { manifest, file } = loaded;
  const { publishes, subscribes } = manifest.coordination;
  if (publishes.includes(pattern) || subscribes.includes(pattern)) return;
  const listed = [...new Set([...publishes, ...subscribes])];
  const err = new LogoMeshError(
    'LM_PERMISSION_DENIED',
    `plugin ${manifest.id} does not list '${pattern}' under coordination.publishes or coordination.subscribes, so it cannot be ${action === 'grant' ? 'granted: the manifest is the most it can be granted' : 'revoked: it is refused anyway'} (listed: ${listed.join(', ') || 'none'}; write a pattern exactly as the manifest lists it)`,
    {
      file,
      path: publishes.length || !subscribes.length ? '/coordination/publishes' : '/coordination/subscribes',
      expected: `'${pattern}' listed under coordination.publishes or coordination.subscribes`,
      found: `publishes: ${publishes.join(', ') || 'none'}; subscribes: ${subscribes.join(', ') || 'none'}`,
    },
  );
  audit({ who: 'operator', action, resource: `${manifest.id}:topic:${pattern}`, result: 'denied', code: err.code, reason: err.message });
  throw err;
}
