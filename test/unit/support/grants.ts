import type { AuditSink } from '../../../src/audit/audit-log.js';
import { LogoMeshError } from '../../../src/errors.js';
import { Grants } from '../../../src/grants/grants.js';
import type { Hub } from '../../../src/hub/hub.js';
import { silentLogger } from '../../../src/log.js';
import type { LoadedManifest } from '../../../src/manifest/types.js';
import { NO_POLICY } from '../../../src/policy/policy.js';

/** What a hub test's plugins declare that the operator may revoke and grant back. */
export interface Declared {
  readonly consumes?: readonly string[];
  readonly publishes?: readonly string[];
  readonly subscribes?: readonly string[];
}

/**
 * The controller's owner of revocations, for hub tests without a controller: its
 * predicates go into the hub's options, and its audit entries into the test's sink after
 * the hub's aggregated counts, as the controller wires them.
 */
export function hubGrants(declared: Record<string, Declared>, audit: AuditSink, hub: () => Hub | undefined): Grants {
  const manifests = new Map(Object.entries(declared).map(([id, d]) => [id, manifestOf(id, d)]));
  return new Grants({
    log: silentLogger,
    audit: (e) => {
      hub()?.flushAudit();
      audit(e);
    },
    plugin: (id) => {
      const m = manifests.get(id);
      if (!m) throw new LogoMeshError('LM_PLUGIN_NOT_FOUND', `no plugin ${id} is loaded`, {});
      return m;
    },
    plugins: () => manifests.values(),
    homeDir: '/nonexistent/logomesh-home',
    policy: () => NO_POLICY,
    idsOf: () => [1_000_000_000, 1_000_000_000],
  });
}

function manifestOf(id: string, d: Declared): LoadedManifest {
  const coordination = { exposesMethods: [], consumesMethods: [...(d.consumes ?? [])], publishes: [...(d.publishes ?? [])], subscribes: [...(d.subscribes ?? [])], messaging: true, sharedMemory: false };
  return { file: `/plugins/${id}/plugin.yaml`, pluginDir: `/plugins/${id}`, manifest: { id, capabilities: [], coordination } } as unknown as LoadedManifest;
}
