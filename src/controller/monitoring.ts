import { existsSync } from 'node:fs';
import type { AuditSink } from '../audit/audit-log.js';
import { errorText, type Docker } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { helperBinaries } from '../monitor/cgwatch-binary.js';
import { useMountHelper } from '../sandbox/mount-helper.js';
import { enforceLimit, checkLimitChange, MonitorMetrics, monitoringRules, ResourceMonitor, watchedLimits, type ChangedLimit, type LimitChange, type ResourceUsage, type ResourceViolation, type StatsRow } from '../monitor/index.js';
import { enforcePolicy } from '../policy/decisions.js';
import type { Policy } from '../policy/policy.js';
import { healthCheckInterval, type HealthCheckSpec } from '../sandbox/health-check.js';
import { PluginContainer } from '../sandbox/plugin-container.js';
import { withLiveLimits } from './live-limits.js';
import { isUp, type Managed } from './managed.js';
import type { MonitoringOptions } from './options.js';
import { ViolationRouter } from './violation-routing.js';

export interface MonitoringDeps {
  readonly docker: Docker;
  readonly log: Logger;
  readonly audit: AuditSink;
  /** Emit an event on the hub as the host (the violation events). */
  readonly emit: (topic: string, data: unknown) => void;
  readonly policy: () => Policy;
  /** Every loaded plugin (the metrics' states and restarts). */
  readonly records: () => readonly Managed[];
  /** Open connections through a plugin's egress proxy (undefined: no proxy). */
  readonly connections: (pluginId: string) => number | undefined;
  readonly options: MonitoringOptions;
  /** How long a plugin has to say hello: the health check's start period. */
  readonly startTimeoutMs: number;
  /** The controller's user id (default: this process's): the monitor needs root. */
  readonly uid?: number;
}

/**
 * A watch that ended this long before the engine reported the container's exit ended for
 * another reason (an unreadable cgroup file), not with the exit: its silence says nothing.
 */
const ENDED_WITH_EXIT_MS = 2_000;
/** A report older than this (or three of the plugin's health intervals, if longer) means no controller is watching. */
const STALE_AFTER_S = 60;
const MS = 1000;

/**
 * The containers that get a Docker health check: one per loaded plugin, two for one that
 * keeps a warm standby (an operator's standby for every plugin is not counted: the interval
 * is then at most half as long as the bound asks).
 */
function containersChecked(records: readonly Managed[]): number {
  let n = 0;
  for (const m of records) n += m.loaded.manifest.restart.standby ? 2 : 1;
  return n;
}

/**
 * The controller's side of resource monitoring (issue 16): the ResourceMonitor (as root;
 * without the rights the controller runs without one and says so), which plugin it
 * watches (each one ready, until torn down), where violations go (violation-routing.ts), a
 * monitor kill for the supervisor to report, live limit changes, stats, the Prometheus
 * metrics, and the program of the plugins' Docker health check. See docs/monitoring.md.
 */
export class Monitoring {
  readonly metrics: MonitorMetrics;
  private monitor?: ResourceMonitor;
  private health?: string;
  private preparing?: Promise<void>;
  private readonly router: ViolationRouter;
  /** Kills by the monitor whose exit the supervisor has not reported yet: by plugin, with the container killed. */
  private readonly kills = new Map<string, { container: string; violation: ResourceViolation }>();
  /** The container of each plugin the kernel's OOM killer was seen in, until the supervisor asks at its exit. */
  private readonly oomKills = new Map<string, string>();
  /** The container each watched plugin is watched in. */
  private readonly watching = new Map<string, string>();
  /** The watched containers whose OOM kills the kernel notifies (an eventfd, not a poll). */
  private readonly oomNotified = new Set<string>();
  /** When the monitor saw each watched container's cgroup go (its end): by container. */
  private readonly endedAt = new Map<string, number>();
  /** Exits waiting for the kernel's OOM notification or the cgroup's end: by plugin. */
  private readonly oomWaiters = new Map<string, () => void>();
  private closed = false;

