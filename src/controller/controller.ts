import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { AuditLog } from '../audit/audit-log.js';
import { errorText } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import { Grants } from '../grants/grants.js';
import type { PathGrant } from '../grants/path-grants.js';
import { Hub, type HostMethod } from '../hub/hub.js';
import type { Logger } from '../log.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { ChangedLimit, LimitChange, MonitorMetrics, ResourceUsage, StatsRow } from '../monitor/index.js';
import { resolvePolicy, type Policy } from '../policy/policy.js';
import { pluginGid, pluginUid } from '../runtimes/runtime.js';
import type { KernelWatch } from '../violations/kernel-watch.js';
import { dockerParts, type Backend, type Lifecycle, type Reconciler } from './backend.js';
import { decideCapability, type CapabilityDecision } from './capabilities.js';
import type { ControllerContext } from './context.js';
import { exitCause } from './exit-cause.js';
import { DebugMode } from './debug/debug-mode.js';
import { DockerBackend } from './docker-backend.js';
import { EngineWatch } from './engine-watch.js';
import type { Home } from './home.js';
import { watchKernel } from './kernel-events.js';
import { Launcher } from './launcher.js';
import { Monitoring } from './monitoring.js';
import { egressKey, isUp, serialize, type Managed } from './managed.js';
import { DEFAULTS, type ControllerOptions } from './options.js';
import { loadFolders } from '../manifest/folders.js';
import { PluginRegistry } from './registry.js';
import { SavedState } from './saved-state.js';
import { Standbys } from './standby.js';
import { startInLevels } from './start-all.js';
import { Deployer, type ApplyOptions } from './deploy/deployer.js';
import type { SignedContent } from '../signing/signature.js';
import { statusOf } from './status.js';
import { Segments } from './segments.js';
import { Supervisor } from './supervisor.js';
import type { ApplyResult, EngineStatus, LogLine, PluginStatus } from './types.js';

export type { ControllerOptions } from './options.js';
export type { ApplyOptions } from './deploy/deployer.js';

/**
 * The controller: loads plugin folders, starts each in its sandbox in dependency order,
 * connects them through the hub, restarts what fails, and stops everything in reverse
 * order. The spec's LifecycleController and RuntimeCoordinator, as one facade over parts
 * that each own one kind of state: the registry (loaded plugins, load checks, dependency
 * graph), the launcher (the start pipeline and the stop sequence), the supervisor (exits,
 * health, restart policy), adoption after a crash, the engine watch, the grants (operator
 * permissions), the saved state. See docs/architecture.md.
 */
export class Controller implements AsyncDisposable {
  readonly hub: Hub;
  /** The bearer token host clients present on the hub's TCP endpoint. */
  readonly token: string;
  readonly audit: AuditLog;
  /** The operator's revocations and grants (methods, topics, hosts, host paths): their one owner. */
  readonly grants: Grants;
  /**
   * Shared memory (docs/shared-memory.md): the pool's segments as the host application sees
   * them (allocate, deallocate, resize, setReadOnly, setAccessibleTo, list), and the cache.
   */
  readonly memory: Segments;
  private readonly log: Logger;
  private readonly registry: PluginRegistry;
  private readonly saved: SavedState;
  private readonly engine: EngineWatch;
  private readonly kernel?: KernelWatch;
  private readonly launcher: Lifecycle;
  private readonly supervisor: Supervisor;
  private readonly adoption: Reconciler;
  /** Deploys (apply, load): on the Docker backend, whose launcher can start a plugin's replacement beside it. */
  private readonly deployer?: Deployer;
  private readonly debugMode?: DebugMode;
  /** Warm standbys (standby.ts): on the Docker backend only. */
  private readonly standbys?: Standbys;
  /** The resource monitor, its violations, the metrics and the health check program. */
  private readonly monitoring: Monitoring;
  private resolvedPolicy?: Policy;
  private closing?: Promise<void>;

