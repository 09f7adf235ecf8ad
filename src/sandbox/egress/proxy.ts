import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { ignoreGone } from '../../engine/cleanup.js';
import { errorText, type Docker } from '../../engine/docker.js';
import { LogoMeshError } from '../../errors.js';
import { LABEL, ownerLabels } from '../../labels.js';
import type { Logger } from '../../log.js';
import { CPU_PERIOD_US, cpuQuotaUs } from '../container-spec.js';
import { seccompProfile, seccompSecurityOpt } from '../../seccomp/profiles.js';
import type { EgressDecision } from './decisions.js';
import type { PluginNetwork } from './plugin-network.js';
import { ProxyOutput } from './proxy-output.js';

export const EGRESS_PORT = 3128;
export const EGRESS_DNS_PORT = 53;
const CONFIG_MOUNT = '/etc/logomesh-egress';
const MB = 1024 * 1024;
/** How long a change of the allow-list waits for the proxy to say it applied it. */
const APPLY_TIMEOUT_MS = 5_000;
const LISTEN_TIMEOUT_MS = 15_000;

/** What the proxy of one plugin enforces; written to its config file (images/egress/egress_config.py). */
export interface ProxyConfig {
  readonly plugin: string;
  readonly subnet: string;
  /** Normalised `host:port` entries (hosts.ts). */
  readonly hosts: readonly string[];
  /** Connections at a time, counted from accept: requests still being read, and open tunnels. */
  readonly maxConnections: number;
}

/**
 * The kernel-enforced budget of one plugin's proxy, from its connection limit: a thread per
 * connection and one per relay direction, a few for DNS and reloads; buffers per connection.
 * Another plugin's proxy has its own, so a flood spends only the flooding plugin's.
 */
export function proxyLimits(maxConnections: number, cpuPercent: number): { PidsLimit: number; Memory: number; nofile: number; CpuQuota: number } {
  return {
    PidsLimit: 2 * maxConnections + 32,
    Memory: 48 * MB + maxConnections * 256 * 1024,
    nofile: 2 * maxConnections + 64,
    // The plugin's own CPU share, at least a tenth of a core: the proxy works for it.
    CpuQuota: cpuQuotaUs(Math.max(cpuPercent, 10)),
  };
}

export interface ProxyOptions {
  readonly docker: Docker;
  readonly instance: string;
  readonly log: Logger;
  readonly image: string;
  /** The bridge with a way out that every proxy of the instance shares (no traffic between them). */
  readonly wayOut: string;
  /** More networks to join, to reach hosts on them by name. */
  readonly networks: readonly string[];
  readonly network: PluginNetwork;
  readonly configDir: string;
  readonly config: ProxyConfig;
  readonly cpuPercent: number;
  readonly onDecision: (d: EgressDecision) => void;
  /** The proxy exited while in use (killed, out of memory): its plugin has no way out any more. */
  readonly onGone: () => void;
}

/** One plugin's egress proxy container, from start to removal. */
export class EgressProxy {
  private generation = 0;
  private applied = 0;
  private readonly appliedWaiters = new Set<() => void>();
  private writes: Promise<void> = Promise.resolve();
  /** Set on close: the proxy then refuses everything and cuts what is open as `detached`. */
  private detached = false;
  /** The last change of the allow-list could not be signalled (the engine was away). */
  private unsignalled = false;
  private following = false;
  private closed?: Promise<void>;
  private readonly output: ProxyOutput;
  /** The proxy's address on the plugin network, once started. */
  proxyIp = '';
  /** The plugin's open connections through the proxy, as it last reported them (it reports each change, at most 4 times a second, and at once at the budget). */
  openConnections = 0;

  private constructor(
    private readonly opts: ProxyOptions,
    readonly container: Dockerode.Container,
    private hosts: readonly string[],
  ) {
    this.output = new ProxyOutput(opts.docker, container, opts.log, { line: (o) => this.line(o), ended: () => this.ended() });
  }

