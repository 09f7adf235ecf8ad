import { LABEL } from '../labels.js';
import type { KubeObject } from '../kubernetes/render.js';
import type { KubeResource } from './api.js';

/** The label of one start's Pods: a plugin's Deployment gets a new value at each start, so its Pods of an earlier start are never taken for this one's. */
export const RUN_LABEL = 'io.logomesh.run';

/** What the backend applies for one plugin, in this order. */
export interface PluginObjects {
  /** Its egress proxy's allow-list, Service and Deployment, its NetworkPolicies: what the workload needs first. */
  readonly setup: readonly KubeResource[];
  /** Its Deployment. */
  readonly workload: KubeResource;
}

type Template = { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } };

/**
 * One plugin's objects out of the whole installation as `logomesh kube render` renders it
 * (kubernetes/render.ts): exactly what the render gives this plugin, so that what the backend
 * creates and what a GitOps user applies are the same objects. The hub's key (a Secret) is
 * not among them: hub-keys.ts makes it. `revokedHosts` (normal form) are taken off the
 * proxy's allow-list, as the Docker backend takes them off before the container exists.
 */
export function pluginObjects(installation: readonly KubeObject[], pluginId: string, revokedHosts: readonly string[]): PluginObjects {
  const own = installation.filter((o) => o.metadata?.labels?.[LABEL.plugin] === pluginId) as KubeResource[];
  const role = (o: KubeResource) => o.metadata?.labels?.[LABEL.role];
  const workload = own.find((o) => o.kind === 'Deployment' && role(o) === 'plugin');
  if (!workload) throw new Error(`the render has no Deployment for plugin ${pluginId}`);
  const order = ['ConfigMap', 'Service', 'NetworkPolicy', 'Deployment'];
  const setup = own
    .filter((o) => o !== workload)
    .sort((a, b) => order.indexOf(a.kind ?? '') - order.indexOf(b.kind ?? ''))
    .map((o) => (o.kind === 'ConfigMap' && role(o) === 'egress' ? withoutHosts(o, revokedHosts) : o));
  return { setup, workload };
}

/** The Deployment of one start: its Pods carry `run`, so this start follows only its own Pods. */
export function withRun(deployment: KubeResource, run: string): KubeResource {
  const d = structuredClone(deployment) as KubeResource & Template;
  const template = d.spec?.template;
  if (!template?.metadata) throw new Error(`Deployment ${d.metadata?.name ?? '?'} has no Pod template`);
  template.metadata.labels = { ...template.metadata.labels, [RUN_LABEL]: run };
  return d;
}

/** The run label of a Deployment's Pods (an adopted one's). */
export function runOf(deployment: KubeResource): string | undefined {
  return (deployment as KubeResource & Template).spec?.template?.metadata?.labels?.[RUN_LABEL];
}

function withoutHosts(configMap: KubeResource, revoked: readonly string[]): KubeResource {
  if (revoked.length === 0 || !configMap.data?.['config.json']) return configMap;
  const config = JSON.parse(configMap.data['config.json']) as { hosts: string[] };
  config.hosts = config.hosts.filter((h) => !revoked.includes(h));
  return { ...configMap, data: { ...configMap.data, 'config.json': `${JSON.stringify(config, null, 2)}\n` } } as KubeResource;
}