  constructor(private readonly deps: MonitoringDeps) {
    this.metrics = new MonitorMetrics({
      usages: () => this.monitor?.usages() ?? [],
      states: () => deps.records().map((m) => ({ plugin: m.loaded.manifest.id, state: m.state, restarts: m.restarts })),
    });
    this.router = new ViolationRouter({ log: deps.log, audit: deps.audit, metrics: this.metrics, emit: deps.emit });
  }

  /** Is a monitor running (usage, violations, stats)? */
  get active(): boolean {
    return this.monitor !== undefined;
  }

  /**
   * Build the helpers and start the monitor, once, before the first plugin starts. Never
   * throws: without the rights, or when the helper cannot be built, the controller runs
   * without a monitor (or without health checks) and the log says why (LM_MONITOR_UNAVAILABLE).
   */
  prepare(): Promise<void> {
    this.preparing ??= this.start();
    return this.preparing;
  }

  private async start(): Promise<void> {
    // The engine is read only when wanted (on Kubernetes there is none: both are off).
    const { log, options } = this.deps;
    const wantMonitor = options.enabled !== false;
    const wantHealth = options.healthCheckMs !== false;
    if (!wantMonitor && !wantHealth) return;
    let binaries;
    try {
      binaries = options.cgwatch === false ? undefined : await helperBinaries(this.deps.docker, log);
    } catch (err) {
      log.warn({ code: 'LM_MONITOR_UNAVAILABLE', err: errorText(err) }, 'LM_MONITOR_UNAVAILABLE: the cgwatch helper and the health check program cannot be built; plugins run without a Docker health check, violations are read at each poll');
    }
    if (wantHealth && binaries?.health && existsSync(binaries.health)) this.health = binaries.health;
    useMountHelper(binaries?.mount, log); // the staging's helper, from the same image (else mount(8))
    if (!wantMonitor) return;
    // Root, as the monitor's kernel interfaces need: cgroup.event_control, PSI triggers, /proc of other users.
    if ((this.deps.uid ?? process.getuid?.()) !== 0) {
      log.warn({ code: 'LM_MONITOR_UNAVAILABLE' }, 'LM_MONITOR_UNAVAILABLE: the controller is not root, so it cannot read or watch the plugins\' cgroups; it runs without the resource monitor (no usage, no violations, no logomesh stats)');
      return;
    }
    try {
      this.monitor = await ResourceMonitor.create({
        log,
        cgwatch: binaries?.cgwatch ?? false,
        connections: this.deps.connections,
        ...(options.pollMs ? { pollMs: options.pollMs } : {}),
      });
      this.monitor.on('violation', (v) => this.onViolation(v));
      this.monitor.on('ended', (id) => this.onEnded(id));
      if (this.closed) await this.monitor.close();
    } catch (err) {
      log.warn({ code: 'LM_MONITOR_UNAVAILABLE', err: errorText(err) }, 'LM_MONITOR_UNAVAILABLE: the resource monitor cannot start; the controller runs without one');
    }
  }

  /** The Docker health check for a plugin's next container, or undefined (none: no program, or turned off). */
  healthCheck(m: Managed): HealthCheckSpec | undefined {
    if (!this.health) return undefined;
    // The operator's interval as given; else one that bounds the engine's execs host-wide (health-check.ts).
    const intervalMs = this.deps.options.healthCheckMs || healthCheckInterval(containersChecked(this.deps.records()));
    // The controller rewrites the report at each of its own health pings: three missed is stale.
    const maxAgeSeconds = Math.max(STALE_AFTER_S, Math.ceil((3 * m.loaded.manifest.health.intervalMs) / MS));
    return { binary: this.health, intervalMs, maxAgeSeconds, startPeriodMs: this.deps.startTimeoutMs };
  }

