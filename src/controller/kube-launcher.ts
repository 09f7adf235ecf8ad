import { randomBytes } from 'node:crypto';
import type { KubeResource } from '../cluster/api.js';
import { withRun } from '../cluster/plugin-objects.js';
import { PluginWorkload } from '../cluster/plugin-workload.js';
import { LogoMeshError } from '../errors.js';
import { policyOf } from '../hub/acl.js';
import type { Lifecycle } from './backend.js';
import type { ControllerContext } from './context.js';
import { beginStop } from './graceful-stop.js';
import type { KubeBackend } from './kube-backend.js';
import { verifyBeforeStart } from './load-checks.js';
import { isUp, type Managed } from './managed.js';
import { DEFAULTS } from './options.js';
import { readyOrExit, waitReady, type ReadyWait } from './readiness.js';
import type { Supervisor } from './supervisor.js';

/**
 * A plugin's way from `loaded` to `ready` and back on Kubernetes: signature checked again,
 * its objects rendered (the policy applied), its hub key made or read, the hub told to take
 * its TCP connection with that key, its proxy and policies applied, then its Deployment, with
 * a run label of this start; ready when its hello arrives. Stopped with the shutdown message,
 * then its Pods deleted with a grace period (SIGTERM, then SIGKILL); torn down without a trace
 * on every path. The steps and their audit entries are the Docker launcher's.
 */
export class KubeLauncher implements Lifecycle {
  /** What each running plugin's start applied besides its Deployment, to remove at its teardown. */
  private readonly applied = new Map<string, readonly KubeResource[]>();

  constructor(
    private readonly cx: ControllerContext,
    private readonly supervisor: Supervisor,
    private readonly backend: KubeBackend,
  ) {}

  private get stopGraceMs(): number {
    return this.cx.opts.stopGraceMs ?? DEFAULTS.stopGraceMs;
  }

  async start(m: Managed): Promise<void> {
    const { cx, backend } = this;
    if (isUp(m)) return;
    this.supervisor.stopTimers(m);
    if (cx.closing()) throw new LogoMeshError('LM_PLUGIN_UNAVAILABLE', 'the controller is shutting down', {});
    const { id } = m.loaded.manifest;
    for (const dep of m.loaded.manifest.dependencies.plugins) {
      if (!cx.hub.isReady(dep)) throw new LogoMeshError('LM_DEPENDENCY', `cannot start ${id}: its dependency ${dep} is not ready`, { plugin: id, dependency: dep });
    }
    m.state = 'starting';
    delete m.exitCode;
    delete m.oomKilled;
    const loadStart = Date.now();
    let ready: ReadyWait | undefined;
    try {
      const signed = await verifyBeforeStart(m.loaded, cx.opts.policy, cx.audit.record); // LM_SIGNATURE: the folder may have changed since load
      if (signed) m.signed = signed;
      else delete m.signed;
      const objects = backend.objectsFor(m);
      this.applied.set(id, objects.setup);
      ready = await this.attachHub(m);
      for (const o of objects.setup) await backend.api.put(o);
      const run = randomBytes(4).toString('hex');
      const workload = new PluginWorkload(backend.api, backend.pods, objects.workload.metadata?.name ?? '', run, cx.log.child({ plugin: id }));
      workload.follow(false, () => m.logs.writable('stdout'));
      m.container = workload;
      await backend.api.put(withRun(objects.workload, run));
      m.startedAt = Date.now();
      const exited = workload.wait();
      this.supervisor.watchExit(m, workload, exited);
      await readyOrExit(m, ready, exited, { audit: cx.audit.record, kernel: undefined });
      m.state = 'ready';
      m.readySince = Date.now();
      m.startMs = Date.now() - loadStart;
      this.supervisor.startHealth(m);
      cx.persist();
      cx.audit.record({ who: 'controller', action: 'start', resource: id, result: 'ready' });
      cx.log.info({ plugin: id, ms: m.startMs, run }, 'plugin ready');
    } catch (err) {
      ready?.cancel();
      const e = err instanceof LogoMeshError ? err : new LogoMeshError('LM_KUBE_API', (err as Error).message, {}, { cause: err });
      cx.audit.record({ who: 'controller', action: 'start', resource: id, result: 'failed', code: e.code, reason: e.message });
      m.state = 'failed';
      m.lastError = { code: e.code, message: e.message };
      await this.teardown(m);
      throw e;
    }
  }

  /**
   * Its hub key (made the first time, read back after), and the hub told to take its TCP
   * connection with it; the wait for its hello starts first, so a plugin that reconnects at
   * once (an adopted one) is not missed.
   */
  async attachHub(m: Managed): Promise<ReadyWait> {
    const { cx, backend } = this;
    const id = m.loaded.manifest.id;
    let key = await backend.keys.ensure(id);
    await cx.hub.detachPlugin(id);
    const ready = waitReady(cx.hub, m, cx.opts.startTimeoutMs ?? DEFAULTS.startTimeoutMs);
    cx.hub.attachRemotePlugin(policyOf(m.loaded.manifest), {
      key: () => key,
      // A bad signature may be a rotated Secret: read it once more before refusing.
      reload: async () => (key = (await backend.keys.read(id)) ?? key),
    });
    return ready;
  }

  async stop(m: Managed): Promise<void> {
    const { cx } = this;
    const workload = await beginStop(cx, (m) => this.supervisor.stopTimers(m), m, this.stopGraceMs, 'deleting its Pod');
    if (!workload) return;
    const { id } = m.loaded.manifest;
    await workload.stop(Math.ceil(this.stopGraceMs / 1000)).catch((err: unknown) => cx.log.warn({ plugin: id, err: (err as Error).message }, 'could not stop the plugin Pod now'));
    await this.teardown(m);
    m.state = 'stopped';
    cx.audit.record({ who: 'controller', action: 'stop', resource: id, result: 'stopped' });
  }

  async killAtOnce(m: Managed): Promise<number> {
    this.supervisor.stopTimers(m);
    m.state = 'stopping';
    await m.container!.kill();
    return Date.now();
  }

  /** Remove its Deployment, what its start applied besides, and its hub connection; never throws. */
  async teardown(m: Managed): Promise<void> {
    const { cx, backend } = this;
    const id = m.loaded.manifest.id;
    try {
      await m.container?.remove();
    } catch (err) {
      cx.log.warn({ plugin: id, err: (err as Error).message }, 'could not remove the plugin Deployment now');
    }
    for (const o of [...(this.applied.get(id) ?? [])].reverse()) {
      await backend.api.remove({ apiVersion: o.apiVersion ?? 'v1', kind: o.kind ?? '', metadata: { name: o.metadata?.name ?? '' } }).catch((err: unknown) => cx.log.warn({ plugin: id, object: `${o.kind} ${o.metadata?.name}`, err: (err as Error).message }, 'could not remove a plugin object now'));
    }
    this.applied.delete(id);
    await cx.hub.detachPlugin(id);
  }

  /** The objects an adopted plugin's start applied (the same as a new start's): removed at its teardown. */
  adopted(m: Managed): void {
    this.applied.set(m.loaded.manifest.id, this.backend.objectsFor(m).setup);
  }
}
