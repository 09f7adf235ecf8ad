import { KubeApi, type ClusterOptions, type KubeResource } from '../cluster/api.js';
import { HubKeys } from '../cluster/hub-keys.js';
import { pluginObjects, type PluginObjects } from '../cluster/plugin-objects.js';
import { PluginPods } from '../cluster/plugin-workload.js';
import { withTimeout } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import { kubeLabels } from '../kubernetes/names.js';
import { pluginFolderSha256, pluginImageRef } from '../kubernetes/plugin-image.js';
import { renderInstallation, type KubeObject } from '../kubernetes/render.js';
import type { RenderedPlugin } from '../kubernetes/rendered.js';
import { HUB_PLUGIN_PORT, kubeTarget, type KubeTarget, type TargetOptions } from '../kubernetes/target.js';
import { LABEL } from '../labels.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { Backend, Lifecycle, Reconciler } from './backend.js';
import type { ControllerContext } from './context.js';
import { KubeAdoption } from './kube-adoption.js';
import { KubeLauncher } from './kube-launcher.js';
import type { Managed } from './managed.js';
import type { Supervisor } from './supervisor.js';

export type KubeBackendOptions = ClusterOptions &
  Omit<TargetOptions, 'namespace'> & {
    /** The hub's port for plugins (default LOGOMESH_HUB_PLUGIN_PORT, else 7070; 0: any free port) and its address (default all). */
    readonly hubPluginPort?: number;
    readonly hubBind?: string;
  };

/** The proxy's grace at a revocation: it holds no state worth a longer goodbye. */
const PROXY_RESTART_GRACE_S = 1;

/** The kinds a plugin's own objects are, each with its API version, in the order they are removed. */
const PLUGIN_KINDS: readonly (readonly [string, string])[] = [
  ['apps/v1', 'Deployment'],
  ['v1', 'Service'],
  ['v1', 'ConfigMap'],
  ['networking.k8s.io/v1', 'NetworkPolicy'],
];

/**
 * Plugins on a Kubernetes cluster (docs/kubernetes.md#the-kubernetes-backend): each start
 * applies exactly the objects `logomesh kube render` renders for the plugin (its Deployment,
 * and for a networked plugin its proxy's Deployment, Service and allow-list, and its
 * NetworkPolicies), with its hub key in a Secret of its own; one watch of the plugin Pods
 * reports exits, OOM kills and the kubelet's restarts to the same supervisor and restart
 * policy as on Docker. The namespace-wide objects (the namespace itself, RBAC, the deny-all
 * policy, the hub Service, seccomp profiles) are the operator's, from the render: the
 * controller's Role cannot make them.
 */
export class KubeBackend implements Backend {
  readonly name = 'kubernetes';
  readonly what = 'the Kubernetes API server';
  readonly keys: HubKeys;
  readonly pods = new PluginPods();
  private cx?: ControllerContext;
  /** The port the hub takes plugins on, once it listens (reconcile, before the first start). */
  pluginPort?: number;
  /** Plugins loaded from the render's manifests folder: their objects as rendered (no folder to render them from). */
  private readonly rendered = new Map<string, readonly KubeObject[]>();

  private constructor(
    readonly api: KubeApi,
    readonly target: KubeTarget,
    private readonly log: Logger,
    private readonly opts: KubeBackendOptions = {},
  ) {
    this.keys = new HubKeys(api, target.instance, log);
  }

  /** The cluster from the usual kubeconfig places (or `opts.server`), answering; LM_KUBE_CONFIG, LM_KUBE_API. */
  static async connect(opts: KubeBackendOptions, log: Logger): Promise<KubeBackend> {
    const api = await KubeApi.connect(opts, log);
    const target = kubeTarget({ ...opts, namespace: api.namespace });
    const backend = new KubeBackend(api, target, log.child({ component: 'kube-backend', namespace: api.namespace }), opts);
    await backend.ping();
    return backend;
  }

  /** Open the hub's plugin port, once: plugins reach it through the hub Service. */
  async listen(): Promise<void> {
    if (this.pluginPort !== undefined) return;
    const port = this.opts.hubPluginPort ?? Number(process.env.LOGOMESH_HUB_PLUGIN_PORT ?? HUB_PLUGIN_PORT);
    this.pluginPort = await this.cx!.hub.listenPlugins(port, this.opts.hubBind ?? '0.0.0.0');
    this.log.info({ port: this.pluginPort }, 'the hub takes plugins on TCP');
  }

  async ping(): Promise<void> {
    await withTimeout(this.api.version(), 5_000, 'no answer within 5000 ms');
  }