  private constructor(
    /** Where plugins run: this host's Docker engine, or a Kubernetes cluster. */
    readonly backend: Backend,
    private readonly opts: ControllerOptions,
  ) {
    const { home } = opts;
    this.log = opts.log.child({ component: 'controller' });
    this.token = opts.hubToken ?? randomBytes(24).toString('base64url');
    this.saved = new SavedState(home.stateFile, this.log);
    this.audit = new AuditLog(home.auditFile, { ...opts.auditRotation, onError: (err) => this.log.error({ err: err.message, file: home.auditFile }, 'the audit trail cannot be written') });
    const idsOf = (id: string): [number, number] => [pluginUid(home.instance, id), pluginGid(home.instance, id)];
    this.registry = new PluginRegistry({ audit: this.audit.record, verifyPolicy: opts.policy, policy: () => this.policy, idsOf, instance: home.instance });
    this.grants = new Grants({
      log: this.log,
      // The hub's aggregated counts of earlier decisions are written first, so the trail keeps their order.
      audit: (e) => {
        this.hub.flushAudit();
        this.audit.record(e);
      },
      plugin: (id) => this.registry.get(id).loaded,
      plugins: () => this.registry.records().map((m) => m.loaded),
      homeDir: home.dir,
      policy: () => this.policy,
      idsOf,
      onChange: () => this.persist(),
      onPathExpired: (id, name) => {
        this.revokePath(id, name, 'expiry').catch((err: unknown) => this.log.warn({ plugin: id, err: errorText(err) }, 'revoking an expired path grant failed'));
      },
    });
    this.memory = new Segments({ home, log: this.log, audit: (e) => this.audit.record(e), registry: this.registry, idsOf, ...(opts.sharedMemory ?? {}) });
    // The resource monitor reads this host's cgroups: it watches plugins on the Docker backend only.
    const onDocker = backend.name === 'docker';
    this.monitoring = new Monitoring({
      get docker() {
        return dockerParts(backend).docker;
      },
      log: this.log,
      audit: this.audit.record,
      emit: (topic, data) => this.hub.announce(topic, data),
      policy: () => this.policy,
      records: () => this.registry.records(),
      // A plugin's proxy is keyed by its generation (a replacement has its own, managed.ts).
      connections: (id) => {
        const m = onDocker ? this.registry.find(id) : undefined;
        return m ? dockerParts(backend).egress.connections(egressKey(m)) : undefined;
      },
      options: onDocker ? (opts.monitoring ?? {}) : { enabled: false, healthCheckMs: false },
      startTimeoutMs: opts.startTimeoutMs ?? DEFAULTS.startTimeoutMs,
    });
    this.hub = new Hub({
      ...opts.hubLimits,
      observeCall: this.monitoring.metrics.observeCall,
      observeMessage: this.monitoring.metrics.countMessage,
      segments: this.memory,
      isMethodRevoked: this.grants.isMethodRevoked,
      isTopicRevoked: this.grants.isTopicRevoked,
      log: opts.log,
      audit: this.audit.record,
      token: this.token,
      ...(opts.maxMessageBytes ? { maxMessageBytes: opts.maxMessageBytes } : {}),
      // A plugin stopped at a breakpoint answers no ping: in debug mode, the hub's come an hour apart.
      ...(opts.pingIntervalMs ? { pingIntervalMs: opts.pingIntervalMs } : opts.debug ? { pingIntervalMs: 3_600_000 } : {}),
      ...(opts.rateLimit ? { rateLimit: opts.rateLimit } : {}),
      ...(opts.hostMethods ? { hostMethods: opts.hostMethods } : {}),
      exitCause: (id) => exitCause(this.registry.find(id), 2_000),
    });
    // Each plugin starting waits on 'ready' (readiness.ts): as many listeners as starts at once.
    this.hub.setMaxListeners(0);
    this.engine = new EngineWatch(backend, this.log, opts.engineCheckMs ?? DEFAULTS.engineCheckMs, () => backend.answersAgain());
    // The kernel log is this host's: it tells of plugins only when they run here.
    if (opts.kernelLog !== false && backend.name === 'docker') {
      this.kernel = watchKernel({ log: this.log, audit: this.audit.record, instance: home.instance, pluginIds: () => this.registry.ids(), onKill: (id, kill) => void this.ifLoaded(id, (m) => this.supervisor.seccompKilled(m, kill)) });
    }
    // Debug mode is for a development machine's Docker engine (logomesh dev).
    if (opts.debug && !(backend instanceof DockerBackend)) throw new LogoMeshError('LM_USAGE', `debug mode runs plugins on the Docker backend only, not on ${backend.name}`, { field: 'debug', expected: 'the Docker backend', found: backend.name });
    const debug = opts.debug && backend instanceof DockerBackend ? new DebugMode(backend.docker, this.log, (id) => this.registry.find(id)?.container?.id) : undefined;
    this.debugMode = debug;
    const cx: ControllerContext = {
      debug,
      // The Docker backend's own parts, for its launcher and adoption (LM_INTERNAL on another backend).
      get docker() {
        return dockerParts(backend).docker;
      },
      get egress() {
        return dockerParts(backend).egress;
      },
      log: this.log,
      opts,
      home,
      hub: this.hub,
      audit: this.audit,
      grants: this.grants,
      registry: this.registry,
      segments: this.memory,
      engine: this.engine,
      kernel: this.kernel,
      monitoring: this.monitoring,
      policy: () => this.policy,
      closing: () => this.closing !== undefined,
      persist: () => this.persist(),
      idsOf,
    };
    // A warm standby is a second container of the plugin on this host: the Docker backend's.
    if (backend.name === 'docker') this.standbys = new Standbys(cx, new Set(opts.standby ?? []), (m, container, exited) => this.supervisor.watchExit(m, container, exited));
    this.supervisor = new Supervisor(cx, { start: (m) => this.launcher.start(m), teardown: (m) => this.launcher.teardown(m) }, this.standbys);
    const parts = backend.parts(cx, this.supervisor);
    this.launcher = parts.lifecycle;
    this.adoption = parts.reconciler;
    if (parts.lifecycle instanceof Launcher) {
      this.deployer = new Deployer(cx, parts.lifecycle, this.supervisor, {
        currentPolicy: () => (this.opts.policy ? this.policy : resolvePolicy(undefined)),
        usePolicy: (p) => (this.resolvedPolicy = p),
        load: (manifests, verified) => this.load(manifests, verified),
        start: (id) => this.start(id),
        unload: (id) => this.unload(id),
      });
    }
  }

