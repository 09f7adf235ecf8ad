import { pluginFolders } from '../manifest/folders.js';
import { loadManifest } from '../manifest/index.js';
import { resolvePolicy } from '../policy/policy.js';
import { verifyPlugin } from '../signing/signature.js';
import { pluginFolderSha256, pluginImageRef } from './plugin-image.js';
import { renderInstallation, toYaml } from './render.js';
import { kubeTarget, type TargetOptions } from './target.js';

export interface KubeRenderOptions extends TargetOptions {
  /** --policy, else LOGOMESH_POLICY. */
  readonly policy?: string;
}

/**
 * Every plugin folder of `dir` (or `dir` itself), validated and its signature checked against
 * the policy exactly as `logomesh up` does, rendered as the Kubernetes objects of one
 * installation, one YAML stream. Nothing is applied and no cluster is asked.
 */
export function renderKubeFolder(dir: string, opts: KubeRenderOptions): string {
  const target = kubeTarget(opts);
  const policy = resolvePolicy(opts.policy);
  const loaded = pluginFolders(dir).map((f) => loadManifest(f)); // all or nothing
  for (const l of loaded) verifyPlugin(l, policy); // throws LM_SIGNATURE
  const images = Object.fromEntries(loaded.map((l) => [l.manifest.id, pluginImageRef(target.registry, l, pluginFolderSha256(l))]));
  return toYaml(renderInstallation({ loaded, policy, target, images }));
}
