import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';
import { ignoreGone } from '../engine/cleanup.js';
import { errorText, type Docker } from '../engine/docker.js';
import { ensureImage } from '../engine/images.js';
import { LogoMeshError } from '../errors.js';
import { LABEL, ownerLabels } from '../labels.js';
import type { Logger } from '../log.js';
import type { Manifest } from '../manifest/types.js';
import type { AuditEntry, AuditSink } from '../permissions/audit-log.js';
import { IMAGES_DIR } from '../runtimes/runtime.js';
import { seccompProfile, seccompSecurityOpt } from './seccomp.js';

/**
 * The network allow-list. A plugin with `network` capabilities gets its own internal network
 * (no route out) shared only with one egress proxy per controller instance
 * (images/egress/proxy.py). The proxy knows which plugin asks by the network a connection
 * arrives on, lets through HTTP and CONNECT to the plugin's `hosts` only, at most
 * `resources.maxNetworkConnections` at a time, and reports every decision, which becomes an
 * audit entry. A reload of the allow-lists cuts the open connections they no longer cover.
 * The proxy is also the plugin's only DNS server: it answers every query NXDOMAIN, forwards
 * none, and reports each. See docs/security.md#network.
 */
export const EGRESS_IMAGE = { tag: 'logomesh/egress:latest', contextDir: path.join(IMAGES_DIR, 'egress') };
export const EGRESS_PORT = 3128;
export const EGRESS_DNS_PORT = 53;
const CONFIG_MOUNT = '/etc/logomesh-egress';
const MB = 1024 * 1024;
/** How long a change of the allow-lists waits for the proxy to say it applied it. */
const APPLY_TIMEOUT_MS = 5_000;

/** The hosts a manifest's network capabilities list, in order, without duplicates. */
export function networkHosts(manifest: Manifest): string[] {
  return [...new Set(manifest.capabilities.filter((c) => c.scope === 'network').flatMap((c) => c.hosts ?? []))];
}

export function isNetworked(manifest: Manifest): boolean {
  return networkHosts(manifest).length > 0;
}

/** What a plugin container needs to use the proxy: its network, the proxy variables and its DNS server. */
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

/**
 * One decision of the proxy, as it reports it. `cut`: an open connection closed by a reload
 * (reason `revoked`: its host:port left the allow-list; `detached`: the plugin's network was
 * taken out). A DNS query has method `DNS`, the queried name as `host`, its `qtype` and `transport`.
 */
export interface EgressDecision {
  readonly plugin: string | null;
  readonly host: string | null;
  readonly port: number | null;
  readonly method: string | null;
  readonly result: 'allowed' | 'denied' | 'failed' | 'cut';
  readonly reason: string;
  readonly qtype?: string;
  readonly transport?: 'udp' | 'tcp';
}

export interface EgressOptions {
  readonly docker: Docker;
  readonly instance: string;
  readonly log: Logger;
  /** A folder for the allow-list file; it is bind-mounted read-only into the proxy. */
  readonly configDir: string;
  /** Where decisions go (the controller's audit log). */
  readonly audit?: AuditSink;
  /**
   * Existing networks the proxy also joins, to reach hosts on them by name (a compose
   * project's services, a test's servers). The egress bridge is joined in any case.
   */
  readonly networks?: readonly string[];
}

interface Attached {
  readonly plugin: string;
  readonly networkId: string;
  readonly subnet: string;
  readonly proxyIp: string;
  hosts: string[];
  readonly maxConnections: number;
}

export class Egress implements AsyncDisposable {
  private readonly attached = new Map<string, Attached>();
  private readonly listeners = new Set<(d: EgressDecision) => void>();
  private closed?: Promise<void>;
  private writes: Promise<void> = Promise.resolve();
  /** Numbers each allow-list file; the proxy reports the one it applied. */
  private generation = 0;
  private applied = 0;
  private readonly appliedWaiters = new Set<() => void>();

  private constructor(
    private readonly opts: EgressOptions,
    private readonly container: Dockerode.Container,
    private readonly bridge: Dockerode.Network,
  ) {}