  /**
   * Connect to the backend and make a controller: `opts.backend`, else the Docker engine
   * (opts.docker, else DOCKER_HOST or the local socket). Throws LM_ENGINE_UNAVAILABLE.
   */
  static async create(opts: ControllerOptions): Promise<Controller> {
    return new Controller(opts.backend ?? (await DockerBackend.connect(opts.docker)), opts);
  }

  get home(): Home {
    return this.opts.home;
  }

  /** The policy in force: the one given, else the file LOGOMESH_POLICY names, else none. */
  get policy(): Policy {
    return this.opts.policy ?? (this.resolvedPolicy ??= resolvePolicy(undefined));
  }

  /** Is the Docker engine answering? Shown by `ps`; restarts wait while it is not. */
  engineStatus(): EngineStatus {
    return this.engine.status();
  }

  // --- loading ------------------------------------------------------------------------------

  /**
   * Load every plugin folder under `dir` (each holds a manifest), or `dir` itself if it is
   * one. All manifests are validated before any is loaded; duplicate ids, missing
   * dependencies and cycles are refused. Returns the ids loaded.
   */
  loadDirectory(dir: string): string[] {
    return this.load(loadFolders(dir));
  }

  /**
   * Add validated manifests; the whole set is checked (signatures, policy, id clashes,
   * dependencies). Each plugin's operator permissions saved by an earlier controller of this
   * home apply before it can make its first call.
   */
  load(manifests: readonly LoadedManifest[], verified?: ReadonlyMap<LoadedManifest, SignedContent | undefined>): string[] {
    const ids = this.registry.add(
      manifests,
      this.saved.read(),
      (m) => {
        this.restorePermissions(m);
        if (this.deployer) m.deployed = this.deployer.fingerprint(m.loaded);
      },
      verified,
    );
    this.persist();
    return ids;
  }

  /** Stop and forget a plugin. Refused while a plugin that depends on it is loaded. */
  async unload(id: string): Promise<void> {
    this.registry.get(id);
    const dependents = this.registry.dependents(id);
    if (dependents.length) {
      throw new LogoMeshError('LM_DEPENDENCY', `cannot unload ${id}: loaded plugins depend on it (${dependents.join(', ')}); unload them first, or apply a folder without them`, {
        plugin: id,
        dependents,
      });
    }
    await this.stop(id);
    await this.memory.pluginGone(id, true);
    this.registry.remove(id);
    await this.debugMode?.close(id);
    await this.backend.unloaded(id);
    this.audit.record({ who: 'controller', action: 'unload', resource: id, result: 'allowed' });
    this.persist();
  }

