import { LogoMeshError } from '../errors.js';
import { LABEL, OWNER } from '../labels.js';

/**
 * Names and labels of the Kubernetes objects LogoMesh renders. Object names are DNS labels
 * (Services need them: at most 63 characters, `[a-z0-9-]`), derived from the plugin id, so
 * the same plugin always gets the same objects and a controller can adopt them by name or
 * by label.
 */

/** The roles of the objects (`io.logomesh.role`); the Docker roles plus the controller's own. */
export type KubeRole = 'plugin' | 'egress' | 'controller' | 'seccomp-profile' | 'runtime-class';

/**
 * Each role has its own prefix, so no plugin id can name another plugin's objects: with
 * suffixes (`lm-<id>-egress`), a plugin called `fetcher-egress` would have had the names of
 * `fetcher`'s proxy, and applying one would overwrite the other.
 */
const PREFIX = { plugin: 'lm-plugin-', egress: 'lm-egress-', hubKey: 'lm-hubkey-' } as const;

/** Object names are DNS labels (Services need them): 63 characters at most, never cut (a cut name could be forged). */
const DNS_LABEL_MAX = 63;
/** The longest plugin id whose objects' names fit: 63 minus the longest prefix. */
export const MAX_KUBE_PLUGIN_ID = DNS_LABEL_MAX - Math.max(...Object.values(PREFIX).map((p) => p.length));

/** A plugin's Deployment and NetworkPolicy. */
export function pluginName(pluginId: string): string {
  return PREFIX.plugin + pluginId;
}

/** A networked plugin's egress proxy: its Deployment, Service, ConfigMap and NetworkPolicy. */
export function proxyName(pluginId: string): string {
  return PREFIX.egress + pluginId;
}

/** A plugin's hub credential Secret. */
export function hubKeyName(pluginId: string): string {
  return PREFIX.hubKey + pluginId;
}

/** LM_KUBE_RENDER for a plugin id too long for the names of its objects. */
export function checkPluginId(pluginId: string, file: string): void {
  if (pluginId.length <= MAX_KUBE_PLUGIN_ID) return;
  throw new LogoMeshError('LM_KUBE_RENDER', `plugin id '${pluginId}' is too long for Kubernetes object names (${pluginId.length} characters; at most ${MAX_KUBE_PLUGIN_ID})`, {
    file,
    path: '/id',
    expected: `a plugin id of at most ${MAX_KUBE_PLUGIN_ID} characters (its objects are named ${PREFIX.plugin}<id>, which must fit in 63)`,
    found: `${pluginId.length} characters`,
  });
}

/** The objects of one LogoMesh installation (one per namespace). */
export const CONTROLLER_NAME = 'logomesh-controller';
/** The Service plugins and host clients reach the hub through. */
export const HUB_SERVICE = 'logomesh-hub';
/** The ServiceAccount every plugin and egress proxy Pod runs as: no token, no role. */
export const PLUGIN_SERVICE_ACCOUNT = 'logomesh-plugin';

/** A Kubernetes label value: at most 63 characters, alphanumeric at both ends, `-_.` inside. */
const LABEL_VALUE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)$/;

/** Kubernetes namespace names are DNS labels. */
const NAMESPACE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Check a namespace name; LM_KUBE_RENDER naming the option when it is not a DNS label. */
export function checkNamespace(namespace: string): string {
  if (NAMESPACE.test(namespace)) return namespace;
  throw new LogoMeshError('LM_KUBE_RENDER', `--namespace '${namespace}' is not a Kubernetes namespace name`, {
    path: '--namespace',
    expected: 'a DNS label: 1-63 lowercase letters, digits and inner hyphens',
    found: `'${namespace}'`,
  });
}

/**
 * The labels every rendered object carries (src/labels.ts's keys). No host label: the same
 * render must give the same YAML on every machine, or a GitOps tool would see a change each
 * time. Cluster-wide objects shared by every installation (seccomp profiles, the
 * RuntimeClass) carry no instance either: several installations render them identically.
 */
export function kubeLabels(role: KubeRole, instance?: string, pluginId?: string): Record<string, string> {
  const labels: Record<string, string> = { [LABEL.owner]: OWNER, [LABEL.role]: role };
  if (instance !== undefined) labels[LABEL.instance] = labelValue(instance, 'the instance');
  if (pluginId !== undefined) labels[LABEL.plugin] = labelValue(pluginId, 'the plugin id');
  return labels;
}

function labelValue(value: string, what: string): string {
  if (LABEL_VALUE.test(value)) return value;
  throw new LogoMeshError('LM_KUBE_RENDER', `${what} '${value}' cannot be a Kubernetes label value`, {
    expected: 'at most 63 characters of A-Z a-z 0-9 - _ ., alphanumeric at both ends',
    found: `'${value}'`,
  });
}

/** The selector of one plugin's Pods (or its proxy's): the labels that never change for it. */
export function podSelector(role: 'plugin' | 'egress', instance: string, pluginId: string): Record<string, string> {
  return kubeLabels(role, instance, pluginId);
}