  /** Build the image if needed, create the egress bridge and start the proxy on it. */
  static async start(opts: EgressOptions): Promise<Egress> {
    const { docker, instance, log } = opts;
    const fail = (what: string, err: unknown) =>
      new LogoMeshError('LM_EGRESS', `the egress proxy could not be started: ${what}: ${errorText(err)}`, { instance }, { cause: err });
    const image = await ensureImage(docker, EGRESS_IMAGE, { log }).catch((err: unknown) => {
      throw fail('image build', err);
    });
    mkdirSync(opts.configDir, { recursive: true, mode: 0o755 });
    // The proxy runs as nobody: it must be able to read the folder (mkdtemp makes it 0700).
    chmodSync(opts.configDir, 0o755);
    writeConfig(opts.configDir, { plugins: [] });
    const labels = { ...ownerLabels('egress', instance) };
    const name = `lm-${instance}-egress-${randomBytes(3).toString('hex')}`;
    let bridge: Dockerode.Network | undefined;
    let container: Dockerode.Container | undefined;
    try {
      bridge = await docker.createNetwork({ Name: name, Driver: 'bridge', Internal: false, Labels: labels, CheckDuplicate: true });
      container = await docker.createContainer({
        name,
        Image: image.tag,
        Labels: labels,
        User: '65534:65534',
        Env: [`LOGOMESH_EGRESS_CONFIG=${CONFIG_MOUNT}/config.json`, `LOGOMESH_EGRESS_PORT=${EGRESS_PORT}`, `LOGOMESH_EGRESS_DNS_PORT=${EGRESS_DNS_PORT}`],
        HostConfig: {
          NetworkMode: bridge.id,
          // Lets nobody bind the DNS port without any capability; in the proxy's own network
          // namespace only. (Engines from 20.10 default to 0; older ones to 1024.)
          Sysctls: { 'net.ipv4.ip_unprivileged_port_start': String(EGRESS_DNS_PORT) },
          Mounts: [{ Type: 'bind', Source: opts.configDir, Target: CONFIG_MOUNT, ReadOnly: true }],
          ReadonlyRootfs: true,
          CapDrop: ['ALL'],
          CapAdd: [],
          // The networked plugin profile: IP sockets, but no raw sockets, netlink or the rest.
          SecurityOpt: ['no-new-privileges:true', seccompSecurityOpt(seccompProfile('network'))],
          Privileged: false,
          Memory: 256 * MB,
          MemorySwap: 256 * MB,
          PidsLimit: 1024,
          Init: true,
          RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
          LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
        },
      });
      for (const n of opts.networks ?? []) await docker.getNetwork(n).connect({ Container: container.id });
      const egress = new Egress(opts, container, bridge);
      // Started first: following the output of a container not yet started ends at once.
      await container.start();
      await egress.follow();
      log.info({ container: container.id.slice(0, 12) }, 'egress proxy ready');
      return egress;
    } catch (err) {
      if (container) await ignoreGone(container.remove({ force: true })).catch(() => undefined);
      if (bridge) await ignoreGone(bridge.remove()).catch(() => undefined);
      throw err instanceof LogoMeshError ? err : fail('container', err);
    }
  }

