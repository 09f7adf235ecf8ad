import type { AuditLog } from '../audit/audit-log.js';
import { errorText } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { Grants } from '../grants/grants.js';
import type { PathGrant } from '../grants/path-grants.js';
import type { Hub, HostMethod } from '../hub/hub.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { ChangedLimit, LimitChange, MonitorMetrics, ResourceUsage, StatsRow } from '../monitor/index.js';
import { resolvePolicy, type Policy } from '../policy/policy.js';
import { pluginUid } from '../runtimes/runtime.js';
import type { Backend } from './backend.js';
import type { CapabilityDecision } from './capabilities.js';
import { DockerBackend } from './docker-backend.js';
import type { Home } from './home.js';
import { serialize, type Managed } from './managed.js';
import { OperatorPermissions } from './operator-permissions.js';
import { DEFAULTS, type ControllerOptions } from './options.js';
import { loadFolders } from '../manifest/folders.js';
import { buildParts, type ControllerParts } from './parts.js';
import { closeParts, leaveParts } from './shutdown.js';
import { startInLevels } from './start-all.js';
import type { ApplyOptions, Deployer } from './deploy/deployer.js';
import type { SignedContent } from '../signing/signature.js';
import { statusOf } from './status.js';
import type { Segments } from './segments.js';
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
  /** Every part, each the one owner of its kind of state (parts.ts). */
  private readonly parts: ControllerParts;
  private readonly permissions: OperatorPermissions;
  private resolvedPolicy?: Policy;
  private closing?: Promise<void>;

  private constructor(
    /** Where plugins run: this host's Docker engine, or a Kubernetes cluster. */
    readonly backend: Backend,
    private readonly opts: ControllerOptions,
  ) {
    this.parts = buildParts(backend, opts, {
      policy: () => this.policy,
      closing: () => this.closing !== undefined,
      persist: () => this.persist(),
      pathExpired: (id, name) => {
        this.revokePath(id, name, 'expiry').catch((err: unknown) => this.parts.log.warn({ plugin: id, err: errorText(err) }, 'revoking an expired path grant failed'));
      },
      currentPolicy: () => (this.opts.policy ? this.policy : resolvePolicy(undefined)),
      usePolicy: (p) => (this.resolvedPolicy = p),
      load: (manifests, verified) => this.load(manifests, verified),
      start: (id) => this.start(id),
      unload: (id) => this.unload(id),
    });
    ({ hub: this.hub, token: this.token, audit: this.audit, grants: this.grants, memory: this.memory } = this.parts);
    const { log, audit, grants, registry, saved, launcher } = this.parts;
    this.permissions = new OperatorPermissions({ log, audit, grants, registry, saved, backend, launcher, stateFile: opts.home.stateFile, policy: () => this.policy, stop: (id) => this.stop(id), start: (id) => this.start(id) });
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
    return this.parts.engine.status();
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
    const ids = this.parts.registry.add(
      manifests,
      this.parts.saved.read(),
      (m) => {
        this.permissions.restore(m);
        if (this.parts.deployer) m.deployed = this.parts.deployer.fingerprint(m.loaded);
      },
      verified,
    );
    this.persist();
    return ids;
  }

  /** Stop and forget a plugin. Refused while a plugin that depends on it is loaded. */
  async unload(id: string): Promise<void> {
    this.parts.registry.get(id);
    const dependents = this.parts.registry.dependents(id);
    if (dependents.length) {
      throw new LogoMeshError('LM_DEPENDENCY', `cannot unload ${id}: loaded plugins depend on it (${dependents.join(', ')}); unload them first, or apply a folder without them`, {
        plugin: id,
        dependents,
      });
    }
    await this.stop(id);
    await this.memory.pluginGone(id, true);
    this.parts.registry.remove(id);
    await this.parts.debugMode?.close(id);
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
    if (!this.parts.deployer) throw new LogoMeshError('LM_USAGE', `apply and load into a running controller are built for the Docker backend only, not ${this.backend.name}: restart the controller with the new folder`, { expected: 'the Docker backend', found: this.backend.name });
    return this.parts.deployer;
  }

  /** The plugin folders an earlier controller of this home ran (state.json), in load order. */
  savedFolders(): string[] {
    return this.parts.saved.read()?.folders ?? [];
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
      this.parts.registry.levels(),
      (id) => this.start(id),
      () => this.parts.registry.records().filter((m) => m.state === 'loaded').map((m) => m.loaded.manifest.id),
      this.opts.startConcurrency ?? DEFAULTS.startConcurrency,
    );
  }

  /** Start one plugin (its dependencies must be ready). Resolves when it said hello. */
  async start(id: string): Promise<void> {
    const m = this.parts.registry.get(id);
    await this.reconcile();
    // A start by hand ends a crash loop: it begins with a clean count (its standby's too).
    if (m.state === 'failed' || m.state === 'exited') m.retries = 0;
    this.parts.standbys?.reset(id);
    return serialize(m, () => this.parts.launcher.start(m));
  }

  /** Stop one plugin: shutdown message, then SIGTERM, then SIGKILL, each after a grace period. */
  stop(id: string): Promise<void> {
    const m = this.parts.registry.get(id);
    return serialize(m, () => this.parts.launcher.stop(m));
  }

  /**
   * Restart one plugin: switched to its standby when one is waiting (the container it
   * replaces is stopped behind), otherwise stopped and started again (the container is
   * recreated; see `apply` for a replacement without failed calls).
   */
  async restart(id: string): Promise<void> {
    const m = this.parts.registry.get(id);
    const switched = await serialize(m, async () => m.state === 'ready' && !!this.parts.standbys?.ready(m) && this.parts.supervisor.restartToStandby(m, this.opts.stopGraceMs ?? DEFAULTS.stopGraceMs));
    if (switched) return;
    await this.stop(id);
    await this.start(id);
  }

  /**
   * Adopt or remove the containers an earlier controller of this home left (it was killed,
   * or the machine restarted). Runs once, before the first start.
   */
  async reconcile(): Promise<void> {
    await this.parts.adoption.reconcile();
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
  revokeHost(pluginId: string, spelled: string): Promise<boolean> {
    return this.permissions.revokeHost(pluginId, spelled);
  }

  /**
   * Give back a host revoked with `revokeHost`. The manifest is the upper bound: a host its
   * network capabilities do not list cannot be granted (LM_PERMISSION_DENIED). The proxy's
   * allow-list of a running plugin can only shrink, so a running plugin's container is
   * recreated with its new network (as for a path grant); a stopped one gets the host at
   * its next start. Throws what the restart throws.
   */
  grantHost(pluginId: string, spelled: string): Promise<void> {
    return this.permissions.grantHost(pluginId, spelled);
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
  grantPath(pluginId: string, target: string, opts: { write?: boolean; ttlMs?: number } = {}): Promise<PathGrant> {
    return this.permissions.grantPath(pluginId, target, opts);
  }

  /**
   * Take a granted host path (by name, or by the host path given) away from a plugin. A
   * running plugin's container is killed at once and recreated without the mount. Throws
   * LM_GRANT_PATH when no such grant exists.
   */
  revokePath(pluginId: string, nameOrPath: string, who = 'operator'): Promise<PathGrant> {
    return this.permissions.revokePath(pluginId, nameOrPath, who);
  }

  /** The host paths granted to a plugin now. */
  grantedPaths(pluginId: string): PathGrant[] {
    this.parts.registry.get(pluginId);
    return this.grants.paths(pluginId);
  }

  /** May the plugin do `action` on `resource` now (see decideCapability)? Audited. */
  checkCapability(pluginId: string, action: string, resource: string): CapabilityDecision {
    return this.permissions.checkCapability(pluginId, action, resource);
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
    this.parts.registry.get(id);
    return this.parts.monitoring.usage(id);
  }

  /** What `logomesh stats` shows: every running plugin's usage and processes. Throws LM_MONITOR_UNAVAILABLE without a monitor. */
  stats(): StatsRow[] {
    return this.parts.monitoring.stats();
  }

  /**
   * The spec's enforceLimit: change a running plugin's memory, CPU or process limit live,
   * without a restart, within the schema's bounds (LM_LIMIT_INVALID) and the policy's
   * ceilings (LM_POLICY_DENIED). It holds for the plugin's later containers under this
   * controller. Audited with `who`. Returns what changed.
   */
  setLimits(id: string, change: LimitChange, who = 'operator'): Promise<ChangedLimit[]> {
    const m = this.parts.registry.get(id);
    return serialize(m, () => this.parts.monitoring.setLimits(m, change, who));
  }

  /** The Prometheus metrics (usage, violations, states, hub calls), for an endpoint (monitor/metrics-server.ts). */
  get metrics(): MonitorMetrics {
    return this.parts.monitoring.metrics;
  }

  // --- status ---------------------------------------------------------------------------------

  list(): PluginStatus[] {
    return this.parts.registry
      .records()
      .map((m) => this.statusOf(m))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The manifests of the loaded plugins, by id order (the console's who-may-call-whom graph). */
  manifests(): LoadedManifest[] {
    return this.parts.registry
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
    const { coordination } = this.parts.registry.get(id).loaded.manifest;
    if (!coordination.exposesMethods.includes(method)) throw new LogoMeshError('LM_METHOD_NOT_FOUND', `plugin ${id} does not expose '${method}' (coordination.exposesMethods: ${coordination.exposesMethods.join(', ') || 'none'})`, { plugin: id, method });
    return (coordination.methodSchemas?.[method] ?? {}) as { params?: object; result?: object };
  }

  status(id: string): PluginStatus {
    return this.statusOf(this.parts.registry.get(id));
  }

  logs(id: string, lines?: number): LogLine[] {
    return this.parts.registry.get(id).logs.tail(lines);
  }

  followLogs(id: string, fn: (line: LogLine) => void): () => void {
    return this.parts.registry.get(id).logs.follow(fn);
  }

  /** Stop every plugin in reverse dependency order, close the hub, remove sockets. Idempotent. */
  close(): Promise<void> {
    this.closing ??= closeParts(this.parts, this.backend, this.opts.home, (id) => this.stop(id));
    return this.closing;
  }

  /**
   * Stop serving without stopping the plugins: for a controller that is being moved (its
   * Pod rescheduled or drained; Kubernetes sends SIGTERM first). The plugins keep running and
   * their SDKs reconnect for 60 s; the next controller of the installation adopts them.
   * state.json, the audit trail and the hub keys stay for it. `close` after this does nothing.
   */
  leave(): Promise<void> {
    this.closing ??= leaveParts(this.parts, this.backend);
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- internals ------------------------------------------------------------------------------

  private statusOf(m: Managed): PluginStatus {
    const id = m.loaded.manifest.id;
    const standby = this.parts.standbys?.status(id);
    return { ...statusOf(m, this.hub.stats(id), pluginUid(this.opts.home.instance, id)), ...(standby ? { standby } : {}) };
  }

  /** Save what a restarted controller needs; called on every change of it. */
  private persist(): void {
    if (this.closing) return;
    this.parts.saved.save(this.parts.registry.records(), (id) => this.grants.saved(id));
  }
}
