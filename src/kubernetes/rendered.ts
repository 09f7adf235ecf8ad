import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { LogoMeshError, ManifestRejectedError } from '../errors.js';
import { manifestHash } from '../manifest/load.js';
import { validateAgainstSchema } from '../manifest/schema.js';
import type { LoadedManifest, Manifest } from '../manifest/types.js';
import { MAX_CONFIGMAP_DATA, OBJECTS_SUFFIX } from './controller.js';
import type { KubeObject } from './render.js';

/** A plugin as the render left it for the controller in the cluster: its validated manifest and its own objects. */
export interface RenderedPlugin {
  readonly loaded: LoadedManifest;
  readonly objects: readonly KubeObject[];
}

/** Is `dir` the render's manifests folder (the `logomesh-manifests` ConfigMap, mounted), rather than plugin folders? */
export function isRenderedDir(dir: string): boolean {
  try {
    return readdirSync(dir).some((f) => f.endsWith(OBJECTS_SUFFIX));
  } catch {
    return false;
  }
}

/**
 * The plugins of the `logomesh-manifests` ConfigMap, as mounted in the controller's Pod: each
 * `<id>.json` (the manifest the render validated, defaults filled in) with its
 * `<id>.objects.json` (what the render rendered for it, images named). There are no plugin
 * folders in the cluster: the render checked the folders and signatures, and the images
 * carry the code under tags named by its content. The manifest is validated again against
 * the schema (the ConfigMap is the operator's, and may have been edited), and its hash is
 * the render's, so the plugins an earlier controller started are adopted. Throws
 * ManifestRejectedError for a manifest the schema refuses, LM_KUBE_RENDER for a plugin
 * without its objects or a file that is not what the render writes.
 */
export function loadRendered(dir: string): RenderedPlugin[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.json') && !f.endsWith(OBJECTS_SUFFIX) && !f.startsWith('.'))
    .sort();
  return files.map((name) => {
    const file = path.join(dir, name);
    const id = name.slice(0, -'.json'.length);
    const data = readJson(file);
    const issues = validateAgainstSchema(data);
    if (issues.length > 0) throw new ManifestRejectedError(file, issues.map((i) => ({ ...i, file })));
    const manifest = data as Manifest;
    if (manifest.id !== id) throw bad(file, `a manifest whose id is its file's name, ${id}`, `id '${manifest.id}'`);
    const objectsFile = path.join(dir, `${id}${OBJECTS_SUFFIX}`);
    const objects = readJson(objectsFile);
    if (!Array.isArray(objects) || !objects.every((o) => typeof o === 'object' && o !== null && typeof (o as KubeObject).kind === 'string')) {
      throw bad(objectsFile, 'a JSON list of Kubernetes objects, as logomesh kube render writes it', Array.isArray(objects) ? 'a list with something else in it' : typeof objects);
    }
    const loaded: LoadedManifest = Object.freeze({
      manifest,
      file,
      // No plugin folder in the cluster: the manifests' own, where no plugin.sig is (signatures were checked at render).
      pluginDir: dir,
      grantedPaths: [],
      hash: manifestHash(manifest),
      fileSha256: createHash('sha256').update(readFileSync(file)).digest('hex'),
    });
    return { loaded, objects: objects as KubeObject[] };
  });
}

/** A ConfigMap's file (a symlink into its `..data`, as the kubelet mounts it), bounded by what a ConfigMap holds. */
function readJson(file: string): unknown {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    throw bad(file, 'the file logomesh kube render writes beside each manifest', 'no such file');
  }
  if (size > MAX_CONFIGMAP_DATA) throw bad(file, `at most ${MAX_CONFIGMAP_DATA} bytes`, `${size} bytes`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw bad(file, 'JSON', (err as Error).message);
  }
}

function bad(file: string, expected: string, found: string): LogoMeshError {
  return new LogoMeshError('LM_KUBE_RENDER', `${file}: expected ${expected}, found ${found}`, { file, expected, found });
}
