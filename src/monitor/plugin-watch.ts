import type { Logger } from '../log.js';
import type { Cgwatch } from './cgwatch.js';
import { cgroupDirsOf, type CgroupDirs } from './cgroups.js';
import { killCgroup } from './kill.js';
import { killOnExceed, type ExceedState } from './policies.js';
import { PressureCheck } from './pressure-check.js';
import { ProcfsCheck } from './procfs-check.js';
import { NO_RULES, type EffectiveMonitoring } from './rules.js';
import { CgroupSampler, type CgroupSample } from './sampler.js';
import { ThrottleCheck, type Kill } from './throttle-check.js';
import type { ResourceUsage, ResourceViolation, ViolationKind, WatchedLimits } from './types.js';
import { toUsage } from './usage.js';
import { KernelNotifications, memoryThresholds, pressureWatches, type MemoryThresholds, type PressureWatch } from './watch-arming.js';
import { WatchState } from './watch-state.js';

/** What the monitor is told about a plugin to watch. */
export interface WatchTarget {
  readonly pluginId: string;
  /** The container's main process on this host (Docker's State.Pid). */
  readonly pid: number;
  readonly limits: WatchedLimits;
  /** Alerts and kill rules (rules.ts monitoringRules); default: none, only the kernel limits. */
  readonly rules?: EffectiveMonitoring;
}

/** What a PluginWatch gets from its monitor. */
export interface WatchContext {
  readonly helper: Cgwatch | undefined;
  readonly log: Logger;
  readonly pollMs: number;
  readonly pidsPollMs: number;
  readonly privilegedPsi: boolean;
  readonly connections: (pluginId: string) => number | undefined;
  readonly emit: (v: ResourceViolation) => void;
  /** The watched cgroup is gone (the container ended): after any OOM notification of it. */
  readonly ended: (pluginId: string) => void;
  readonly proc: string;
  /** Prefix of this watch's cgwatch keys, unique in the monitor. */
  readonly key: string;
}

/** How long to wait for the OOM killer after an OOM notification before giving up on a kill. */
const OOM_SETTLE_MS = 50;

/**
 * One plugin's container under watch: kernel notifications (watch-arming.ts), polled figures
 * (here, throttle-check.ts, and /proc in procfs-check.ts), pressure triggers (pressure-check.ts); violations through watch-state.ts.
 */
export class PluginWatch {
  readonly dirs: CgroupDirs;
  private readonly sampler: CgroupSampler;
  private readonly rules: EffectiveMonitoring;
  private limits: WatchedLimits;
  private readonly state: WatchState;
  private readonly kernel: KernelNotifications;
  private readonly procfs: ProcfsCheck;
  private exceed: ExceedState = {};
  private exceedTimer: NodeJS.Timeout | undefined;
  private readonly throttling: ThrottleCheck;
  private readonly pressure: PressureCheck;
  private lastOom: number;
  private lastRefused: number;
  private baseline: CgroupSample;
  /** pids.max as last read (at a refused fork, and at each slow poll while a processes alert needs it: it changes only with a live limit change). */
  private pidsMax = Infinity;
  private killed = false;
  private closed = false;

  private constructor(
    readonly target: WatchTarget,
    private readonly ctx: WatchContext,
  ) {
    this.dirs = cgroupDirsOf(target.pid, ctx.proc);
    this.sampler = new CgroupSampler(this.dirs);
    this.rules = target.rules ?? NO_RULES;
    this.limits = target.limits;
    this.state = new WatchState(target.pluginId, ctx.emit);
    this.kernel = new KernelNotifications(ctx.helper, this.dirs, ctx.key, ctx.pidsPollMs, ctx.log, target.pluginId);
    this.procfs = new ProcfsCheck(this.dirs, this.state, ctx.proc, () => this.sampler.pidsCurrent(), target.pid);
    const kill: Kill = (...args) => this.kill(...args);
    this.throttling = new ThrottleCheck(this.state, kill);
    this.pressure = new PressureCheck(this.dirs.unified, this.state, kill);
    this.baseline = this.sampler.sample();
    this.lastOom = this.baseline.oomKills;
    this.lastRefused = this.baseline.pidsRefused;
  }

