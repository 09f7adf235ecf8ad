import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Docker } from '../engine/docker.js';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';
import { Cgwatch } from './cgwatch.js';
import { cgwatchBinary } from './cgwatch-binary.js';
import { PluginWatch, type WatchTarget } from './plugin-watch.js';
import { PollWheel } from './poll-wheel.js';
import { SLOW_READS_PER_SECOND, SlowReads } from './slow-reads.js';
import type { StatsRow } from './stats-table.js';
import type { ResourceUsage, ResourceViolation, WatchedLimits } from './types.js';

export interface MonitorOptions {
  readonly log: Logger;
  /** Builds the cgwatch helper when `cgwatch` is not given. */
  readonly docker?: Docker;
  /** The cgwatch binary; false: no helper, every kind is read at each poll (docs/monitoring.md#without-the-helper). Default: built from images/cgwatch. */
  readonly cgwatch?: string | false;
  /** The poll interval for what has no kernel notification (ms, default 500). */
  readonly pollMs?: number;
  /** Open files and /tmp are read every this many polls (default 3: every 1.5 s), while the plugins are few enough for `slowReadsPerSecond`. */
  readonly slowEvery?: number;
  /** At most this many plugins' open files and /tmp read in a second, host-wide (default 40: past 60 plugins each one's interval grows; slow-reads.ts). */
  readonly slowReadsPerSecond?: number;
  /** cgroup v1 only: how often cgwatch reads pids.events, which the kernel does not notify (ms, default 15). */
  readonly pidsPollMs?: number;
  /** Open connections of a plugin through its egress proxy; undefined: not known (no network). */
  readonly connections?: (pluginId: string) => number | undefined;
  /** Where /proc is (tests). */
  readonly proc?: string;
  /** May PSI triggers use windows that are not multiples of 2 s (CAP_SYS_RESOURCE)? Default: read from /proc/self/status. */
  readonly privilegedPsi?: boolean;
}

/** CAP_SYS_RESOURCE's bit in CapEff. */
const CAP_SYS_RESOURCE = 24n;

function hasSysResource(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? ((BigInt(`0x${m[1]}`) >> CAP_SYS_RESOURCE) & 1n) === 1n : false;
}

/**
 * The spec's ResourceMonitor: watches plugin containers through their cgroups (never the
 * engine's stats API) and emits `violation` for every limit hit or alert crossed, as soon
 * as the kernel says so (docs/monitoring.md). `getCurrentUsage` reads the figures on demand.
 * The controller tells it which containers to watch (`watch` after each start, `unwatch` on
 * exit) and routes its violations.
 */
export class ResourceMonitor extends EventEmitter<{ violation: [ResourceViolation]; ended: [string] }> {
  private readonly watches = new Map<string, PluginWatch>();
  private serial = 0;
  /** One timer for every watch, each watch's poll in one of its phases: the reads of many plugins spread over the poll, not in one burst. */
  private readonly wheel: PollWheel<PluginWatch>;
  /** The watches' /proc reads, paced host-wide over the wheel's wake-ups. */
  private readonly slow: SlowReads<PluginWatch>;

  private constructor(
    private readonly opts: MonitorOptions,
    private helper: Cgwatch | undefined,
  ) {
    super();
    const pollMs = opts.pollMs ?? 500;
    this.slow = new SlowReads(pollMs * (opts.slowEvery ?? 3), opts.slowReadsPerSecond ?? SLOW_READS_PER_SECOND, (w) => w.slowTick());
    this.wheel = new PollWheel(pollMs, (w) => w.tick(), 5, () => this.slow.turn());
    helper?.on('event', (ev) => this.route(ev.key));
    helper?.on('exit', (code) => {
      if (!this.helper) return;
      this.helper = undefined;
      opts.log.error({ code }, 'cgwatch exited; violations are now read at each poll');
      for (const w of this.watches.values()) w.pollEverything();
    });
  }

  /** Start a monitor, and its cgwatch helper unless `cgwatch: false`. */
  static async create(opts: MonitorOptions): Promise<ResourceMonitor> {
    let helper: Cgwatch | undefined;
    if (opts.cgwatch !== false) {
      let binary = opts.cgwatch;
      if (!binary) {
        if (!opts.docker) throw new LogoMeshError('LM_MONITOR_UNAVAILABLE', 'the monitor needs the engine to build cgwatch, or a cgwatch binary', {});
        binary = await cgwatchBinary(opts.docker, opts.log);
      }
      helper = await Cgwatch.start(binary, opts.log);
    }
    return new ResourceMonitor(opts, helper);
  }

