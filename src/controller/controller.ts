// The controller's facade, Controller: what `logomesh up`, the control API, the console and
// the library API call. Its lifecycle half is LifecycleController (lifecycle-controller.ts);
// this file adds the operator's permissions, the host application on the hub, resource
// monitoring and status, each a thin delegation to the part that owns that state.
import type { PathGrant } from '../grants/path-grants.js';
import type { HostMethod } from '../hub/hub.js';
import type { LoadedManifest } from '../manifest/types.js';
import type { ChangedLimit, LimitChange, MonitorMetrics, ResourceUsage, StatsRow } from '../monitor/index.js';
import { LogoMeshError } from '../errors.js';
import { pluginUid } from '../runtimes/runtime.js';
import type { Backend } from './backend.js';
import type { CapabilityDecision } from './capabilities.js';
import { DockerBackend } from './docker-backend.js';
import { LifecycleController } from './lifecycle-controller.js';
import { serialize, type Managed } from './managed.js';
import type { ControllerOptions } from './options.js';
import { statusOf } from './status.js';
import type { LogLine, PluginStatus } from './types.js';

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
 *
 * The lifecycle (loading, deploys, start, stop, restart, adoption, close) is in
 * lifecycle-controller.ts; this file adds the operator's permissions, the host application's
 * calls on the hub, resource monitoring and status.
 */
export class Controller extends LifecycleController {
  private constructor(backend: Backend, opts: ControllerOptions) {
    super(backend, opts);
  }

  /**
   * Connect to the backend and make a controller: `opts.backend`, else the Docker engine
   * (opts.docker, else DOCKER_HOST or the local socket). Throws LM_ENGINE_UNAVAILABLE.
   */
  static async create(opts: ControllerOptions): Promise<Controller> {
    return new Controller(opts.backend ?? (await DockerBackend.connect(opts.docker)), opts);
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

  // --- internals ------------------------------------------------------------------------------

  private statusOf(m: Managed): PluginStatus {
    const id = m.loaded.manifest.id;
    const standby = this.parts.standbys?.status(id);
    return { ...statusOf(m, this.hub.stats(id), pluginUid(this.opts.home.instance, id)), ...(standby ? { standby } : {}) };
  }
}
