import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { ignoreGone } from '../engine/cleanup.js';
import { errorText, type Docker } from '../engine/docker.js';
import { ensureImage } from '../images/build.js';
import { LogoMeshError } from '../errors.js';
import { LABEL, ownerLabels } from '../labels.js';
import type { Logger } from '../log.js';
import type { Manifest } from '../manifest/types.js';
import type { AuditSink } from '../audit/audit-log.js';
import { IMAGES_DIR } from '../paths.js';
import { auditEntry, type EgressDecision } from './egress/decisions.js';
import { ensureHostFirewall, FirewallRecheck, type FirewallState } from './egress/firewall.js';
import { networkHosts, normalizeHost } from './egress/hosts.js';
import { createPluginNetwork, hostAddressesOn, type PluginNetwork } from './egress/plugin-network.js';
import { EGRESS_PORT, EgressProxy } from './egress/proxy.js';

export { auditEntry, type EgressDecision } from './egress/decisions.js';
export { isNetworked, networkHosts, normalizeHost } from './egress/hosts.js';
export { EGRESS_DNS_PORT, EGRESS_PORT } from './egress/proxy.js';

/**
 * The network allow-list. A plugin with `network` capabilities gets its own internal network,
 * on which the host holds no address (no route to the host, nor anywhere but its proxy), and
 * its own egress proxy (images/egress/proxy.py) on that network and on the instance's way-out
 * bridge. The proxy lets through HTTP and CONNECT to the plugin's `hosts` only, at most
 * `resources.maxNetworkConnections` connections at a time counted from accept, and reports
 * every decision, which becomes an audit entry. It is also the plugin's only DNS server: it
 * answers every query NXDOMAIN, forwards none, and reports each. One proxy per plugin: a
 * flood spends the flooding plugin's own proxy (its threads, memory, CPU share), never
 * another's. See docs/security.md#network.
 */
export const EGRESS_IMAGE = { tag: 'logomesh/egress:latest', contextDir: path.join(IMAGES_DIR, 'egress') };

/** What a plugin container needs to use its proxy: its network, the proxy variables and its DNS server. */
export interface EgressAttachment {
  readonly network: string;
  readonly proxyUrl: string;
  readonly env: Readonly<Record<string, string>>;
  /**
   * The container's `HostConfig.Dns`: the proxy's address on the plugin network, and nothing
   * else. The engine's resolver in the container (127.0.0.11) passes it every name it does not
   * know itself; the proxy answers NXDOMAIN and reports the query.
   */
  readonly dns: readonly string[];
}

export interface EgressOptions {
  readonly docker: Docker;
  readonly instance: string;
  readonly log: Logger;
  /** A folder for the proxies' allow-list files; each proxy's is bind-mounted read-only into it. */
  readonly configDir: string;
  /** Where decisions go (the controller's audit log). */
  readonly audit?: AuditSink;
  /**
   * Existing networks every proxy also joins, to reach hosts on them by name (a compose
   * project's services, a test's servers). The way-out bridge is joined in any case.
   */
  readonly networks?: readonly string[];
}

interface Attached {
  readonly plugin: string;
  readonly network: PluginNetwork;
  readonly proxy: EgressProxy;
}

export class Egress implements AsyncDisposable {
  private readonly attached = new Map<string, Attached>();
  private readonly listeners = new Set<(d: EgressDecision) => void>();
  private readonly goneListeners = new Set<(key: string) => void>();
  private closed?: Promise<void>;
  /** Whether this process sees the plugin networks' bridges (runs in the host's network namespace). */
  private onHost?: boolean;
  private firewall?: Promise<FirewallState>;
  private readonly firewallRecheck = new FirewallRecheck(() => this.recheckFirewall());

  private constructor(
    private readonly opts: EgressOptions,
    private readonly image: string,
    private readonly wayOut: Dockerode.Network,
  ) {}

  /** Build the image if needed and create the way-out bridge the proxies share. */
  static async start(opts: EgressOptions): Promise<Egress> {
    const { docker, instance, log } = opts;
    const fail = (what: string, err: unknown) =>
      new LogoMeshError('LM_EGRESS', `the egress proxy could not be started: ${what}: ${errorText(err)}`, { instance }, { cause: err });
    const image = await ensureImage(docker, EGRESS_IMAGE, { log }).catch((err: unknown) => {
      throw fail('image build', err);
    });
    const wayOut = await docker
      .createNetwork({
        Name: `lm-${instance}-egress-${randomBytes(3).toString('hex')}`,
        Driver: 'bridge',
        Internal: false,
        CheckDuplicate: true,
        // The proxies of different plugins share this bridge and must not reach one another.
        Options: { 'com.docker.network.bridge.enable_icc': 'false' },
        Labels: ownerLabels('egress', instance),
      })
      .catch((err: unknown) => {
        throw fail('network', err);
      });
    return new Egress(opts, image.tag, wayOut);
  }

  private decided(d: EgressDecision): void {
    this.opts.audit?.(auditEntry(d));
    for (const l of this.listeners) l(d);
  }