  private route(key: string): void {
    const dot = key.indexOf('.');
    const w = this.watches.get(key.slice(0, dot));
    w?.onEvent(key.slice(dot + 1));
  }

  /** Watch a plugin's container (after each start: a restarted plugin has a new container). Replaces an earlier watch of the plugin. */
  async watch(target: WatchTarget): Promise<void> {
    this.unwatch(target.pluginId);
    const key = `w${++this.serial}`;
    const w = await PluginWatch.start(target, {
      helper: this.helper,
      log: this.opts.log,
      pollMs: this.opts.pollMs ?? 500,
      pidsPollMs: this.opts.pidsPollMs ?? 15,
      privilegedPsi: this.opts.privilegedPsi ?? hasSysResource(),
      connections: this.opts.connections ?? (() => undefined),
      emit: (v) => this.emit('violation', v),
      ended: (pluginId) => this.emit('ended', pluginId),
      proc: this.opts.proc ?? '/proc',
      key,
    });
    this.watches.set(key, w);
    this.wheel.add(w);
    this.slow.add(w);
  }

  private find(pluginId: string): [string, PluginWatch] | undefined {
    for (const [k, w] of this.watches) if (w.pluginId === pluginId) return [k, w];
    return undefined;
  }

  /** Stop watching a plugin (its container exited or was removed). */
  unwatch(pluginId: string): void {
    const found = this.find(pluginId);
    if (!found) return;
    found[1].close();
    this.wheel.remove(found[1]);
    this.slow.remove(found[1]);
    this.watches.delete(found[0]);
  }

  /** Is this plugin watched with the kernel's OOM notification in place (not a poll)? */
  notifiesOom(pluginId: string): boolean {
    return this.find(pluginId)?.[1].notifiesOom ?? false;
  }

  /** The cgwatch helper's process id, while it runs (its CPU is part of the monitor's cost). */
  get helperPid(): number | undefined {
    return this.helper?.pid;
  }

  /** The plugins watched now. */
  watched(): string[] {
    return [...this.watches.values()].map((w) => w.pluginId);
  }

  /** The spec's getCurrentUsage. Throws LM_PLUGIN_NOT_FOUND for a plugin not watched, LM_MONITOR_UNAVAILABLE once its cgroup is gone. */
  getCurrentUsage(pluginId: string): ResourceUsage {
    const found = this.find(pluginId);
    if (!found) throw new LogoMeshError('LM_PLUGIN_NOT_FOUND', `plugin ${pluginId} is not watched by the resource monitor`, { plugin: pluginId, expected: `one of: ${this.watched().join(', ') || 'none'}`, found: pluginId });
    try {
      return found[1].usage();
    } catch (err) {
      throw new LogoMeshError('LM_MONITOR_UNAVAILABLE', `cannot read the cgroup of plugin ${pluginId}: ${(err as Error).message}`, { plugin: pluginId }, { cause: err });
    }
  }

  /** Every watched plugin's usage (those whose cgroup is gone are left out). */
  usages(): ResourceUsage[] {
    const out: ResourceUsage[] = [];
    for (const w of this.watches.values()) {
      try {
        out.push(w.usage());
      } catch {
        // Ended between the list and the read.
      }
    }
    return out;
  }

  /** What `logomesh stats` shows: each watched plugin's usage and processes. */
  stats(): StatsRow[] {
    const out: StatsRow[] = [];
    for (const w of this.watches.values()) {
      try {
        out.push({ usage: w.usage(), processes: w.processes() });
      } catch {
        // Ended between the list and the read.
      }
    }
    return out;
  }

  /** After a live limit change (enforceLimit): alerts and kill rules follow the new limits. */
  async setLimits(pluginId: string, limits: WatchedLimits): Promise<void> {
    await this.find(pluginId)?.[1].setLimits(limits);
  }

  /** Stop every watch and the helper. Idempotent. */
  async close(): Promise<void> {
    this.wheel.clear();
    for (const w of this.watches.values()) {
      w.close();
      this.slow.remove(w);
    }
    this.watches.clear();
    const h = this.helper;
    this.helper = undefined;
    await h?.close();
  }
}
