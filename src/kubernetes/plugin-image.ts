import { createHash } from 'node:crypto';
import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import { canonicalJson, digestFolder } from '../signing/digest.js';

/**
 * The image a plugin runs from on Kubernetes: `<registry>/plugin-<id>:<version>-<12 hex>`,
 * where the hex digits are the sha256 of every file of its folder (the file list `logomesh
 * sign` signs). A node has no plugin folder to mount, so the code is in the image: its runtime's
 * image with the folder at /plugin, or a compiled plugin's own image (docs/kubernetes.md says
 * how each is built). The tag changes with any file, so a changed plugin is a new image and a
 * rollout, and a tag never names two different contents.
 */
export function pluginImageRef(registry: string, loaded: LoadedManifest, folderSha256: string): string {
  // A tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}: semver's `+build` becomes `_build`, and a
  // long version is cut so the tag stays within 128 characters.
  const version = loaded.manifest.version.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 115);
  return `${registry}/plugin-${loaded.manifest.id}:${version}-${folderSha256.slice(0, 12)}`;
}

/** sha256 (hex) of a plugin folder's file list; LM_KUBE_RENDER for a folder holding what cannot be in an image (special files). */
export function pluginFolderSha256(loaded: LoadedManifest): string {
  const { files, unsignable } = digestFolder(loaded.pluginDir);
  if (unsignable.length > 0) {
    throw new LogoMeshError('LM_KUBE_RENDER', `plugin ${loaded.manifest.id}: its folder ${loaded.pluginDir} holds what cannot go into an image: ${unsignable.join(', ')}`, {
      plugin: loaded.manifest.id,
      file: loaded.pluginDir,
      expected: 'regular files, folders and symlinks only',
      found: unsignable.join(', '),
    });
  }
  return createHash('sha256').update(canonicalJson(files)).digest('hex');
}