  /** Follow the proxy's output: decisions become audit entries. Resolves once it listens. */
  private async follow(): Promise<void> {
    const stream = (await this.container.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream;
    const out = new PassThrough();
    const err = new PassThrough();
    this.opts.docker.modem.demuxStream(stream, out, err);
    stream.on('end', () => {
      out.end();
      err.end();
    });
    err.on('data', (c: Buffer) => this.opts.log.warn({ text: c.toString().trim() }, 'egress proxy'));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new LogoMeshError('LM_EGRESS', 'the egress proxy did not start listening within 15000 ms', {})), 15_000);
      timer.unref();
      let buf = '';
      out.on('data', (c: Buffer) => {
        buf += c.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let obj: Record<string, unknown>;
          try {
            obj = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          if (obj.event === 'listening') {
            clearTimeout(timer);
            resolve();
          } else if (obj.event === 'config' && typeof obj.generation === 'number') this.appliedUpTo(obj.generation);
          else if (obj.event === 'config-error') this.opts.log.error({ reason: obj.reason }, 'the egress proxy refused its allow-list file');
          else if (obj.event === 'dns-unavailable') this.opts.log.warn({ reason: obj.reason }, 'the egress proxy could not listen for DNS: plugin lookups time out and are not audited');
          else if (typeof obj.result === 'string') this.decided(obj as unknown as EgressDecision);
        }
      });
      stream.on('error', (e: Error) => reject(e));
    });
  }

  private decided(d: EgressDecision): void {
    this.opts.audit?.(auditEntry(d));
    for (const l of this.listeners) l(d);
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

  /** Call `fn` with every decision from now on; returns the unsubscribe function. */
  onDecision(fn: (d: EgressDecision) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * Create the plugin's internal network, connect the proxy to it and add the plugin's
   * allow-list. `key` names the attachment (the plugin id in a controller).
   */
  async attach(key: string, manifest: Manifest): Promise<EgressAttachment> {
    const { docker, instance } = this.opts;
    await this.detach(key);
    const name = `lm-${instance}-net-${key}`;
    await ignoreGone(docker.getNetwork(name).remove());
    const network = await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      Internal: true,
      CheckDuplicate: true,
      Labels: { ...ownerLabels('egress', instance), [LABEL.plugin]: manifest.id },
    });
    try {
      await network.connect({ Container: this.container.id });
      const info = (await network.inspect()) as { IPAM?: { Config?: { Subnet?: string }[] } };
      const subnet = info.IPAM?.Config?.[0]?.Subnet;
      const c = await this.container.inspect();
      const proxyIp = c.NetworkSettings.Networks[name]?.IPAddress;
      if (!subnet || !proxyIp) throw new Error(`no address on ${name}`);
      this.attached.set(key, { plugin: manifest.id, networkId: network.id, subnet, proxyIp, hosts: networkHosts(manifest), maxConnections: manifest.resources.maxNetworkConnections });
      await this.push();
      const proxyUrl = `http://${proxyIp}:${EGRESS_PORT}`;
      return {
        network: network.id,
        proxyUrl,
        env: { HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, http_proxy: proxyUrl, https_proxy: proxyUrl, NO_PROXY: '', no_proxy: '' },
        dns: [proxyIp],
      };
    } catch (err) {
      this.attached.delete(key);
      await ignoreGone(network.disconnect({ Container: this.container.id, Force: true })).catch(() => undefined);
      await ignoreGone(network.remove()).catch(() => undefined);
      throw new LogoMeshError('LM_EGRESS', `could not give plugin ${manifest.id} its network: ${errorText(err)}`, { plugin: manifest.id }, { cause: err });
    }
  }

  /**
   * Take the plugin's allow-list out of the proxy, which cuts the plugin's open connections,
   * and remove its network (its container must be gone).
   */
  async detach(key: string): Promise<void> {
    const a = this.attached.get(key);
    if (!a) return;
    this.attached.delete(key);
    await this.push();
    const net = this.opts.docker.getNetwork(a.networkId);
    await ignoreGone(net.disconnect({ Container: this.container.id, Force: true })).catch(() => undefined);
    await ignoreGone(net.remove());
  }

  /**
   * Take a host off a plugin's allow-list now: new connections to it are refused, and the
   * open ones to it are cut (each reported as a `cut` decision, reason `revoked`) before
   * this resolves, unless the proxy does not confirm within APPLY_TIMEOUT_MS.
   */
  async revokeHost(key: string, host: string): Promise<boolean> {
    const a = this.attached.get(key);
    if (!a || !a.hosts.includes(host)) return false;
    a.hosts = a.hosts.filter((h) => h !== host);
    await this.push();
    return true;
  }

  /**
   * Write the allow-list file (atomically), tell the proxy to read it and wait until it
   * says it has: by then the connections the new lists no longer cover are closed.
   */
  private push(): Promise<void> {
    this.writes = this.writes.then(async () => {
      const generation = ++this.generation;
      writeConfig(this.opts.configDir, {
        generation,
        plugins: [...this.attached.values()].map((a) => ({ plugin: a.plugin, proxyIp: a.proxyIp, subnet: a.subnet, hosts: a.hosts, maxConnections: a.maxConnections })),
      });
      // The proxy also checks the file on every new connection, but only a reload cuts open
      // ones. A proxy that can't be signalled is gone: nothing to wait for.
      const signalled = await this.container.kill({ signal: 'SIGHUP' }).then(
        () => true,
        () => false,
      );
      if (signalled) await this.appliedOrTimeout(generation);
    });
    return this.writes;
  }

  /** Remove every plugin network, the proxy and its bridge. Idempotent. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      for (const key of [...this.attached.keys()]) await this.detach(key).catch(() => undefined);
      await ignoreGone(this.container.remove({ force: true })).catch(() => undefined);
      await ignoreGone(this.bridge.remove()).catch(() => undefined);
      rmSync(path.join(this.opts.configDir, 'config.json'), { force: true });
    })();
    return this.closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Remove the proxies and plugin networks an earlier controller of this instance left (it was
 * killed): a controller calls this before it starts its own proxy.
 */
export async function removeEgressLeftovers(docker: Docker, instance: string): Promise<void> {
  const filters = JSON.stringify({ label: [`${LABEL.instance}=${instance}`, `${LABEL.role}=egress`] });
  for (const c of await docker.listContainers({ all: true, filters })) await ignoreGone(docker.getContainer(c.Id).remove({ force: true }));
  for (const n of await docker.listNetworks({ filters })) await ignoreGone(docker.getNetwork(n.Id).remove());
}

/**
 * A decision as an audit entry. Connections: `network` on `host:port`. DNS queries: `dns` on
 * the queried name, the query type in the reason. Refusals and revocation cuts carry
 * LM_EGRESS_DENIED; a cut because the plugin stopped (`detached`) is no refusal.
 */
export function auditEntry(d: EgressDecision): Omit<AuditEntry, 'time'> {
  const dns = d.method === 'DNS';
  const refused = d.result === 'denied' || d.result === 'failed' || (d.result === 'cut' && d.reason !== 'detached');
  return {
    who: d.plugin ?? 'unknown',
    action: dns ? 'dns' : 'network',
    resource: dns ? (d.host ?? '?') : `${d.host ?? '?'}:${d.port ?? '?'}`,
    result: d.result,
    reason: dns && d.qtype ? `${d.reason} (${d.qtype})` : d.reason,
    ...(refused ? { code: 'LM_EGRESS_DENIED' } : {}),
  };
}

function writeConfig(dir: string, config: unknown): void {
  const tmp = path.join(dir, `.config-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(tmp, JSON.stringify(config), { mode: 0o644 });
  renameSync(tmp, path.join(dir, 'config.json'));
}