  /** Create, connect and start the proxy; resolves once it listens, with its address known. */
  static async start(opts: ProxyOptions): Promise<EgressProxy> {
    const { docker, config } = opts;
    mkdirSync(opts.configDir, { recursive: true, mode: 0o755 });
    // The proxy runs as nobody: it must be able to read the folder (mkdtemp makes it 0700).
    chmodSync(opts.configDir, 0o755);
    writeConfig(opts.configDir, { generation: 0, ...config });
    const limits = proxyLimits(config.maxConnections, opts.cpuPercent);
    const container = await docker.createContainer({
      name: `lm-${opts.instance}-egress-${config.plugin}-${randomBytes(3).toString('hex')}`,
      Image: opts.image,
      Labels: { ...ownerLabels('egress', opts.instance), [LABEL.plugin]: config.plugin },
      User: '65534:65534',
      Env: [`LOGOMESH_EGRESS_CONFIG=${CONFIG_MOUNT}/config.json`, `LOGOMESH_EGRESS_PORT=${EGRESS_PORT}`, `LOGOMESH_EGRESS_DNS_PORT=${EGRESS_DNS_PORT}`],
      HostConfig: {
        NetworkMode: opts.wayOut,
        Sysctls: {
          // Lets nobody bind the DNS port without any capability, in the proxy's own network
          // namespace only. (Engines from 20.10 default to 0; older ones to 1024.)
          'net.ipv4.ip_unprivileged_port_start': String(EGRESS_DNS_PORT),
          // The proxy joins the plugin network and the way out: it must never route between them.
          'net.ipv4.ip_forward': '0',
        },
        Mounts: [{ Type: 'bind', Source: opts.configDir, Target: CONFIG_MOUNT, ReadOnly: true }],
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        CapAdd: [],
        // The networked plugin profile: IP sockets, but no raw sockets, netlink or the rest.
        SecurityOpt: ['no-new-privileges:true', seccompSecurityOpt(seccompProfile('network'))],
        Privileged: false,
        Memory: limits.Memory,
        MemorySwap: limits.Memory,
        PidsLimit: limits.PidsLimit,
        CpuPeriod: CPU_PERIOD_US,
        CpuQuota: limits.CpuQuota,
        Ulimits: [{ Name: 'nofile', Soft: limits.nofile, Hard: limits.nofile }],
        Init: true,
        RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
      },
    });
    const proxy = new EgressProxy(opts, container, config.hosts);
    try {
      await docker.getNetwork(opts.network.id).connect({ Container: container.id });
      for (const n of opts.networks) await docker.getNetwork(n).connect({ Container: container.id });
      // Started first: following the output of a container not yet started ends at once.
      await container.start();
      await proxy.listening();
      const info = await container.inspect();
      proxy.proxyIp = info.NetworkSettings.Networks[opts.network.name]?.IPAddress ?? '';
      if (!proxy.proxyIp) throw new Error(`the proxy has no address on ${opts.network.name}`);
      return proxy;
    } catch (err) {
      await proxy.remove();
      if (err instanceof LogoMeshError) throw err;
      throw new LogoMeshError('LM_EGRESS', `the egress proxy of plugin ${config.plugin} could not be started: ${errorText(err)}`, { plugin: config.plugin }, { cause: err });
    }
  }

  private listeningWaiter?: () => void;

