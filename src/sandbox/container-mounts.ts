import type { ContainerInfo, MountSettings } from 'dockerode';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { AuditSink } from '../audit/audit-log.js';
import { holdRealPath, PathChangedError } from './host-paths.js';
import { MountStaging } from './mount-staging.js';
import { stagePluginMounts, verifyPluginMounts } from './plugin-mounts.js';

/** Where operator-granted host paths appear inside a plugin container: /grants/<name>. */
export const GRANTS_MOUNT = '/grants';

/** A host path the operator granted beside the manifest's (src/grants/), as this start mounts it. */
export interface OperatorMount {
  readonly name: string;
  /** Its real path at grant time, checked again by the caller: what is mounted. */
  readonly hostPath: string;
  readonly writable: boolean;
  /** GRANTS_MOUNT/<name>. */
  readonly containerPath: string;
}

/** The label naming the operator mounts a container was created with. */
const OPERATOR_MOUNTS_LABEL = 'io.logomesh.path-grants';
/** The label with each of them as granted (name, real host path, mode): the engine only knows its staging mount. */
const OPERATOR_SOURCES_LABEL = 'io.logomesh.path-grant-sources';

/** The labels that record a container's operator mounts (none: no labels), so a later controller can tell them. */
export function operatorMountLabels(mounts: readonly OperatorMount[]): Record<string, string> {
  return mounts.length ? { [OPERATOR_MOUNTS_LABEL]: mounts.map((g) => g.name).join(','), [OPERATOR_SOURCES_LABEL]: sourcesLabel(mounts) } : {};
}

/**
 * Does a container carry exactly these operator mounts: the same names, real paths and
 * modes? An adopted container keeps its mounts, so anything else would leave a plugin with
 * a mount no grant covers, or without one it was granted.
 */
export function hasOperatorMounts(c: ContainerInfo, mounts: readonly OperatorMount[]): boolean {
  const labelled = (c.Labels[OPERATOR_MOUNTS_LABEL] ?? '').split(',').filter(Boolean).sort();
  if (labelled.join(',') !== mounts.map((g) => g.name).sort().join(',')) return false;
  // The engine's source is a staging mount: the host path each grant had is in the label.
  if ((c.Labels[OPERATOR_SOURCES_LABEL] ?? sourcesLabel([])) !== sourcesLabel(mounts)) return false;
  const mounted = (c.Mounts ?? []).filter((x) => x.Destination.startsWith(`${GRANTS_MOUNT}/`));
  return mounted.length === mounts.length && mounts.every((g) => mounted.some((x) => x.Destination === g.containerPath && x.RW === g.writable));
}

function sourcesLabel(mounts: readonly OperatorMount[]): string {
  return JSON.stringify([...mounts].sort((a, b) => (a.name < b.name ? -1 : 1)).map((g) => [g.name, g.hostPath, g.writable ? 'rw' : 'ro']));
}

/**
 * A controller's container mounts for one start: the plugin folder and its manifest's paths
 * (plugin-mounts.ts), and the operator's path grants, every one resolved now from
 * descriptors and staged, each refusal audited (`mount denied`). The caller creates the
 * container with `sources` and `grantMounts`, calls `verify()` right before the start and
 * `release()` after it (or on any failure).
 */
export interface ContainerMounts {
  readonly sources: Readonly<Record<string, string>>;
  readonly grantMounts: readonly MountSettings[];
  verify(): void;
  release(): Promise<void>;
}

export async function stageContainerMounts(opts: { readonly log: Logger; readonly audit: AuditSink; readonly loaded: LoadedManifest; readonly grants: readonly OperatorMount[] }): Promise<ContainerMounts> {
  const { loaded, audit } = opts;
  const id = loaded.manifest.id;
  const staging = new MountStaging(opts.log);
  const denied = (resource: string, err: unknown): unknown => {
    const e = err as LogoMeshError;
    audit({ who: 'controller', action: 'mount', resource, result: 'denied', code: e.code ?? 'LM_PATH_CHANGED', reason: e.message });
    return err;
  };
  try {
    let sources: Record<string, string>;
    try {
      sources = await stagePluginMounts(staging, loaded); // throws LM_PATH_CHANGED
    } catch (err) {
      const details = (err as LogoMeshError).details as { hostPath?: string } | undefined;
      throw denied(`${id}:path:${details?.hostPath ?? loaded.pluginDir}`, err);
    }
    const grantMounts: MountSettings[] = [];
    for (const g of opts.grants) {
      let source: string;
      try {
        source = await staging.stage(holdRealPath(g.hostPath), { writable: g.writable });
      } catch (err) {
        throw denied(`${id}:path:${g.name}`, grantChanged(id, g, err));
      }
      grantMounts.push({ Type: 'bind', Source: source, Target: g.containerPath, ReadOnly: !g.writable });
    }
    return {
      sources,
      grantMounts,
      verify: () => {
        try {
          verifyPluginMounts(staging, loaded);
        } catch (err) {
          throw denied(`${id}:path:${(err as LogoMeshError).details?.hostPath ?? '?'}`, err);
        }
      },
      release: () => staging.release(),
    };
  } catch (err) {
    await staging.release();
    throw err;
  }
}

/** LM_GRANT_PATH for an operator grant whose path no longer resolves as at grant time; a failed staging mount is LM_ENGINE_ERROR (as a plugin's own mounts); coded errors pass through. */
function grantChanged(pluginId: string, g: OperatorMount, err: unknown): unknown {
  if (err instanceof LogoMeshError) return err;
  if (!(err instanceof PathChangedError)) return new LogoMeshError('LM_ENGINE_ERROR', `plugin ${pluginId}: could not prepare the mount of the granted path ${g.hostPath} at ${g.containerPath}: ${(err as Error).message}`, { plugin: pluginId, hostPath: g.hostPath, grant: g.name }, { cause: err });
  return new LogoMeshError(
    'LM_GRANT_PATH',
    `plugin ${pluginId}: the granted path ${g.hostPath} no longer resolves as it did when granted: expected ${err.expected} at ${err.at}, found ${err.found}; the container is not created. Revoke the grant (logomesh revoke ${pluginId} path ${g.name}) and grant it again if the change is intended`,
    { plugin: pluginId, file: g.hostPath, grant: g.name, expected: err.expected, found: err.found },
    { cause: err },
  );
}