  // --- deploys (deploy/) ----------------------------------------------------------------------

  /**
   * Make the running set what the plugin folders under `dir` say (docs/deploys.md): add the
   * new ones, replace the changed ones (manifest, any file, signature, policy) without
   * failing a call, and with `prune` remove the loaded ones the folder lacks, in dependency
   * order. The folder is checked whole first: a refusal (LM_MANIFEST_*, LM_SIGNATURE,
   * LM_POLICY_DENIED, LM_DEPENDENCY, ...) changes nothing. `dryRun` only plans.
   */
  apply(dir: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
    return this.deploys().apply(dir, opts);
  }

  /** Load the plugin folders under `dir` into the running controller and start them. Returns their ids. */
  loadAndStart(dir: string): Promise<string[]> {
    return this.deploys().load(dir);
  }

  private deploys(): Deployer {
    if (!this.deployer) throw new LogoMeshError('LM_USAGE', `apply and load into a running controller are built for the Docker backend only, not ${this.backend.name}: restart the controller with the new folder`, { expected: 'the Docker backend', found: this.backend.name });
    return this.deployer;
  }

  /** The plugin folders an earlier controller of this home ran (state.json), in load order. */
  savedFolders(): string[] {
    return this.saved.read()?.folders ?? [];
  }

  /** Load the plugin folders an earlier controller of this home ran. Throws LM_MANIFEST_NOT_FOUND when there are none. */
  loadSaved(): string[] {
    const folders = this.savedFolders();
    if (!folders.length) throw new LogoMeshError('LM_MANIFEST_NOT_FOUND', `${this.opts.home.stateFile} names no plugin folders: give 'logomesh up' a folder`, { file: this.opts.home.stateFile, expected: 'plugin folders run by an earlier controller of this home', found: 'none' });
    return this.load(folders.flatMap((f) => loadFolders(f)));
  }

  // --- lifecycle ----------------------------------------------------------------------------

  /** Start every loaded plugin, a dependency level at a time, each level in parallel. */
  async startAll(): Promise<void> {
    await this.reconcile();
    await startInLevels(
      this.registry.levels(),
      (id) => this.start(id),
      () => this.registry.records().filter((m) => m.state === 'loaded').map((m) => m.loaded.manifest.id),
      this.opts.startConcurrency ?? DEFAULTS.startConcurrency,
    );
  }

  /** Start one plugin (its dependencies must be ready). Resolves when it said hello. */
  async start(id: string): Promise<void> {
    const m = this.registry.get(id);
    await this.reconcile();
    // A start by hand ends a crash loop: it begins with a clean count (its standby's too).
    if (m.state === 'failed' || m.state === 'exited') m.retries = 0;
    this.standbys?.reset(id);
    return serialize(m, () => this.launcher.start(m));
  }

  /** Stop one plugin: shutdown message, then SIGTERM, then SIGKILL, each after a grace period. */
  stop(id: string): Promise<void> {
    const m = this.registry.get(id);
    return serialize(m, () => this.launcher.stop(m));
  }

  /**
   * Restart one plugin: switched to its standby when one is waiting (the container it
   * replaces is stopped behind), otherwise stopped and started again (the container is
   * recreated; see `apply` for a replacement without failed calls).
   */
  async restart(id: string): Promise<void> {
    const m = this.registry.get(id);
    const switched = await serialize(m, async () => m.state === 'ready' && !!this.standbys?.ready(m) && this.supervisor.restartToStandby(m, this.opts.stopGraceMs ?? DEFAULTS.stopGraceMs));
    if (switched) return;
    await this.stop(id);
    await this.start(id);
  }

  /**
   * Adopt or remove the containers an earlier controller of this home left (it was killed,
   * or the machine restarted). Runs once, before the first start.
   */
  async reconcile(): Promise<void> {
    await this.adoption.reconcile();
    await this.memory.adopt();
  }

  // --- operator permissions (src/grants/) -----------------------------------------------------

