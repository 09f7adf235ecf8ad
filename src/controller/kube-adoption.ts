import type { KubeResource } from '../cluster/api.js';
import { runOf } from '../cluster/plugin-objects.js';
import { PluginWorkload } from '../cluster/plugin-workload.js';
import { PodWatch } from '../cluster/pod-watch.js';
import { kubeLabels } from '../kubernetes/names.js';
import { LABEL } from '../labels.js';
import { isNetworked } from '../sandbox/egress.js';
import type { Reconciler } from './backend.js';
import type { ControllerContext } from './context.js';
import { pluginPodSelector, selectorOf, type KubeBackend } from './kube-backend.js';
import type { KubeLauncher } from './kube-launcher.js';
import { serialize, type Managed } from './managed.js';
import { readyOrExit, type ReadyWait } from './readiness.js';
import type { Supervisor } from './supervisor.js';

type Meta = KubeResource & { metadata?: { annotations?: Record<string, string>; creationTimestamp?: unknown } };

/**
 * A controller that follows another one (its Pod was rescheduled, or it was killed) finds the
 * plugin Deployments of the installation by label, and adopts each one whose plugin is loaded
 * with the same manifest: the plugin keeps running, its SDK reconnects to the hub Service with
 * a fresh handshake, and its key is read back from its Secret. Every other plugin Deployment
 * is removed, with the proxies and policies of every plugin not adopted (a start applies them
 * again). Networked plugins are started anew, as on Docker. Once, before the first start; the
 * plugin Pod watch starts here.
 */
export class KubeAdoption implements Reconciler {
  private reconciled?: Promise<void>;

  constructor(
    private readonly cx: ControllerContext,
    private readonly launcher: KubeLauncher,
    private readonly supervisor: Supervisor,
    private readonly backend: KubeBackend,
  ) {}

  reconcile(): Promise<void> {
    this.reconciled ??= this.run();
    this.reconciled.catch(() => (this.reconciled = undefined));
    return this.reconciled;
  }

  private async run(): Promise<void> {
    const { cx, backend } = this;
    const { api, pods } = backend;
    const instance = backend.target.instance;
    await backend.listen();
    if (!pods.watch) {
      const watch = new PodWatch(api, pluginPodSelector(instance), cx.log.child({ component: 'pod-watch' }), pods.onEvent);
      await watch.start(); // LM_KUBE_API: no start without knowing the Pods
      pods.watch = watch;
    }
    const found = (await api.list<Meta>('apps/v1', 'Deployment', selectorOf(kubeLabels('plugin', instance)))).sort((a, b) => String(b.metadata?.creationTimestamp ?? '').localeCompare(String(a.metadata?.creationTimestamp ?? '')));
    const adopted = new Set<string>();
    const adoptions: Promise<void>[] = [];
    for (const d of found) {
      const id = d.metadata?.labels?.[LABEL.plugin] ?? '';
      const m = cx.registry.find(id);
      const run = runOf(d);
      const usable = m && run !== undefined && !adopted.has(id) && m.state === 'loaded' && d.metadata?.annotations?.[LABEL.manifestHash] === m.loaded.hash && !isNetworked(m.loaded.manifest) && (d.spec as { replicas?: number } | undefined)?.replicas !== 0;
      if (!usable) {
        cx.log.warn({ plugin: id, deployment: d.metadata?.name }, 'removing a plugin Deployment left by an earlier controller');
        await api.remove({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: d.metadata?.name ?? '' } });
        continue;
      }
      adopted.add(id);
      adoptions.push(serialize(m, () => this.adopt(m, d.metadata?.name ?? '', run)));
    }
    await this.removeOthers(adopted);
    await Promise.allSettled(adoptions);
  }

  /** The proxies, allow-lists, Services and NetworkPolicies of plugins not adopted: their next start applies them anew. */
  private async removeOthers(adopted: ReadonlySet<string>): Promise<void> {
    const { api, target } = this.backend;
    const kinds = [
      ['apps/v1', 'Deployment', 'egress'],
      ['v1', 'Service', 'egress'],
      ['v1', 'ConfigMap', 'egress'],
      ['networking.k8s.io/v1', 'NetworkPolicy', 'egress'],
      ['networking.k8s.io/v1', 'NetworkPolicy', 'plugin'],
    ] as const;
    for (const [apiVersion, kind, role] of kinds) {
      for (const o of await api.list<KubeResource>(apiVersion, kind, selectorOf(kubeLabels(role, target.instance)))) {
        if (adopted.has(o.metadata?.labels?.[LABEL.plugin] ?? '')) continue;
        await api.remove({ apiVersion, kind, metadata: { name: o.metadata?.name ?? '' } });
      }
    }
  }

  private async adopt(m: Managed, name: string, run: string): Promise<void> {
    const { cx, backend } = this;
    const { id } = m.loaded.manifest;
    m.state = 'starting';
    const workload = new PluginWorkload(backend.api, backend.pods, name, run, cx.log.child({ plugin: id }));
    m.container = workload;
    let ready: ReadyWait | undefined;
    try {
      this.launcher.adopted(m);
      ready = await this.launcher.attachHub(m);
      workload.follow(true, () => m.logs.writable('stdout'));
      const exited = workload.wait();
      this.supervisor.watchExit(m, workload, exited);
      await readyOrExit(m, ready, exited, { audit: cx.audit.record, kernel: undefined });
      m.state = 'ready';
      m.readySince = Date.now();
      m.startedAt = Date.now();
      this.supervisor.startHealth(m);
      cx.log.info({ plugin: id, deployment: name }, 'adopted a running plugin Deployment');
      cx.persist();
    } catch (err) {
      ready?.cancel();
      cx.log.warn({ plugin: id, err: (err as Error).message }, 'could not adopt a running plugin Deployment; it is removed and started anew');
      await this.launcher.teardown(m);
      delete m.container;
      m.state = 'loaded';
    }
  }
}
