import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { IRuntimeClass } from 'kubernetes-models/node.k8s.io/v1/RuntimeClass';
import { stringify } from 'yaml';
import { LogoMeshError } from '../errors.js';
import type { LoadedManifest } from '../manifest/types.js';
import { DEFAULT_SANDBOX_RUNTIME, enforcePolicy, ociRuntimeFor } from '../policy/decisions.js';
import type { Policy } from '../policy/policy.js';
import { isNetworked } from '../sandbox/egress.js';
import { pluginSeccompProfile } from '../seccomp/profiles.js';
import { controllerDeployment, controllerHomeClaim, controllerRole, controllerRoleBinding, controllerServiceAccount, hubService, manifestsConfigMap, pluginServiceAccount } from './controller.js';
import { proxyConfigMap, proxyDeployment, proxyNetworkPolicy, proxyService } from './egress-proxy.js';
import { checkPluginId, kubeLabels } from './names.js';
import { controllerNetworkPolicy, denyAllPolicy, pluginNetworkPolicy } from './network-policies.js';
import { pluginDeployment } from './plugin-workload.js';
import { seccompProfileObject, spoSpec, type SeccompProfileObject } from './seccomp-profiles.js';
import type { KubeTarget } from './target.js';

/** Any rendered object: what `kubectl apply` takes. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly labels?: Record<string, string> };
}

export interface RenderInput {
  /** Every plugin, validated (and its signature checked, by the caller, which reads files). */
  readonly loaded: readonly LoadedManifest[];
  readonly policy: Policy;
  readonly target: KubeTarget;
  /** The image of each plugin, by id (cli/kube.ts names them by the folder's content). */
  readonly images: Readonly<Record<string, string>>;
}

/**
 * Everything one LogoMesh installation is on Kubernetes, in the order `kubectl apply` needs
 * it (what is referenced before what references it). Pure: the same input always gives the
 * same objects, so a GitOps tool sees a change only when a manifest, the policy or the
 * target changed. Throws LM_POLICY_DENIED, LM_PLUGIN_CONFLICT, LM_DEPENDENCY or
 * LM_KUBE_RENDER before rendering anything.
 */