  private listening(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new LogoMeshError('LM_EGRESS', `the egress proxy did not start listening within ${LISTEN_TIMEOUT_MS} ms`, {})), LISTEN_TIMEOUT_MS);
      timer.unref();
      this.listeningWaiter = () => {
        clearTimeout(timer);
        resolve();
      };
      this.following = true;
      this.output.follow().catch((err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
  }

  private line(obj: Record<string, unknown>): void {
    const { log } = this.opts;
    if (obj.event === 'listening') this.listeningWaiter?.();
    else if (obj.event === 'config' && typeof obj.generation === 'number') this.appliedUpTo(obj.generation);
    else if (obj.event === 'connections' && typeof obj.open === 'number') this.openConnections = obj.open;
    else if (obj.event === 'config-error') log.error({ reason: obj.reason }, 'the egress proxy refused its allow-list file');
    else if (obj.event === 'dns-unavailable') log.warn({ reason: obj.reason }, 'the egress proxy could not listen for DNS: plugin lookups time out and are not audited');
    else if (typeof obj.result === 'string') this.opts.onDecision(obj as unknown as EgressDecision);
  }

  private ended(): void {
    this.following = false;
    if (this.closed) return;
    // The proxy exited, or the engine went away (then it is followed again when the engine answers).
    void this.container.inspect().then(
      (info) => {
        if (!this.closed && !info.State.Running) this.gone();
      },
      () => this.opts.log.warn({ plugin: this.opts.config.plugin }, 'the egress proxy output stream ended with the engine; following again when the engine answers'),
    );
  }

  private gone(): void {
    this.opts.log.error({ plugin: this.opts.config.plugin }, `LM_EGRESS: the egress proxy of plugin ${this.opts.config.plugin} exited; its connections are refused`);
    this.opts.onGone();
  }

  /**
   * After the engine was away: follow the output again if the proxy still runs (decisions
   * made meanwhile are read from the log, none twice). Returns false if the proxy is gone.
   */
  async resume(): Promise<boolean> {
    if (this.closed) return true;
    const info = await this.container.inspect().catch(() => undefined);
    if (!info?.State.Running) {
      this.gone();
      return false;
    }
    if (!this.following) {
      this.following = true;
      await this.output.follow().catch((err: unknown) => {
        this.following = false;
        throw err;
      });
    }
    // A revocation made while the engine was away is in the file, but open connections are
    // cut only on a reload: signal it now.
    if (this.unsignalled) await this.push();
    return true;
  }

  get allowList(): readonly string[] {
    return this.hosts;
  }

  /** Replace the allow-list; resolves once the proxy applied it (open connections it no longer covers are cut). */
  setHosts(hosts: readonly string[]): Promise<void> {
    this.hosts = hosts;
    return this.push();
  }

  /**
   * Write the config file (atomically), tell the proxy to read it and wait until it says it
   * has: by then the connections the new list no longer covers are closed.
   */
  private push(): Promise<void> {
    this.writes = this.writes.then(async () => {
      const generation = ++this.generation;
      writeConfig(this.opts.configDir, { generation, ...this.opts.config, hosts: this.hosts, detached: this.detached });
      // The proxy also checks the file on every new connection, but only a reload cuts open
      // ones. A proxy that can't be signalled is gone, or the engine is away: nothing to wait
      // for now; resume() signals it again when the engine is back.
      const signalled = await this.container.kill({ signal: 'SIGHUP' }).then(
        () => true,
        () => false,
      );
      this.unsignalled = !signalled;
      if (signalled) await this.appliedOrTimeout(generation);
    });
    return this.writes;
  }

  private appliedUpTo(generation: number): void {
    this.applied = Math.max(this.applied, generation);
    for (const w of this.appliedWaiters) w();
  }

  /** Resolves once the proxy reports `generation` applied (its cuts done), or after APPLY_TIMEOUT_MS. */
  private appliedOrTimeout(generation: number): Promise<void> {
    if (this.applied >= generation) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = () => {
        if (this.applied >= generation) finish();
      };
      const timer = setTimeout(() => {
        this.opts.log.warn({ generation, applied: this.applied }, `the egress proxy did not confirm its allow-list within ${APPLY_TIMEOUT_MS} ms`);
        finish();
      }, APPLY_TIMEOUT_MS);
      const finish = () => {
        clearTimeout(timer);
        this.appliedWaiters.delete(check);
        resolve();
      };
      this.appliedWaiters.add(check);
    });
  }

  /**
   * Take the plugin out first, so the proxy cuts (and reports, reason `detached`) whatever is
   * still open, then remove the container. Idempotent.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      if (this.following) {
        this.detached = true;
        this.hosts = [];
        await this.push().catch(() => undefined);
      }
      await this.remove();
    })();
    return this.closed;
  }

  private async remove(): Promise<void> {
    this.closed ??= Promise.resolve();
    await ignoreGone(this.container.remove({ force: true })).catch(() => undefined);
    rmSync(this.opts.configDir, { recursive: true, force: true });
  }
}

function writeConfig(dir: string, config: unknown): void {
  const tmp = path.join(dir, `.config-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(tmp, JSON.stringify(config), { mode: 0o644 });
  renameSync(tmp, path.join(dir, 'config.json'));
}