  /** Call `fn` with every decision from now on; returns the unsubscribe function. */
  onDecision(fn: (d: EgressDecision) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Call `fn` with the key of a plugin whose proxy exited under it (killed, out of memory):
   * the plugin's connections are refused from then on. A controller restarts the plugin.
   */
  onProxyGone(fn: (key: string) => void): () => void {
    this.goneListeners.add(fn);
    return () => this.goneListeners.delete(fn);
  }

  /**
   * Create the plugin's network and start its proxy with the manifest's hosts. `key` names
   * the attachment (the plugin id in a controller).
   */
  async attach(key: string, manifest: Manifest): Promise<EgressAttachment> {
    const { docker, instance, log } = this.opts;
    await this.detach(key);
    const network = await createPluginNetwork(docker, { instance, key, plugin: manifest.id, log });
    try {
      this.onHost ??= hostAddressesOn(network.bridge) !== undefined;
      await this.checkFirewall();
      // Filled once started: the proxy may report that it is gone before start resolves.
      const ref: { proxy?: EgressProxy } = {};
      const proxy = (ref.proxy = await EgressProxy.start({
        docker,
        instance,
        log: log.child({ plugin: manifest.id, component: 'egress' }),
        image: this.image,
        wayOut: this.wayOut.id,
        networks: this.opts.networks ?? [],
        network,
        configDir: path.join(this.opts.configDir, key),
        config: { plugin: manifest.id, subnet: network.subnet, hosts: networkHosts(manifest), maxConnections: manifest.resources.maxNetworkConnections },
        cpuPercent: manifest.resources.maxCpuPercent,
        onDecision: (d) => this.decided(d),
        onGone: () => {
          // Only for the proxy in use: not one that failed to start, nor one replaced since.
          if (ref.proxy === undefined || this.attached.get(key)?.proxy !== ref.proxy) return;
          for (const l of this.goneListeners) l(key);
        },
      }));
      this.attached.set(key, { plugin: manifest.id, network, proxy });
      const proxyUrl = `http://${proxy.proxyIp}:${EGRESS_PORT}`;
      return {
        network: network.id,
        proxyUrl,
        env: { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, http_proxy: proxyUrl, https_proxy: proxyUrl, NO_PROXY: '', no_proxy: '' },
        dns: [proxy.proxyIp],
      };
    } catch (err) {
      await ignoreGone(docker.getNetwork(network.id).remove()).catch(() => undefined);
      if (err instanceof LogoMeshError) throw err;
      throw new LogoMeshError('LM_EGRESS', `could not give plugin ${manifest.id} its network: ${errorText(err)}`, { plugin: manifest.id }, { cause: err });
    }
  }

  /** The plugin's open connections through its proxy, as the proxy last reported them; undefined when it has none. */
  connections(key: string): number | undefined {
    return this.attached.get(key)?.proxy.openConnections;
  }

  /** The host firewall's second layer, checked once per engine session and every minute after a first check found it (see firewall.ts). */
  private checkFirewall(): Promise<FirewallState> {
    if (!this.firewall) {
      this.firewall = ensureHostFirewall({ log: this.opts.log, ...(this.onHost === false ? { manage: false } : {}) });
      void this.firewall.then((state) => {
        if (!this.closed) this.firewallRecheck.follow(state);
      });
    }
    return this.firewall;
  }

  private recheckFirewall(): Promise<FirewallState> {
    this.firewall = undefined;
    return this.checkFirewall();
  }

  /**
   * Stop the plugin's proxy, which first cuts the plugin's open connections (each reported,
   * reason `detached`), and remove its network (the plugin's container must be gone).
   */
  async detach(key: string): Promise<void> {
    const a = this.attached.get(key);
    if (!a) return;
    this.attached.delete(key);
    await a.proxy.close();
    await ignoreGone(this.opts.docker.getNetwork(a.network.id).remove());
  }

  /**
   * Take a host off a plugin's allow-list now, in whatever spelling: new connections to it
   * are refused, and the open ones to it are cut (each reported as a `cut` decision, reason
   * `revoked`) before this resolves, unless the proxy does not confirm within 5 s.
   */
  async revokeHost(key: string, host: string): Promise<boolean> {
    const a = this.attached.get(key);
    const normal = normalizeHost(host);
    if (!a || !normal || !a.proxy.allowList.includes(normal)) return false;
    await a.proxy.setHosts(a.proxy.allowList.filter((h) => h !== normal));
    return true;
  }

  /**
   * The engine answers again after being away: check the host firewall again, and follow each
   * proxy's output again (under live-restore the proxies kept running). A proxy that is gone
   * is reported to onProxyGone's listeners.
   */
  async engineBack(): Promise<void> {
    this.firewall = undefined;
    await this.checkFirewall();
    for (const a of this.attached.values()) {
      // A proxy that is gone is reported to onProxyGone's listeners.
      await a.proxy.resume().catch((err: unknown) => this.opts.log.warn({ plugin: a.plugin, err: errorText(err) }, 'could not follow the egress proxy output again'));
    }
  }

  /** Stop every proxy, remove every plugin network and the way-out bridge. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.firewallRecheck.stop();
      await Promise.allSettled([...this.attached.keys()].map((key) => this.detach(key)));
      await ignoreGone(this.wayOut.remove()).catch(() => undefined);
    })();
    return this.closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Remove the proxies and networks an earlier controller of this instance left (it was
 * killed): a controller calls this before it starts its own.
 */
export async function removeEgressLeftovers(docker: Docker, instance: string): Promise<void> {
  const filters = JSON.stringify({ label: [`${LABEL.instance}=${instance}`, `${LABEL.role}=egress`] });
  for (const c of await docker.listContainers({ all: true, filters })) await ignoreGone(docker.getContainer(c.Id).remove({ force: true }));
  for (const n of await docker.listNetworks({ filters })) await ignoreGone(docker.getNetwork(n.Id).remove());
}