  static async start(target: WatchTarget, ctx: WatchContext): Promise<PluginWatch> {
    const w = new PluginWatch(target, ctx);
    await w.kernel.arm(w.thresholds(), w.pressureWatches());
    return w;
  }

  get pluginId(): string {
    return this.target.pluginId;
  }

  private thresholds(): MemoryThresholds {
    return memoryThresholds(this.limits, this.rules);
  }

  private pressureWatches(): PressureWatch[] {
    return pressureWatches(this.rules, this.ctx.privilegedPsi);
  }

  /** Does the kernel notify this watch of an OOM kill (an eventfd in place), rather than a poll finding it? */
  get notifiesOom(): boolean {
    return !this.kernel.polled.has('oom');
  }

  /** A cgwatch event for this watch (the key's part after the prefix). */
  onEvent(name: string): void {
    if (this.closed) return;
    try {
      if (name === 'oom') this.checkOom('notification', 0);
      else if (name === 'pids') this.checkPids('notification');
      else if (name.startsWith('mem')) this.checkMemory('notification');
      else if (name.startsWith('psi.')) this.pressure.onTrigger(name, this.pressureWatches());
    } catch (err) {
      this.ended(err);
    }
  }

  private checkOom(source: 'notification' | 'poll', tries: number): void {
    const n = this.sampler.oomKills();
    if (n > this.lastOom) {
      const killed = n - this.lastOom;
      this.lastOom = n;
      const s = this.sampler.sample();
      this.state.violation('oom-kill', 'none', source, s.memoryPeak, this.limits.memoryBytes, 'bytes', `the kernel's OOM killer killed ${killed} process(es) at the memory limit (${n} so far)`);
    } else if (source === 'notification' && tries < OOM_SETTLE_MS) {
      // The notification comes as the OOM starts; the kill follows within microseconds.
      setTimeout(() => this.safely(() => this.checkOom(source, tries + 1)), 1).unref();
    }
  }

  private checkPids(source: 'notification' | 'poll'): void {
    const refused = this.sampler.pidsRefused();
    if (refused <= this.lastRefused) return;
    this.lastRefused = refused;
    const { current, max } = this.sampler.pids();
    this.pidsMax = max;
    if (this.state.isArmed('pids-limit')) {
      this.state.disarm('pids-limit');
      this.state.violation('pids-limit', 'none', source, current, Number.isFinite(max) ? max : this.limits.processes, 'count', `a fork was refused at pids.max (${refused} refused so far)`);
    }
  }

  private checkMemory(source: 'notification' | 'poll'): void {
    const used = this.sampler.memoryUsed();
    const t = this.thresholds();
    const limit = this.limits.memoryBytes;
    if (t.alert !== undefined) {
      const hyst = t.alert - (t.rearm ?? t.alert);
      if (this.state.threshold('memory-threshold', used, t.alert, hyst)) {
        this.state.violation('memory-threshold', 'alert', source, used, t.alert, 'bytes', `memory in use reached ${this.rules.alerts.memoryPercent}% of the ${limit}-byte limit`);
      }
    }
    const rule = this.rules.killOnExceed.memory;
    if (rule && t.kill !== undefined) {
      const now = performance.now();
      const r = killOnExceed(this.exceed, used, t.kill, rule.forMs, now);
      this.exceed = r.state;
      clearTimeout(this.exceedTimer);
      if (r.kill) {
        this.kill('memory-exceeded', source, used, t.kill, 'bytes', `memory in use stayed above ${rule.percent}% of the limit for ${rule.forMs} ms`);
      } else if (r.dueAt !== undefined) {
        // No event comes while the value stays put: look again when the time is up.
        this.exceedTimer = setTimeout(() => this.safely(() => this.checkMemory('poll')), Math.max(1, r.dueAt - now));
        this.exceedTimer.unref();
      }
    }
  }

  /**
   * The periodic read (the monitor's wheel calls it every pollMs): what no notification
   * covers, and the re-arming of once-per-crossing alerts. Only what a rule or a polled kind
   * needs is read: at idle without rules that is the connection count.
   */
  tick(): void {
    this.safely(() => {
      const polled = this.kernel.polled;
      if (polled.has('oom')) this.checkOom('poll', OOM_SETTLE_MS);
      if (polled.has('pids')) this.checkPids('poll');
      if (polled.has('memory') || this.rules.alerts.memoryPercent !== undefined || this.rules.killOnExceed.memory) this.checkMemory('poll');
      this.checkProcesses();
      if (ThrottleCheck.wanted(this.rules)) this.throttling.check(this.rules, this.sampler.cpuStat());
      this.checkConnections();
    });
  }

