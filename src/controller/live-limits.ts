import type { LoadedManifest, Resources } from '../manifest/types.js';
import type { LimitChange } from '../monitor/index.js';

/**
 * A plugin's manifest with the operator's live limit changes (`logomesh limit`) in its
 * resources: what its next container is created with and its policy checked against, so a
 * limit raised after an OOM kill still holds when the restart policy starts it again. The
 * manifest's hash is kept: the plugin is the same one. Pure.
 */
export function withLiveLimits(loaded: LoadedManifest, change: LimitChange | undefined): LoadedManifest {
  if (!change || Object.keys(change).length === 0) return loaded;
  const r = loaded.manifest.resources;
  const resources: Resources = {
    ...r,
    ...(change.memoryMB !== undefined ? { maxMemoryMB: change.memoryMB } : {}),
    ...(change.cpuPercent !== undefined ? { maxCpuPercent: change.cpuPercent } : {}),
    ...(change.processes !== undefined ? { maxProcesses: change.processes } : {}),
  };
  return { ...loaded, manifest: { ...loaded.manifest, resources } };
}