  /**
   * Take a method (`plugin.method`, or a host method) away from a plugin: its next call is
   * LM_PERMISSION_DENIED. Takes effect at once on the hub; calls already in flight finish.
   */
  revokeMethod(pluginId: string, method: string, who = 'operator'): void {
    this.grants.revokeMethod(pluginId, method, who);
  }

  /**
   * Give back a revoked method, optionally only for `ttlMs` (then it is revoked again). The
   * manifest is the upper bound: a method it does not declare cannot be granted.
   */
  grantMethod(pluginId: string, method: string, ttlMs?: number, who = 'operator'): void {
    this.grants.grantMethod(pluginId, method, ttlMs, who);
  }

  /**
   * Take a topic pattern, exactly as the manifest lists it under coordination.publishes or
   * .subscribes, away from a plugin: from its next message on it no longer publishes or
   * hears what only that pattern covers. Throws LM_PERMISSION_DENIED for a pattern the
   * manifest does not list.
   */
  revokeTopic(pluginId: string, pattern: string): void {
    this.grants.revokeTopic(pluginId, pattern);
  }

  /** Give back a topic pattern revoked with `revokeTopic`, for `ttlMs` only if given (then it is revoked again). */
  grantTopic(pluginId: string, pattern: string, ttlMs?: number): void {
    this.grants.grantTopic(pluginId, pattern, ttlMs);
  }

  /**
   * Take a host (as the manifest lists it, `api.example.com:443`) off a plugin's network
   * allow-list. A running plugin's next connection there is refused, and the proxy cuts
   * those already open. The revocation stays, across restarts of the plugin and of the controller,
   * until `grantHost` gives the host back. Returns whether a running proxy's allow-list
   * changed now (false: the plugin is not running, it applies at its next start). Throws
   * LM_PERMISSION_DENIED for a host the manifest does not list: a typo must not look done.
   */
  async revokeHost(pluginId: string, spelled: string): Promise<boolean> {
    const host = this.grants.revokeHost(pluginId, spelled);
    return this.backend.revokeHost(pluginId, host);
  }

  /**
   * Give back a host revoked with `revokeHost`. The manifest is the upper bound: a host its
   * network capabilities do not list cannot be granted (LM_PERMISSION_DENIED). The proxy's
   * allow-list of a running plugin can only shrink, so a running plugin's container is
   * recreated with its new network (as for a path grant); a stopped one gets the host at
   * its next start. Throws what the restart throws.
   */
  async grantHost(pluginId: string, spelled: string): Promise<void> {
    const m = this.registry.get(pluginId);
    const { host, wasRevoked } = this.grants.grantHost(pluginId, spelled);
    if (wasRevoked) await this.recreate(m, `host grant ${host}`);
  }

  /**
   * Grant a host path to a plugin, mounted at /grants/<name> (read-only unless `write`),
   * for `ttlMs` only if given. Allowed only where the policy's hostPaths cover its real
   * path for that permission and plugin, and never inside the plugin folder or the
   * controller's home. Mounts cannot change on a running container, so a running plugin's
   * container is recreated (stop, then start through the usual lifecycle); a stopped one
   * gets the mount at its next start. A grant of the same name replaces the earlier one.
   * Throws LM_POLICY_DENIED, LM_GRANT_PATH, LM_PATH_NOT_WRITABLE, or what the restart throws.
   */
  async grantPath(pluginId: string, target: string, opts: { write?: boolean; ttlMs?: number } = {}): Promise<PathGrant> {
    const m = this.registry.get(pluginId);
    const grant = this.grants.grantPath(pluginId, target, opts);
    await this.recreate(m, `path grant ${grant.name}`);
    return grant;
  }

  /**
   * Take a granted host path (by name, or by the host path given) away from a plugin. A
   * running plugin's container is killed at once and recreated without the mount. Throws
   * LM_GRANT_PATH when no such grant exists.
   */
  async revokePath(pluginId: string, nameOrPath: string, who = 'operator'): Promise<PathGrant> {
    const m = this.registry.get(pluginId);
    let wasRunning = false;
    const g = await this.grants.revokePath(pluginId, nameOrPath, who, async () => {
      // At once: the container is killed without the shutdown message or SIGTERM's grace, so a
      // plugin that ignores both cannot keep reading or writing; the entry says when it ended.
      wasRunning = isUp(m);
      const ended = wasRunning && m.container ? await this.launcher.killAtOnce(m) : undefined;
      return ended === undefined ? 'the plugin was not running' : `access ended at ${new Date(ended).toISOString()}: the container was killed at once, without grace`;
    });
    if (wasRunning) await this.recreate(m, `path revocation ${g.name}`, true);
    return g;
  }

