import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import { plannedMounts, type PlannedMount } from './container-spec.js';
import { holdBeneath, holdRealPath, PathChangedError, type HeldPath } from './host-paths.js';
import type { MountStaging } from './mount-staging.js';

/**
 * Resolve a plugin's host paths right before its container is created, from descriptors:
 * the plugin folder is walked from `/` and every path its manifest grants from the plugin
 * folder's descriptor, never following a symlink (each was resolved to its real path at
 * load, so a symlink on the way now is a change), then staged for the engine. Returns the
 * source of each mount by target, for containerSpec's mountSources. Throws LM_PATH_CHANGED.
 */
export async function stagePluginMounts(staging: MountStaging, loaded: LoadedManifest): Promise<Record<string, string>> {
  const planned = plannedMounts(loaded);
  const sources: Record<string, string> = {};
  let root: HeldPath;
  try {
    root = holdRealPath(loaded.pluginDir, 'directory');
  } catch (err) {
    throw pathChanged(loaded, planned[0]!, err);
  }
  // The folder's descriptor is what every other path is walked from: staged (and so kept
  // open) first, and released with the others.
  const rootMount = planned.find((m) => m.relative === '.' && !m.writable)!;
  sources[rootMount.target] = await stageOrFail(staging, root, rootMount);
  for (const m of planned) {
    if (m === rootMount) continue;
    let held: HeldPath;
    try {
      held = holdBeneath(root, m.relative);
    } catch (err) {
      throw pathChanged(loaded, m, err);
    }
    sources[m.target] = await stageOrFail(staging, held, m);
  }
  return sources;
}

async function stageOrFail(staging: MountStaging, held: HeldPath, m: PlannedMount): Promise<string> {
  try {
    return await staging.stage(held, { writable: m.writable });
  } catch (err) {
    throw new LogoMeshError('LM_ENGINE_ERROR', `could not prepare the mount of ${m.hostPath} at ${m.target}: ${(err as Error).message}`, { hostPath: m.hostPath, target: m.target }, { cause: err });
  }
}

/**
 * Right before the container starts (when the engine mounts): is every staged source still
 * what was checked? Throws LM_PATH_CHANGED.
 */
export function verifyPluginMounts(staging: MountStaging, loaded: LoadedManifest): void {
  try {
    staging.verify();
  } catch (err) {
    if (!(err instanceof PathChangedError)) throw err;
    const m = plannedMounts(loaded).find((p) => p.hostPath === err.requested);
    throw pathChanged(loaded, m ?? { relative: '', hostPath: err.requested, target: '' }, err);
  }
}

/** The coded refusal for a planned mount that no longer resolves as it did; other errors pass through. */
export function pathChanged(loaded: LoadedManifest, m: Pick<PlannedMount, 'relative' | 'hostPath' | 'target'>, err: unknown): unknown {
  if (!(err instanceof PathChangedError)) return err;
  const id = loaded.manifest.id;
  const what = m.relative === '.' ? `the plugin folder ${m.hostPath}` : m.relative === '' ? `the granted host path ${m.hostPath}` : `the path ${m.relative} its manifest grants (${m.hostPath})`;
  return new LogoMeshError(
    'LM_PATH_CHANGED',
    `plugin ${id}: ${what} no longer resolves as it did when it was checked: expected ${err.expected} at ${err.at}, found ${err.found}; the container is not created`,
    { plugin: id, file: loaded.file, hostPath: m.hostPath, target: m.target, at: err.at, expected: err.expected, found: err.found },
    { cause: err },
  );
}