  /** Watch a plugin that just became ready (started or adopted). Never throws: a plugin the monitor cannot watch runs on, and the log says why. */
  async watch(m: Managed): Promise<void> {
    await this.prepare();
    const monitor = this.monitor;
    const container = m.container;
    const id = m.loaded.manifest.id;
    // Only a container of this host has cgroups the monitor can read (not a Pod on another node).
    if (!monitor || !(container instanceof PluginContainer) || !isUp(m) || this.closed) return;
    try {
      const info = await container.inspect();
      if (!info.State.Running || m.container !== container) return;
      const resources = withLiveLimits(m.loaded, m.liveLimits).manifest.resources;
      await monitor.watch({ pluginId: id, pid: info.State.Pid, limits: watchedLimits(resources), rules: monitoringRules(m.loaded.manifest.monitoring, this.deps.policy(), id) });
      this.watching.set(id, container.id);
      if (monitor.notifiesOom(id)) this.oomNotified.add(container.id);
      // Torn down while the watch was being set up.
      if (m.container !== container) this.unwatch(id);
    } catch (err) {
      this.deps.log.warn({ plugin: id, code: 'LM_MONITOR_UNAVAILABLE', err: errorText(err) }, 'LM_MONITOR_UNAVAILABLE: the resource monitor cannot watch this plugin');
    }
  }

  /**
   * Stop watching a plugin (its container is being removed). With `containerId`, only if that
   * is the container watched: while a plugin is replaced (deploy/replace.ts) the watch has
   * moved to its successor, which the old container's removal must leave alone.
   */
  unwatch(pluginId: string, containerId?: string): void {
    const watched = this.watching.get(pluginId);
    if (containerId !== undefined && watched !== undefined && watched !== containerId) return;
    if (watched !== undefined) {
      this.oomNotified.delete(watched);
      this.endedAt.delete(watched);
    }
    this.watching.delete(pluginId);
    if (containerId === undefined || this.oomKills.get(pluginId) === containerId) this.oomKills.delete(pluginId);
    this.monitor?.unwatch(pluginId);
  }

  private onEnded(pluginId: string): void {
    const container = this.watching.get(pluginId);
    if (!container) return;
    this.endedAt.set(container, performance.now());
    this.oomWaiters.get(pluginId)?.();
  }

  private onViolation(v: ResourceViolation): void {
    const container = this.watching.get(v.plugin);
    if (v.action === 'kill' && container) this.kills.set(v.plugin, { container, violation: v });
    if (v.kind === 'oom-kill' && container) {
      this.oomKills.set(v.plugin, container);
      this.oomWaiters.get(v.plugin)?.();
    }
    this.router.route(v);
  }

  /**
   * Did the monitor see the kernel's OOM killer in this container (taken: asked once, by the
   * supervisor at the exit)? The engine (20.10, cgroup v1) can report an exit by SIGKILL
   * before it has handled the OOM event, and on a loaded host State.OOMKilled stays false
   * past the supervisor's second look; the monitor's eventfd on memory.oom_control does not.
   */
  takeOomKill(pluginId: string, containerId: string): boolean {
    if (this.oomKills.get(pluginId) !== containerId) return false;
    this.oomKills.delete(pluginId);
    return true;
  }