  /** The host paths granted to a plugin now. */
  grantedPaths(pluginId: string): PathGrant[] {
    this.registry.get(pluginId);
    return this.grants.paths(pluginId);
  }

  /** May the plugin do `action` on `resource` now (see decideCapability)? Audited. */
  checkCapability(pluginId: string, action: string, resource: string): CapabilityDecision {
    const m = this.registry.get(pluginId);
    const decision = decideCapability(m.loaded, this.policy, this.grants, action, resource);
    this.audit.record({ who: 'controller', action: 'check', resource: `${pluginId}:${action}:${resource}`, result: decision.allowed ? 'allowed' : 'denied', reason: decision.reason });
    return decision;
  }

  // --- the host application on the hub -----------------------------------------------------

  /** Call a plugin's method as the host application; rejects with the coded error (LM_*). */
  call(target: string, method: string, data: unknown, timeoutMs?: number): Promise<unknown> {
    return this.hub.call(target, method, data, timeoutMs);
  }

  /** Serve a host method that plugins may call (when their manifest lists it under consumesMethods). */
  registerMethod(name: string, handler: HostMethod): void {
    this.hub.registerHostMethod(name, handler);
  }

  /** Hear events and broadcasts of a topic (a pattern: `news.*`, `*`); returns the unsubscribe function. */
  on(topic: string, handler: (data: unknown, meta: { from: string; topic: string }) => void): () => void {
    return this.hub.subscribe(topic, handler);
  }

  /** Emit an event as the host, to its subscribers or only to the plugins in `to`. */
  emit(topic: string, data: unknown, to?: string[]): void {
    this.hub.emitEvent(topic, data, to);
  }

  broadcast(topic: string | undefined, data: unknown): void {
    this.hub.broadcast(topic, data);
  }

  // --- resource monitoring (src/monitor/, controller/monitoring.ts) ----------------------------

  /** The spec's getCurrentUsage: a running plugin's usage, read from its cgroups now. Throws LM_MONITOR_UNAVAILABLE without a monitor (not root), LM_PLUGIN_NOT_FOUND for a plugin not running. */
  usage(id: string): ResourceUsage {
    this.registry.get(id);
    return this.monitoring.usage(id);
  }

  /** What `logomesh stats` shows: every running plugin's usage and processes. Throws LM_MONITOR_UNAVAILABLE without a monitor. */
  stats(): StatsRow[] {
    return this.monitoring.stats();
  }

  /**
   * The spec's enforceLimit: change a running plugin's memory, CPU or process limit live,
   * without a restart, within the schema's bounds (LM_LIMIT_INVALID) and the policy's
   * ceilings (LM_POLICY_DENIED). It holds for the plugin's later containers under this
   * controller. Audited with `who`. Returns what changed.
   */
  setLimits(id: string, change: LimitChange, who = 'operator'): Promise<ChangedLimit[]> {
    const m = this.registry.get(id);
    return serialize(m, () => this.monitoring.setLimits(m, change, who));
  }

  /** The Prometheus metrics (usage, violations, states, hub calls), for an endpoint (monitor/metrics-server.ts). */
  get metrics(): MonitorMetrics {
    return this.monitoring.metrics;
  }

  // --- status ---------------------------------------------------------------------------------