  /**
   * The slow read (the monitor paces them host-wide: slow-reads.ts): open files and /tmp from
   * /proc, and pids.max while a processes alert needs it (it changes only with a live limit
   * change).
   */
  slowTick(): void {
    this.safely(() => {
      if (this.rules.alerts.processesPercent !== undefined) this.pidsMax = this.sampler.pids().max;
      this.procfs.check(this.limits, this.rules);
    });
  }

  /**
   * pids.current, read only when something needs it: the processes alert, or re-arming the
   * pids-limit report after a refused fork (so it is reported once per crossing).
   */
  private checkProcesses(): void {
    const p = this.rules.alerts.processesPercent;
    const rearming = !this.state.isArmed('pids-limit');
    if (p === undefined && !rearming) return;
    const current = this.sampler.pidsCurrent();
    const limit = Number.isFinite(this.pidsMax) ? this.pidsMax : this.limits.processes;
    const h = this.rules.alerts.hysteresisPercent / 100;
    if (rearming && current < limit * (1 - h)) this.state.arm('pids-limit');
    if (p !== undefined && this.state.threshold('processes', current, (p / 100) * limit, h * limit)) {
      this.state.violation('pids-limit', 'alert', 'poll', current, Math.round((p / 100) * limit), 'count', `processes reached ${p}% of maxProcesses (${limit})`);
    }
  }

  private checkConnections(): void {
    const limit = this.limits.networkConnections;
    if (limit <= 0) return;
    const n = this.ctx.connections(this.pluginId);
    if (n === undefined) return;
    if (this.state.threshold('connection-limit', n, limit, Math.max(1, (this.rules.alerts.hysteresisPercent / 100) * limit))) {
      this.state.violation('connection-limit', 'none', 'poll', n, limit, 'count', `${n} connections open through the egress proxy (maxNetworkConnections ${limit})`);
    }
  }

  private kill(kind: ViolationKind, source: 'notification' | 'poll', value: number, limit: number, unit: ResourceViolation['unit'], detail: string): void {
    if (this.killed) return;
    this.killed = true;
    const how = killCgroup(this.dirs);
    this.state.violation(kind, 'kill', source, value, limit, unit, `${detail}; killed (${how})`);
  }

  /** The spec's ResourceUsage now. CPU percent is over at least the last second (or since the watch began). */
  usage(): ResourceUsage {
    const s = this.sampler.sample();
    const u = toUsage(this.pluginId, this.baseline, s, this.limits, {
      fileHandles: this.procfs.openFiles(),
      networkConnections: this.ctx.connections(this.pluginId) ?? 0,
      violations: this.state.kept,
      timestamp: Date.now(),
    });
    if (s.at - this.baseline.at >= 1000) this.baseline = s;
    return u;
  }

  /** Processes now and their limit (pids.current, pids.max). */
  processes(): { current: number; limit: number } {
    const { current, max } = this.sampler.pids();
    return { current, limit: Number.isFinite(max) ? max : this.limits.processes };
  }

  /** Limits changed live (enforceLimit): thresholds follow them. */
  async setLimits(limits: WatchedLimits): Promise<void> {
    const before = this.thresholds();
    this.limits = limits;
    // A refused fork's re-arm level follows pids.max, read again at the next need.
    this.pidsMax = Infinity;
    await this.kernel.rearmMemory(before, this.thresholds());
  }

  private safely(fn: () => void): void {
    if (this.closed) return;
    try {
      fn();
    } catch (err) {
      this.ended(err);
    }
  }

  /** A read failed: the cgroup is gone (the container ended). Stop quietly; the controller unwatches. */
  private ended(err: unknown): void {
    this.ctx.log.debug({ plugin: this.pluginId, err: (err as Error).message }, 'cgroup gone; watch stopped');
    this.close();
    this.ctx.ended(this.pluginId);
  }

  /** The helper died: read at every poll what it was waiting on. */
  pollEverything(): void {
    this.kernel.pollEverything();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.kernel.close();
    clearTimeout(this.exceedTimer);
    this.sampler.close();
  }
}
