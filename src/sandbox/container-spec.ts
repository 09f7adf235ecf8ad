import type { ContainerCreateOptions, MountSettings } from 'dockerode';
import { LABEL, ownerLabels } from '../labels.js';
import type { LoadedManifest } from '../manifest/types.js';
import { PLUGIN_MOUNT, pluginUser, type RuntimeImage } from '../runtimes/runtime.js';
import { seccompProfile, seccompSecurityOpt, seccompVariant } from '../seccomp/profiles.js';
import { HEALTH_REPORT_NAME, healthCheckSpec, type HealthCheckSpec } from './health-check.js';

export interface SpecInput {
  readonly loaded: LoadedManifest;
  readonly runtime: RuntimeImage;
  /** Controller instance that owns the container (see labels.ts). */
  readonly instance: string;
  /** The plugin's own compiled image and its command (compiled runtimes); default: the runtime's. */
  readonly compiled?: { readonly tag: string; readonly command: readonly string[] };
  /** Host folder holding the plugin's hub socket; mounted read-only at HUB_MOUNT. */
  readonly hubSocketDir?: string;
  /**
   * The source the engine mounts at each planned target (plannedMounts), by target: the
   * controller's staging mount of the path it checked (mount-staging.ts). Absent for a
   * target: its host path as resolved at load.
   */
  readonly mountSources?: Readonly<Record<string, string>>;
  /**
   * Host folder of the shared-memory pool (under a controller, for a manifest that sets
   * coordination.sharedMemory): bind-mounted at SEGMENTS_MOUNT with rslave propagation, so
   * the tmpfs the controller mounts under it later appear in the container too.
   */
  readonly segmentsDir?: string;
  /** Container name; the engine picks one when absent. */
  readonly name?: string;
  /** Extra environment (the hub's socket path, later). Cannot override the LOGOMESH_PLUGIN_* variables. */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * The seccomp profile, as JSON text. Default: LogoMesh's own profile for the container's
   * network mode, from seccomp/profiles.ts, which reads it from images/seccomp/ once per process.
   */
  readonly seccompProfile?: string;
  /**
   * The OCI runtime the engine runs the container with (HostConfig.Runtime), already checked
   * against the engine's runtimes (oci-runtime.ts). Absent: the engine's default.
   */
  readonly ociRuntime?: string;
  /**
   * For a plugin with network capabilities: its own internal network, shared only with the
   * egress proxy, the proxy variables and its DNS server, the proxy (sandbox/egress.ts's
   * EgressAttachment). Absent: network mode none.
   */
  readonly network?: { readonly network: string; readonly env: Readonly<Record<string, string>>; readonly dns?: readonly string[] };
  /** A Docker health check showing the controller's view (needs hubSocketDir, where the report is). */
  readonly healthCheck?: HealthCheckSpec;
}

/** Where a plugin finds its hub socket (LOGOMESH_HUB_SOCKET). */
export const HUB_MOUNT = '/run/logomesh';
export const HUB_SOCKET_NAME = 'hub.sock';
/** Where a plugin finds the shared-memory pool (LOGOMESH_SEGMENTS_DIR). */
export const SEGMENTS_MOUNT = '/run/logomesh-segments';

/** A plugin container's network mode without network capabilities: no network but loopback. */
const NO_NETWORK = 'none';

/** The CFS period used for CPU quotas: 100 ms, the kernel's default. */
export const CPU_PERIOD_US = 100_000;

/** CPU shares for one core's worth of CPU: the engine's default weight (1024). */
const SHARES_PER_CORE = 1024;

/**
 * CPU shares (the weight under contention, CIS Docker Benchmark 5.12) in proportion to the
 * manifest's CPU percent: a plugin allowed a quarter of a core weighs a quarter of a
 * default container, so a busy plugin cannot crowd out the host's own work beyond its
 * share even below its quota. The kernel's minimum weight is 2.
 */
/** The CFS quota, in microseconds of each CPU_PERIOD_US, for a percent of one core. */
export function cpuQuotaUs(cpuPercent: number): number {
  return Math.round((cpuPercent / 100) * CPU_PERIOD_US);
}

export function cpuShares(cpuPercent: number): number {
  return Math.max(2, Math.round((cpuPercent / 100) * SHARES_PER_CORE));
}
const MB = 1024 * 1024;

/**
 * Translate a validated manifest into the engine's container spec. Pure: the same input
 * always gives the same spec, and nothing here talks to the engine. The one read it may do
 * is the default seccomp profile's file, once per process (seccomp/profiles.ts caches it).
 *
 * What is never in the spec, whatever the manifest says: Privileged, host namespaces
 * (network, pid, ipc, uts, userns), the Docker socket, devices, added capabilities.
 */
/**
 * Under gVisor (runsc) the container's pids cgroup also holds the sandbox's own host
 * threads and ptrace stubs (a few dozen at rest, more with each application thread); with
 * only maxProcesses there, gVisor cannot start its first thread. The plugin's processes are
 * gVisor's, and this many more host tasks are allowed for them.
 */
export const GVISOR_HOST_THREADS = 256;

