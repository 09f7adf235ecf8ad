import { createHash } from 'node:crypto';
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

const DNS_LABEL_MAX = 63;

/**
 * `lm-<id><suffix>`, cut to a DNS label: a name over 63 characters keeps as much of the id as
 * fits and ends with 8 hex digits of the full name's hash, so two long ids never collide.
 */
export function objectName(pluginId: string, suffix = ''): string {
  const full = `lm-${pluginId}${suffix}`;
  if (full.length <= DNS_LABEL_MAX) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8);
  const room = DNS_LABEL_MAX - 'lm-'.length - suffix.length - hash.length - 1;
  return `lm-${pluginId.slice(0, room).replace(/-+$/, '')}-${hash}${suffix}`;
}

/** A networked plugin's egress proxy: its Deployment, Service, ConfigMap and NetworkPolicy. */
export function proxyName(pluginId: string): string {
  return objectName(pluginId, '-egress');
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

/**
 * The plugin's own uid, derived exactly as `pluginUid(instance, pluginId)` is on the `verify`
 * branch (src/runtimes/runtime.ts): sha256 of `uid/<scope>/<id>` into [1e9, 1.1e9). The
 * scope is the instance (a Kubernetes installation's is its namespace, never a one-shot
 * run's). Kept here, one function, until that lands on main; then this calls it instead.
 */
export function kubePluginUid(instance: string, pluginId: string): number {
  const from = 1_000_000_000;
  const to = 1_100_000_000;
  return from + (createHash('sha256').update(`uid/${instance}/${pluginId}`).digest().readUInt32BE(0) % (to - from));
}