  list(): PluginStatus[] {
    return this.registry
      .records()
      .map((m) => this.statusOf(m))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The manifests of the loaded plugins, by id order (the console's who-may-call-whom graph). */
  manifests(): LoadedManifest[] {
    return this.registry
      .records()
      .map((m) => m.loaded)
      .sort((a, b) => a.manifest.id.localeCompare(b.manifest.id));
  }

  /**
   * The JSON Schemas a plugin's manifest declares for a method's params and result
   * (coordination.methodSchemas; `{}` when it declares none). Throws LM_METHOD_NOT_FOUND for
   * a method it does not expose.
   */
  methodSchemas(id: string, method: string): { params?: object; result?: object } {
    const { coordination } = this.registry.get(id).loaded.manifest;
    if (!coordination.exposesMethods.includes(method)) throw new LogoMeshError('LM_METHOD_NOT_FOUND', `plugin ${id} does not expose '${method}' (coordination.exposesMethods: ${coordination.exposesMethods.join(', ') || 'none'})`, { plugin: id, method });
    return (coordination.methodSchemas?.[method] ?? {}) as { params?: object; result?: object };
  }

  status(id: string): PluginStatus {
    return this.statusOf(this.registry.get(id));
  }

  logs(id: string, lines?: number): LogLine[] {
    return this.registry.get(id).logs.tail(lines);
  }

  followLogs(id: string, fn: (line: LogLine) => void): () => void {
    return this.registry.get(id).logs.follow(fn);
  }

  /** Stop every plugin in reverse dependency order, close the hub, remove sockets. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.engine.close();
      this.kernel?.close();
      for (const level of this.registry.stopLevels()) await Promise.allSettled(level.map((id) => this.stop(id)));
      await this.monitoring.close();
      await this.hub.close();
      await this.debugMode?.close();
      await this.memory.close().catch((err: unknown) => this.log.warn({ err: errorText(err) }, 'could not remove the shared-memory pool'));
      await this.backend.close();
      rmSync(this.opts.home.socketsDir, { recursive: true, force: true });
      // A clean stop leaves nothing to adopt; the plugin folders and the operator's revocations and grants stay.
      this.saved.keepForNextStart(this.registry.records(), (id) => this.grants.saved(id));
      this.grants.close();
      await this.audit.close();
      // Whatever a failed stop left behind still carries this controller's label.
      await this.backend.removeAll();
    })();
    return this.closing;
  }

  /**
   * Stop serving without stopping the plugins: for a controller that is being moved (its
   * Pod rescheduled or drained; Kubernetes sends SIGTERM first). The plugins keep running and
   * their SDKs reconnect for 60 s; the next controller of the installation adopts them.
   * state.json, the audit trail and the hub keys stay for it. `close` after this does nothing.
   */
  leave(): Promise<void> {
    this.closing ??= (async () => {
      this.engine.close();
      this.kernel?.close();
      for (const m of this.registry.records()) this.supervisor.stopTimers(m);
      await this.hub.close();
      await this.backend.close();
      this.grants.close();
      await this.audit.close();
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- internals ------------------------------------------------------------------------------

  private statusOf(m: Managed): PluginStatus {
    const id = m.loaded.manifest.id;
    const standby = this.standbys?.status(id);
    return { ...statusOf(m, this.hub.stats(id), pluginUid(this.opts.home.instance, id)), ...(standby ? { standby } : {}) };
  }

  /** Save what a restarted controller needs; called on every change of it. */
  private persist(): void {
    if (this.closing) return;
    this.saved.save(this.registry.records(), (id) => this.grants.saved(id));
  }

  /** What the operator changed on this plugin under an earlier controller of this home, applied again at its load. */
  private restorePermissions(m: Managed): void {
    const id = m.loaded.manifest.id;
    const saved = this.saved.takePermissions(id);
    if (!saved) return;
    this.grants.restore(id, saved, `restored from ${this.opts.home.stateFile} after a controller restart`);
    this.log.info({ plugin: id }, 'restored the operator permission changes of the earlier controller');
  }

  /** Mounts and networks change only with a new container: stop and start a running plugin (or one just killed: `killed`), audited. */
  private async recreate(m: Managed, why: string, killed = false): Promise<void> {
    const id = m.loaded.manifest.id;
    if (!killed && !isUp(m)) return; // takes effect at its next start
    this.audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'stopping', reason: why });
    await this.stop(id);
    try {
      await this.start(id);
      this.audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'ready', reason: why });
    } catch (err) {
      this.audit.record({ who: 'controller', action: 'recreate', resource: id, result: 'failed', code: (err as LogoMeshError).code ?? 'LM_ENGINE_ERROR', reason: (err as Error).message });
      throw err;
    }
  }

  private ifLoaded(id: string, fn: (m: Managed) => Promise<void>): Promise<void> {
    const m = this.registry.find(id);
    return m ? fn(m) : Promise.resolve();
  }
}