export function containerSpec(input: SpecInput): ContainerCreateOptions {
  const { loaded, runtime, instance } = input;
  const { manifest } = loaded;
  const r = manifest.resources;
  const networkMode = input.network?.network ?? NO_NETWORK;

  const mounts: MountSettings[] = plannedMounts(loaded).map((m) => ({ Type: 'bind', Source: input.mountSources?.[m.target] ?? m.hostPath, Target: m.target, ReadOnly: !m.writable }));
  // Read-only is enough: connecting to a Unix socket needs write permission on the socket
  // itself, which a read-only mount does not take away.
  if (input.hubSocketDir) mounts.push({ Type: 'bind', Source: input.hubSocketDir, Target: HUB_MOUNT, ReadOnly: true });
  // Writable: a segment the plugin may write is written through this mount. What it may open
  // is each file's ACL; the folders are root's, mode 0711, so it creates nothing there.
  if (input.segmentsDir) mounts.push({ Type: 'bind', Source: input.segmentsDir, Target: SEGMENTS_MOUNT, ReadOnly: false, BindOptions: { Propagation: 'rslave' } });
  const health = input.hubSocketDir && input.healthCheck ? healthCheckSpec(input.healthCheck, `${HUB_MOUNT}/${HEALTH_REPORT_NAME}`) : undefined;
  if (health) mounts.push(health.mount);

  const env: Record<string, string> = {
    ...runtime.env,
    ...input.env,
    ...input.network?.env,
    HOME: '/tmp',
    LOGOMESH_PLUGIN_ID: manifest.id,
    LOGOMESH_PLUGIN_VERSION: manifest.version,
    LOGOMESH_PLUGIN_DIR: PLUGIN_MOUNT,
    ...(input.hubSocketDir ? { LOGOMESH_HUB_SOCKET: `${HUB_MOUNT}/${HUB_SOCKET_NAME}` } : {}),
    ...(input.segmentsDir ? { LOGOMESH_SEGMENTS_DIR: SEGMENTS_MOUNT } : {}),
  };

  return {
    ...(input.name ? { name: input.name } : {}),
    Image: input.compiled?.tag ?? runtime.tag,
    Cmd: input.compiled ? [...input.compiled.command] : runtime.command(manifest.entrypoint),
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    User: pluginUser(instance, manifest.id),
    WorkingDir: PLUGIN_MOUNT,
    Hostname: manifest.id,
    Labels: {
      ...ownerLabels('plugin', instance),
      [LABEL.plugin]: manifest.id,
      [LABEL.manifestHash]: loaded.hash,
    },
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    NetworkDisabled: !input.network,
    ...(health ? { Healthcheck: health.healthcheck } : {}),
    HostConfig: {
      // Memory: no swap, so the limit is a hard one and exceeding it is an OOM kill.
      Memory: r.maxMemoryMB * MB,
      MemorySwap: r.maxMemoryMB * MB,
      OomKillDisable: false,
      CpuPeriod: CPU_PERIOD_US,
      CpuQuota: cpuQuotaUs(r.maxCpuPercent),
      CpuShares: cpuShares(r.maxCpuPercent),
      PidsLimit: r.maxProcesses + (input.ociRuntime === 'runsc' ? GVISOR_HOST_THREADS : 0),
      Ulimits: [{ Name: 'nofile', Soft: r.maxFileHandles, Hard: r.maxFileHandles }],
      ReadonlyRootfs: true,
      // /tmp and /dev/shm are the only writable places not granted in the manifest; both
      // are size-limited RAM and count against the memory limit.
      Tmpfs: { '/tmp': `rw,nosuid,nodev,noexec,size=${r.maxTmpMB}m,mode=1777` },
      ShmSize: r.maxTmpMB * MB,
      // The plugin's own user and group only (pluginUser): no group shared with other plugins.
      GroupAdd: [],
      CapDrop: ['ALL'],
      CapAdd: [],
      // LogoMesh's seccomp profile, not the engine's default: see docs/security.md#seccomp.
      SecurityOpt: ['no-new-privileges:true', seccompSecurityOpt(input.seccompProfile ?? seccompProfile(seccompVariant(networkMode)))],
      Privileged: false,
      ...(input.ociRuntime ? { Runtime: input.ociRuntime } : {}),
      NetworkMode: networkMode,
      // No name resolution for a networked plugin: the engine's resolver forwards every name
      // it does not know to the egress proxy, which answers NXDOMAIN, forwards nothing and
      // audits the query; the proxy resolves the hosts it allows. Without a DNS address, a
      // dead one: lookups time out, unaudited.
      ...(input.network ? { Dns: [...(input.network.dns ?? ['127.0.0.1'])], DnsSearch: [], DnsOptions: [] } : {}),
      IpcMode: 'private',
      PidMode: '',
      UTSMode: '',
      UsernsMode: '',
      Devices: [],
      Mounts: mounts,
      // A tiny init as PID 1 forwards signals and reaps zombies (a fork bomb leaves many).
      Init: true,
      RestartPolicy: { Name: 'no', MaximumRetryCount: 0 },
      AutoRemove: false,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
    },
  };
}

/** A host path a plugin container mounts: its folder, or a path its manifest grants. */
export interface PlannedMount {
  /** Real absolute host path, as resolved at load. */
  readonly hostPath: string;
  /** The same path relative to the plugin folder ('.' for the folder itself). */
  readonly relative: string;
  readonly target: string;
  readonly writable: boolean;
}

/**
 * The plugin folder (read-only) and one bind mount per granted path. Two grants of the same
 * path (`data` and `data/**`, or a read and a write capability) become one mount, writable
 * if either grant is: the engine refuses duplicate mount points.
 */
export function plannedMounts(loaded: LoadedManifest): PlannedMount[] {
  const byTarget = new Map<string, PlannedMount>([[PLUGIN_MOUNT, { hostPath: loaded.pluginDir, relative: '.', target: PLUGIN_MOUNT, writable: false }]]);
  for (const g of loaded.grantedPaths) {
    // The plugin folder itself is already mounted read-only.
    if (g.relative === '.' && !g.writable) continue;
    const target = `${PLUGIN_MOUNT}/${g.relative}`;
    const seen = byTarget.get(target);
    byTarget.set(target, { hostPath: g.hostPath, relative: g.relative, target, writable: (seen?.writable ?? false) || g.writable });
  }
  return [...byTarget.values()];
}