export function renderInstallation(input: RenderInput): KubeObject[] {
  const { loaded, policy, target } = input;
  checkPlugins(loaded, input.images);
  for (const l of loaded) enforcePolicy(l, policy);
  const profiles = new Map<string, SeccompProfileObject>();
  const profileFor = (syscalls: readonly string[], what: string): string => {
    // Every plugin reaches its hub over TCP here, so every one gets the networked profile
    // (IP sockets); the NetworkPolicies confine where they go (docs/kubernetes.md).
    const spec = spoSpec(pluginSeccompProfile(true, syscalls), target.arch, 'images/seccomp/plugin.json');
    const object = seccompProfileObject(spec, target.arch, what);
    if (!profiles.has(object.metadata.name)) profiles.set(object.metadata.name, object);
    return object.metadata.name;
  };
  const baseProfile = profileFor([], 'images/seccomp/plugin.json');

  const plugins = [...loaded].sort((a, b) => a.manifest.id.localeCompare(b.manifest.id));
  const perPlugin = plugins.map((l) => {
    const { manifest } = l;
    const networked = isNetworked(manifest);
    const syscalls = manifest.security.syscalls;
    const profile = syscalls.length > 0 ? profileFor(syscalls, `images/seccomp/plugin.json with ${[...syscalls].sort().join(', ')} allowed for plugin ${manifest.id}`) : baseProfile;
    return {
      networked,
      configMaps: networked ? [proxyConfigMap(manifest, target)] : [],
      services: networked ? [proxyService(manifest, target)] : [],
      policies: [pluginNetworkPolicy(manifest.id, networked, target), ...(networked ? [proxyNetworkPolicy(manifest, target)] : [])],
      proxies: networked ? [proxyDeployment(manifest, target, baseProfile)] : [],
      workload: pluginDeployment({ loaded: l, policy, target, image: input.images[manifest.id]!, seccompProfile: profile, networked }),
    };
  });

  return [
    namespaceObject(target),
    ...runtimeClasses(plugins, policy),
    ...[...profiles.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    controllerServiceAccount(target),
    pluginServiceAccount(target),
    controllerRole(target),
    controllerRoleBinding(target),
    controllerHomeClaim(target),
    manifestsConfigMap(plugins, target, Object.fromEntries(plugins.map((l, i) => [l.manifest.id, ownObjects(perPlugin[i]!)]))),
    ...perPlugin.flatMap((p) => p.configMaps),
    hubService(target),
    ...perPlugin.flatMap((p) => p.services),
    denyAllPolicy(target),
    controllerNetworkPolicy(target),
    ...perPlugin.flatMap((p) => p.policies),
    controllerDeployment(target),
    ...perPlugin.flatMap((p) => p.proxies),
    ...perPlugin.map((p) => p.workload),
  ];
}

/** A plugin's own objects, in the order a start applies them: allow-list, Service, policies, proxy, then its Deployment. */
function ownObjects(p: { configMaps: KubeObject[]; services: KubeObject[]; policies: KubeObject[]; proxies: KubeObject[]; workload: KubeObject }): KubeObject[] {
  return [...p.configMaps, ...p.services, ...p.policies, ...p.proxies, p.workload];
}

/** The objects as one YAML stream, one document each. */
export function toYaml(objects: readonly KubeObject[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
}

/**
 * The namespace, with the Pod Security Standard `restricted` enforced: the API server itself
 * then refuses any Pod in it that runs as root, keeps a capability, may escalate privileges,
 * has no seccomp profile or mounts a host path, whatever created it.
 */
function namespaceObject(target: KubeTarget): INamespace {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: target.namespace,
      labels: {
        ...kubeLabels('controller', target.instance),
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
    },
  };
}

/**
 * gVisor's RuntimeClass, when a plugin runs under it: `runsc` with the handler of the same name
 * (gVisor's containerd shim). A runtime the policy names otherwise is the cluster's own and
 * is only referenced.
 */
function runtimeClasses(loaded: readonly LoadedManifest[], policy: Policy): IRuntimeClass[] {
  const used = loaded.some((l) => ociRuntimeFor(policy, l).runtime === DEFAULT_SANDBOX_RUNTIME);
  return used ? [{ apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: DEFAULT_SANDBOX_RUNTIME, labels: kubeLabels('runtime-class') }, handler: DEFAULT_SANDBOX_RUNTIME }] : [];
}

/** One folder per id, an image for each, and every plugin dependency present. */
function checkPlugins(loaded: readonly LoadedManifest[], images: Readonly<Record<string, string>>): void {
  const byId = new Map<string, LoadedManifest>();
  for (const l of loaded) {
    const id = l.manifest.id;
    checkPluginId(id, l.file);
    const seen = byId.get(id);
    if (seen) throw new LogoMeshError('LM_PLUGIN_CONFLICT', `plugin id '${id}' is declared by both ${seen.file} and ${l.file}`, { plugin: id, file: l.file, path: '/id' });
    byId.set(id, l);
    if (!Object.prototype.hasOwnProperty.call(images, id)) {
      throw new LogoMeshError('LM_KUBE_RENDER', `no image was named for plugin ${id}`, { plugin: id, expected: 'an image for every plugin', found: 'none' });
    }
  }
  for (const l of loaded) {
    l.manifest.dependencies.plugins.forEach((dep, i) => {
      if (!byId.has(dep)) {
        throw new LogoMeshError('LM_DEPENDENCY', `plugin ${l.manifest.id} depends on plugin '${dep}', which is not among the plugins rendered`, {
          plugin: l.manifest.id,
          file: l.file,
          path: `/dependencies/plugins/${i}`,
          expected: `one of ${[...byId.keys()].join(', ')}`,
          found: `'${dep}'`,
        });
      }
    });
  }
}
