import { pluginImageRef, pluginFolderSha256 } from '../kubernetes/plugin-image.js';
import { renderInstallation, toYaml } from '../kubernetes/render.js';
import { kubeTarget, type TargetOptions } from '../kubernetes/target.js';
import { pluginFolders } from '../lifecycle/plugin-host.js';
import { loadManifest } from '../manifest/index.js';
import { resolvePolicy } from '../policy/policy.js';
import { verifyPlugin } from '../signing/signature.js';
import type { CliIo } from './io.js';

export interface KubeRenderOptions extends TargetOptions {
  /** --policy, else LOGOMESH_POLICY. */
  readonly policy?: string;
}

/**
 * `logomesh kube render <dir>`: every plugin folder of `dir` (or `dir` itself), validated and
 * its signature checked against the policy exactly as `logomesh up` does, printed as the
 * Kubernetes objects of one installation, one YAML stream on stdout. Nothing is applied and no
 * cluster is asked: the output is for `kubectl apply -f -` or a GitOps repository.
 */
export function kubeRenderCommand(dir: string, opts: KubeRenderOptions, io: CliIo): number {
  const target = kubeTarget(opts);
  const policy = resolvePolicy(opts.policy);
  const loaded = pluginFolders(dir).map((f) => loadManifest(f)); // all or nothing
  for (const l of loaded) verifyPlugin(l, policy); // throws LM_SIGNATURE
  const images = Object.fromEntries(loaded.map((l) => [l.manifest.id, pluginImageRef(target.registry, l, pluginFolderSha256(l))]));
  const objects = renderInstallation({ loaded, policy, target, images });
  io.stdout.write(toYaml(objects));
  return 0;
}
