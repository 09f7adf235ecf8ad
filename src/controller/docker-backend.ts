import { removeByLabel } from '../engine/cleanup.js';
import { connectEngine, withTimeout, type Docker } from '../engine/docker.js';
import { Adoption } from './adoption.js';
import type { Backend, DockerParts, Lifecycle, Reconciler } from './backend.js';
import type { ControllerContext } from './context.js';
import { EgressHandle } from './egress-handle.js';
import { Launcher } from './launcher.js';
import { egressKey, pluginOfEgressKey } from './managed.js';
import type { Supervisor } from './supervisor.js';

/**
 * Plugins as containers of this host's Docker engine: the launcher's start pipeline
 * (sandbox/prepare.ts, a Unix socket per plugin), adoption by container labels, one egress
 * proxy per networked plugin. What the controller did before it had backends.
 */
export class DockerBackend implements Backend {
  readonly name = 'docker';
  readonly what = 'the Docker engine';
  private egress?: EgressHandle;
  private instance?: string;
  private cx?: ControllerContext;

  constructor(readonly docker: Docker) {}

  /** Connect to the engine (the given client, else DOCKER_HOST or the local socket); LM_ENGINE_UNAVAILABLE. */
  static async connect(docker?: Docker): Promise<DockerBackend> {
    return new DockerBackend(await connectEngine(docker));
  }

  async ping(): Promise<void> {
    await withTimeout(this.docker.ping(), 2_000, 'no answer within 2000 ms');
  }

  parts(cx: ControllerContext, supervisor: Supervisor): { lifecycle: Lifecycle; reconciler: Reconciler } {
    this.instance = cx.home.instance;
    this.cx = cx;
    this.egress = new EgressHandle({
      docker: this.docker,
      home: cx.home,
      log: cx.log,
      audit: cx.audit.record,
      ...(cx.opts.egressNetworks ? { networks: cx.opts.egressNetworks } : {}),
      // Proxies are keyed by the plugin's generation: a replacement has its own (managed.ts).
      onProxyGone: (key) => {
        const m = cx.registry.find(pluginOfEgressKey(key));
        if (m && egressKey(m) === key) void supervisor.proxyGone(m);
      },
    });
    // The supervisor's warm standbys are removed with each plugin's container.
    const launcher = new Launcher(cx, supervisor, supervisor.standbys);
    return { lifecycle: launcher, reconciler: new Adoption(cx, launcher, supervisor) };
  }

  dockerParts(): DockerParts | undefined {
    return this.egress ? { docker: this.docker, egress: this.egress } : undefined;
  }

  revokeHost(pluginId: string, host: string): Promise<boolean> {
    const m = this.cx?.registry.find(pluginId);
    return m && this.egress ? this.egress.revokeHost(egressKey(m), host) : Promise.resolve(false);
  }

  answersAgain(): void {
    this.egress?.engineBack();
  }

  async unloaded(): Promise<void> {
    // Nothing outlives a plugin's container here: its socket and network go with each teardown.
  }

  /** Whatever a failed stop left behind still carries this controller's label. */
  async removeAll(): Promise<void> {
    if (this.instance !== undefined) await removeByLabel(this.docker, this.instance).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.egress?.close();
  }
}
