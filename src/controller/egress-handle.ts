import path from 'node:path';
import type { AuditSink } from '../audit/audit-log.js';
import { errorText, type Docker } from '../engine/docker.js';
import type { Logger } from '../log.js';
import { Egress, removeEgressLeftovers } from '../sandbox/egress.js';
import type { Home } from './home.js';

/**
 * The controller's egress proxy: started with the first plugin that has network
 * capabilities (one per controller), its leftovers from an earlier controller removed
 * first. A failed start is tried again by the next networked plugin.
 */
export class EgressHandle {
  private egress?: Promise<Egress>;
  /** The proxy once started, for what must be answered at once (the monitor's connection counts). */
  private ready?: Egress;

  constructor(
    private readonly opts: {
      readonly docker: Docker;
      readonly home: Home;
      readonly log: Logger;
      readonly audit: AuditSink;
      /** Existing networks the proxy joins besides its own (ControllerOptions.egressNetworks). */
      readonly networks?: readonly string[];
      /** A running plugin's proxy exited under it. */
      readonly onProxyGone: (pluginId: string) => void;
    },
  ) {}

  /** The proxy, started on first use. */
  get(): Promise<Egress> {
    this.egress ??= (async () => {
      const { docker, home, log } = this.opts;
      await removeEgressLeftovers(docker, home.instance);
      const egress = await Egress.start({
        docker,
        instance: home.instance,
        log,
        configDir: path.join(home.dir, 'egress'),
        audit: this.opts.audit,
        ...(this.opts.networks ? { networks: this.opts.networks } : {}),
      });
      egress.onProxyGone(this.opts.onProxyGone);
      this.ready = egress;
      return egress;
    })();
    this.egress.catch(() => (this.egress = undefined));
    return this.egress;
  }

  /** The proxy if it was started (no start otherwise). */
  started(): Promise<Egress> | undefined {
    return this.egress;
  }

  /** A plugin's open connections through its egress proxy, as last reported; undefined without one. */
  connections(pluginId: string): number | undefined {
    return this.ready?.connections(pluginId);
  }

  /** The engine came back: the proxies kept running (live-restore); follow their decisions again, re-check the host firewall. */
  engineBack(): void {
    void this.egress?.then((e) => e.engineBack()).catch((err: unknown) => this.opts.log.warn({ err: errorText(err) }, 'egress after the engine came back'));
  }

  /** Take a host off a running plugin's allow-list now; false when no proxy runs (it applies at the plugin's next start). */
  async revokeHost(pluginId: string, host: string): Promise<boolean> {
    return this.egress ? (await this.egress).revokeHost(pluginId, host) : false;
  }

  /** Remove a plugin's network; never throws (logged). */
  async detach(pluginId: string): Promise<void> {
    if (!this.egress) return;
    try {
      await (await this.egress).detach(pluginId);
    } catch (err) {
      this.opts.log.warn({ plugin: pluginId, err: errorText(err) }, 'could not remove the plugin network now');
    }
  }

  async close(): Promise<void> {
    if (this.egress) await this.egress.then((e) => e.close()).catch(() => undefined);
  }
}
