import { renderKubeFolder, type KubeRenderOptions } from '../index.js';
import type { CliIo } from './io.js';

/**
 * `logomesh kube render <dir>`: the Kubernetes objects of one installation for the plugin
 * folders of `dir`, one YAML stream on stdout, for `kubectl apply -f -` or a GitOps
 * repository (docs/kubernetes.md).
 */
export function kubeRenderCommand(dir: string, opts: KubeRenderOptions, io: CliIo): number {
  io.stdout.write(renderKubeFolder(dir, opts));
  return 0;
}