  /**
   * At a plugin's exit: did the kernel's OOM killer end it, by the monitor's record (taken)?
   * `undefined` when the monitor cannot say: not watching that container, finding OOM kills
   * by polling, or its watch ended long before this exit (the engine's own flag decides
   * then). The kernel notifies an OOM kill before the process is gone, and the monitor sees
   * the cgroup go after that: once it has, the answer is known. Until then this waits up to
   * `withinMs`, and answers as soon as either comes.
   */
  async oomKillAtExit(pluginId: string, containerId: string, withinMs: number): Promise<boolean | undefined> {
    if (this.takeOomKill(pluginId, containerId)) return true;
    if (this.watching.get(pluginId) !== containerId || !this.oomNotified.has(containerId)) return undefined;
    const ended = this.endedAt.get(containerId);
    if (ended !== undefined && performance.now() - ended > ENDED_WITH_EXIT_MS) return undefined;
    if (withinMs > 0 && ended === undefined) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.oomWaiters.set(pluginId, resolve);
        timer = setTimeout(resolve, withinMs);
      });
      clearTimeout(timer);
      this.oomWaiters.delete(pluginId);
    }
    return this.takeOomKill(pluginId, containerId);
  }

  /** The monitor's kill of this container, if it killed it (taken: asked once, by the supervisor at the exit). */
  takeKill(pluginId: string, containerId: string): ResourceViolation | undefined {
    const k = this.kills.get(pluginId);
    if (!k || k.container !== containerId) return undefined;
    this.kills.delete(pluginId);
    return k.violation;
  }

  /** The spec's getCurrentUsage. Throws LM_MONITOR_UNAVAILABLE without a monitor, LM_PLUGIN_NOT_FOUND for a plugin not watched. */
  usage(pluginId: string): ResourceUsage {
    return this.need().getCurrentUsage(pluginId);
  }

  /** `logomesh stats`: every watched plugin's usage and processes. Throws LM_MONITOR_UNAVAILABLE without a monitor. */
  stats(): StatsRow[] {
    return this.need().stats();
  }

  /**
   * Change a running plugin's limits live (the engine's update; no restart), within the
   * schema's bounds (LM_LIMIT_INVALID) and the policy's ceilings (LM_POLICY_DENIED). The
   * change holds for the plugin's later containers under this controller too (a restart
   * keeps it). Audited, one entry per limit, with who changed it. Returns what changed.
   */
  async setLimits(m: Managed, change: LimitChange, who: string): Promise<ChangedLimit[]> {
    const id = m.loaded.manifest.id;
    checkLimitChange(change);
    const merged = { ...m.liveLimits, ...change };
    enforcePolicy(withLiveLimits(m.loaded, merged), this.deps.policy()); // throws LM_POLICY_DENIED naming the ceiling
    if (!isUp(m) || !m.container) {
      throw new LogoMeshError('LM_LIMIT_INVALID', `plugin ${id} is not running (${m.state}): its limits change live only while it runs`, { plugin: id, expected: 'a running plugin', found: m.state });
    }
    if (!(m.container instanceof PluginContainer)) {
      throw new LogoMeshError('LM_LIMIT_INVALID', `plugin ${id} runs on Kubernetes: its limits change with its manifest's resources and a restart, not live`, { plugin: id, expected: 'a plugin on the Docker backend', found: 'a Pod on Kubernetes' });
    }
    let changed: ChangedLimit[];
    try {
      changed = await enforceLimit(this.deps.docker.getContainer(m.container.id), change);
    } catch (err) {
      const e = err as LogoMeshError;
      this.deps.audit({ who, action: 'limit', resource: id, result: 'failed', code: e.code ?? 'LM_ENGINE_ERROR', reason: `${JSON.stringify(change)}: ${e.message}` });
      throw err;
    }
    m.liveLimits = merged;
    for (const c of changed) this.deps.audit({ who, action: 'limit', resource: `${id}:${c.resource}`, result: 'changed', reason: `${c.resource} from ${c.from ?? 'unlimited'} to ${c.to}, live (no restart)` });
    await this.monitor?.setLimits(id, watchedLimits(withLiveLimits(m.loaded, merged).manifest.resources));
    this.deps.log.info({ plugin: id, who, changed }, 'limits changed live');
    return changed;
  }

  private need(): ResourceMonitor {
    if (this.monitor) return this.monitor;
    throw new LogoMeshError('LM_MONITOR_UNAVAILABLE', 'this controller runs without the resource monitor (it needs root; see its log for why)', { expected: 'a controller running as root', found: `uid ${process.getuid?.() ?? '?'}` });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.router.close();
    await this.monitor?.close();
  }
}
