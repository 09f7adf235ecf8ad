import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError, ManifestRejectedError, type ManifestIssue } from '../errors.js';
import { findManifest, loadManifest, type LoadedManifest } from './index.js';

/**
 * Every plugin folder under `dir` (each holds a manifest), or `dir` itself if it is one,
 * loaded and validated. All of them are validated before any is returned: the issues of
 * every manifest come in one LM_MANIFEST_INVALID.
 */
export function loadFolders(dir: string): LoadedManifest[] {
  const loaded: LoadedManifest[] = [];
  const issues: ManifestIssue[] = [];
  for (const f of pluginFolders(dir)) {
    try {
      loaded.push(loadManifest(f));
    } catch (err) {
      if (err instanceof ManifestRejectedError) issues.push(...err.issues);
      else throw err;
    }
  }
  if (issues.length) throw new ManifestRejectedError(path.resolve(dir), issues);
  return loaded;
}

/** The plugin folders of a directory: itself if it has a manifest, else its subfolders that do. */
export function pluginFolders(dir: string): string[] {
  const abs = path.resolve(dir);
  try {
    findManifest(abs);
    if (statSync(abs).isDirectory()) return [abs];
  } catch {
    // Not a plugin folder itself: look one level down.
  }
  let entries: string[];
  try {
    entries = readdirSync(abs).sort();
  } catch {
    throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${abs}: no such folder`, { file: abs, expected: 'a folder of plugin folders', found: 'nothing' });
  }
  const folders = entries
    .map((e) => path.join(abs, e))
    .filter((p) => {
      try {
        return statSync(p).isDirectory() && (findManifest(p), true);
      } catch {
        return false;
      }
    });
  if (folders.length === 0) {
    throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${abs}: no plugin folders (folders with plugin.yaml or plugin.json) found`, {
      file: abs,
      expected: 'at least one plugin folder',
      found: 'none',
    });
  }
  return folders;
}