  parts(cx: ControllerContext, supervisor: Supervisor): { lifecycle: Lifecycle; reconciler: Reconciler } {
    // Labels and plugin uids are derived from the instance: it must be the one the render used.
    if (cx.home.instance !== this.target.instance) {
      throw new LogoMeshError('LM_KUBE_CONFIG', `the controller's instance '${cx.home.instance}' is not the installation's ('${this.target.instance}', its namespace): set LOGOMESH_INSTANCE=${this.target.instance}`, {
        expected: this.target.instance,
        found: cx.home.instance,
      });
    }
    this.cx = cx;
    const launcher = new KubeLauncher(cx, supervisor, this);
    return { lifecycle: launcher, reconciler: new KubeAdoption(cx, launcher, supervisor, this) };
  }

  /**
   * A plugin's objects as the render renders them now (the policy in force, its folder's
   * image), with the hosts the operator revoked off its proxy's allow-list. Throws what the
   * render throws (LM_POLICY_DENIED, LM_KUBE_RENDER, ...).
   */
  objectsFor(m: Managed): PluginObjects {
    const cx = this.cx!;
    const id = m.loaded.manifest.id;
    const rendered = this.rendered.get(id);
    if (rendered) return pluginObjects(rendered, id, cx.grants.revokedHosts(id));
    const loaded = cx.registry.records().map((r) => r.loaded);
    const images = Object.fromEntries(loaded.map((l) => [l.manifest.id, pluginImageRef(this.target.registry, l, pluginFolderSha256(l))]));
    const installation = renderInstallation({ loaded, policy: cx.policy(), target: this.target, images });
    return pluginObjects(installation, id, cx.grants.revokedHosts(id));
  }

  /**
   * The plugins of the render's manifests folder (kubernetes/rendered.ts), for a controller
   * in the cluster: their manifests to load, and at each start their objects as rendered.
   */
  useRendered(plugins: readonly RenderedPlugin[]): LoadedManifest[] {
    for (const p of plugins) this.rendered.set(p.loaded.manifest.id, p.objects);
    return plugins.map((p) => p.loaded);
  }

  /**
   * The proxy reads its allow-list from a ConfigMap: write it anew without the host, then
   * delete the proxy's Pods. The kubelet would bring the new list to a running Pod only at
   * its next sync (up to about a minute) and the proxy keeps the connections it has; the
   * Deployment's new Pod mounts the list as written now, and every connection through the
   * old one is cut, as the Docker proxy's reload cuts them.
   */
  async revokeHost(pluginId: string): Promise<boolean> {
    const m = this.cx?.registry.find(pluginId);
    if (!m || (m.state !== 'ready' && m.state !== 'starting')) return false;
    const allowList = this.objectsFor(m).setup.filter((o) => o.kind === 'ConfigMap');
    if (allowList.length === 0) return false;
    for (const o of allowList) await this.api.put(o);
    const proxies = await this.api.listPods(selectorOf(kubeLabels('egress', this.target.instance, pluginId)));
    for (const name of proxies.items.map((p) => p.metadata?.name).filter((n): n is string => !!n)) await this.api.remove({ apiVersion: 'v1', kind: 'Pod', metadata: { name } }, PROXY_RESTART_GRACE_S);
    this.log.info({ plugin: pluginId, proxies: proxies.items.length }, 'egress proxy restarted with the allow-list as revoked');
    return true;
  }

  answersAgain(): void {
    // The Pod watch lists again by itself: nothing was lost.
  }

  async unloaded(pluginId: string): Promise<void> {
    await this.keys.remove(pluginId);
  }

  /** Every plugin and proxy object of the installation, and the hub keys of the plugins loaded; never throws. */
  async removeAll(): Promise<void> {
    for (const role of ['plugin', 'egress'] as const) {
      const selector = selectorOf(kubeLabels(role, this.target.instance));
      for (const [apiVersion, kind] of PLUGIN_KINDS) {
        try {
          for (const o of await this.api.list<KubeResource>(apiVersion, kind, selector)) await this.api.remove({ apiVersion, kind, metadata: { name: o.metadata?.name ?? '' } });
        } catch (err) {
          this.log.warn({ kind, err: (err as Error).message }, 'could not remove what is left of the plugins now');
        }
      }
    }
    for (const id of this.cx?.registry.ids() ?? []) await this.keys.remove(id).catch((err: unknown) => this.log.warn({ plugin: id, err: (err as Error).message }, 'could not remove the hub key'));
  }

  async close(): Promise<void> {
    this.pods.close();
  }
}

/** `a=b,c=d`. */
export function selectorOf(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The selector of every plugin Pod of the installation. */
export function pluginPodSelector(instance: string): string {
  return selectorOf({ [LABEL.owner]: 'logomesh', [LABEL.role]: 'plugin', [LABEL.instance]: instance });
}
