import { Counter, Gauge, Registry } from 'prom-client';
import { CallStats, type CallSnapshot } from './call-stats.js';
import type { ResourceUsage, ResourceViolation } from './types.js';

/** A plugin's lifecycle state and restart count, as the controller knows them. */
export interface PluginStateSample {
  readonly plugin: string;
  readonly state: string;
  readonly restarts: number;
}

/** The lifecycle states a plugin can be in (src/lifecycle); each gets a 0/1 series. */
export const PLUGIN_STATES = ['loaded', 'starting', 'ready', 'restarting', 'stopping', 'stopped', 'exited', 'failed'] as const;

export interface MetricsSources {
  /** Every watched plugin's usage (ResourceMonitor.usages). */
  readonly usages?: () => readonly ResourceUsage[];
  /** Every loaded plugin's state and restarts. */
  readonly states?: () => readonly PluginStateSample[];
}

/**
 * LogoMesh's Prometheus metrics (prom-client), in a registry of its own: per-plugin usage
 * and limits and state (read from the sources at scrape time), violations by kind, and hub
 * calls and messages (counted as they happen, by the hub in the series of `hubMetrics`, or
 * through observeCall and countMessage). docs/monitoring.md#metrics lists every series.
 */
export class MonitorMetrics {
  readonly registry = new Registry();
  private readonly violations: Counter<'plugin' | 'kind' | 'action'>;
  private readonly hub: CallStats;
  /**
   * The hub's calls and messages, as series the hub asks for once and keeps on each
   * connection (HubOptions.metrics, src/hub/hub-metrics.ts): what the controller hands the hub.
   */
  get hubMetrics(): CallStats {
    return this.hub;
  }

  constructor(private readonly sources: MetricsSources = {}) {
    const r = [this.registry];
    const usageGauge = (name: string, help: string, pick: (u: ResourceUsage) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['plugin'],
        registers: r,
        collect: () => this.fromUsages(name, pick),
      });
    this.gauges = [
      usageGauge('logomesh_plugin_memory_used_bytes', 'Memory in use: the cgroup usage less inactive file pages.', (u) => u.memory.used),
      usageGauge('logomesh_plugin_memory_peak_bytes', 'The most memory the cgroup has used.', (u) => u.memory.peak),
      usageGauge('logomesh_plugin_memory_limit_bytes', 'The memory limit (resources.maxMemoryMB, or a live change).', (u) => u.memory.limit),
      usageGauge('logomesh_plugin_cpu_percent', 'CPU used over the last second or more, percent of one core.', (u) => u.cpu.percent),
      usageGauge('logomesh_plugin_cpu_limit_percent', 'The CPU quota, percent of one core.', (u) => u.cpu.limit),
      usageGauge('logomesh_plugin_file_handles', 'Open files of all the plugin\'s processes.', (u) => u.io.fileHandles),
      usageGauge('logomesh_plugin_network_connections', 'Connections open through the egress proxy.', (u) => u.io.networkConnections),
      usageGauge('logomesh_plugin_disk_read_bytes', 'Bytes read from block devices since the container started.', (u) => u.io.diskReadBytes),
      usageGauge('logomesh_plugin_disk_write_bytes', 'Bytes written to block devices since the container started.', (u) => u.io.diskWriteBytes),
    ];
    new Gauge({
      name: 'logomesh_plugin_restarts',
      help: 'Restarts of the plugin in a row, as the controller counts them for its restart policy.',
      labelNames: ['plugin'],
      registers: r,
      collect: () => this.fromStates('logomesh_plugin_restarts', (s, g) => g.set({ plugin: s.plugin }, s.restarts)),
    });
    new Gauge({
      name: 'logomesh_plugin_state',
      help: 'The plugin\'s lifecycle state: 1 for the state it is in, 0 for the others.',
      labelNames: ['plugin', 'state'],
      registers: r,
      collect: () =>
        this.fromStates('logomesh_plugin_state', (s, g) => {
          for (const state of new Set<string>([...PLUGIN_STATES, s.state])) g.set({ plugin: s.plugin, state }, state === s.state ? 1 : 0);
        }),
    });
    this.violations = new Counter({ name: 'logomesh_violations_total', help: 'Resource violations seen by the monitor, by plugin, kind and action.', labelNames: ['plugin', 'kind', 'action'], registers: r });
    this.hub = new CallStats(this.registry);
  }

  private readonly gauges: Gauge<'plugin'>[];

  /** The hub's call series now, for the console's graph (call-stats.ts). */
  callSnapshot(): CallSnapshot[] {
    return this.hub.snapshot();
  }

  private fromUsages(name: string, pick: (u: ResourceUsage) => number): void {
    const g = this.registry.getSingleMetric(name) as Gauge<'plugin'>;
    g.reset();
    for (const u of this.usageCache()) g.set({ plugin: u.pluginId }, pick(u));
  }

  /** One read of the usages per scrape, shared by the usage gauges. */
  private cached: { at: number; usages: readonly ResourceUsage[] } | undefined;
  private usageCache(): readonly ResourceUsage[] {
    const now = performance.now();
    if (!this.cached || now - this.cached.at > 100) this.cached = { at: now, usages: this.sources.usages?.() ?? [] };
    return this.cached.usages;
  }

  private fromStates(name: string, set: (s: PluginStateSample, g: Gauge<string>) => void): void {
    const g = this.registry.getSingleMetric(name) as Gauge<string>;
    g.reset();
    for (const s of this.sources.states?.() ?? []) set(s, g);
  }

  /** A violation the monitor emitted. */
  recordViolation(v: ResourceViolation): void {
    this.violations.inc({ plugin: v.plugin, kind: v.kind, action: v.action });
  }

  /** A call through the hub answered (or failed with `outcome`, an LM_* code) after `seconds`. `caller` is a plugin id or `host`. */
  readonly observeCall = (caller: string, target: string, method: string, seconds: number, outcome: string): void => this.hub.observeCall(caller, target, method, seconds, outcome);

  /** A message the hub accepted. */
  readonly countMessage = (type: string, from: string): void => this.hub.countMessage(type, from);

  /** The Prometheus text exposition of every series now. */
  text(): Promise<string> {
    this.cached = undefined;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
