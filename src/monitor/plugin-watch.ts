import path from 'node:path';
import type { Logger } from '../log.js';
import { pressure as parsePressure, openIfPresent } from './cgroup-file.js';
import type { Cgwatch } from './cgwatch.js';
import { cgroupDirsOf, type CgroupDirs } from './cgroups.js';
import { kernelWatches, type PressureResource } from './kernel-watches.js';
import { killCgroup } from './kill.js';
import { ARMED, alertOnThreshold, killOnExceed, pressureCrossing, psiTrigger, throttledShare, type ExceedState, type PressureState, type ThresholdState, type ThrottleSample } from './policies.js';
import { cgroupPids, fileHandles, tmpUsage } from './procfs.js';
import { NO_RULES, type EffectiveMonitoring } from './rules.js';
import { CgroupSampler, type CgroupSample } from './sampler.js';
import type { ResourceUsage, ResourceViolation, ViolationAction, ViolationKind, WatchedLimits } from './types.js';
import { toUsage } from './usage.js';

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
  readonly slowEvery: number;
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

/** Violations kept per plugin for ResourceUsage.violations. */
const KEPT = 50;
/** How long to wait for the OOM killer after an OOM notification before giving up on a kill. */
const OOM_SETTLE_MS = 50;
/** A /tmp with less than this free is full: the next page written fails. */
const TMP_FULL_SLACK = 64 * 1024;

/** One plugin's container under watch: kernel notifications, polled figures, policies. */
export class PluginWatch {
  readonly dirs: CgroupDirs;
  private readonly sampler: CgroupSampler;
  private readonly rules: EffectiveMonitoring;
  private limits: WatchedLimits;
  private readonly armed = new Map<string, ThresholdState>();
  private exceed: ExceedState = {};
  private exceedTimer: NodeJS.Timeout | undefined;
  private throttleSamples: ThrottleSample[] = [];
  private readonly pressure = new Map<string, PressureState>();
  private lastOom: number;
  private lastRefused: number;
  private baseline: CgroupSample;
  private readonly kept: ResourceViolation[] = [];
  private ticks = 0;
  /** pids.max as last read (at each slow poll: it changes only with a live limit change). */
  private pidsMax = Infinity;
  private killed = false;
  private closed = false;
  /** Kinds read at every poll because no kernel notification could be set up for them. */
  private readonly polled = new Set<'oom' | 'pids' | 'memory'>();
  /** The cgwatch keys in place for this watch. */
  private readonly keys = new Set<string>();

  private constructor(
    readonly target: WatchTarget,
    private readonly ctx: WatchContext,
  ) {
    this.dirs = cgroupDirsOf(target.pid, ctx.proc);
    this.sampler = new CgroupSampler(this.dirs);
    this.rules = target.rules ?? NO_RULES;
    this.limits = target.limits;
    this.baseline = this.sampler.sample();
    this.lastOom = this.baseline.oomKills;
    this.lastRefused = this.baseline.pidsRefused;
  }

  static async start(target: WatchTarget, ctx: WatchContext): Promise<PluginWatch> {
    const w = new PluginWatch(target, ctx);
    await w.arm();
    return w;
  }

  get pluginId(): string {
    return this.target.pluginId;
  }

  /** Memory thresholds in bytes: alert and its re-arm level, kill. */
  private thresholds(): { alert?: number; rearm?: number; kill?: number } {
    const limit = this.limits.memoryBytes;
    const a = this.rules.alerts;
    const k = this.rules.killOnExceed.memory;
    const alert = a.memoryPercent !== undefined ? Math.round((a.memoryPercent / 100) * limit) : undefined;
    return {
      ...(alert !== undefined ? { alert, rearm: Math.max(0, alert - Math.round((a.hysteresisPercent / 100) * limit)) } : {}),
      ...(k ? { kill: Math.round((k.percent / 100) * limit) } : {}),
    };
  }

  private pressureWatches(): { resource: PressureResource; trigger: string; name: string; windowMs: number; percent: number }[] {
    const out: { resource: PressureResource; trigger: string; name: string; windowMs: number; percent: number }[] = [];
    for (const [use, rule] of [
      ['alert', this.rules.alerts.pressure],
      ['kill', this.rules.killOnExceed.pressure],
    ] as const) {
      if (!rule) continue;
      for (const resource of ['cpu', 'memory', 'io'] as const) {
        const percent = rule[resource];
        if (percent === undefined) continue;
        const t = psiTrigger(percent, rule.windowMs, this.ctx.privilegedPsi);
        out.push({ resource, trigger: t.text, name: `psi.${resource}.${use}`, windowMs: t.windowMs, percent });
      }
    }
    return out;
  }

  /** Set up the kernel notifications; what cannot be set up is read at every poll instead. */
  private async arm(): Promise<void> {
    const t = this.thresholds();
    const plan = kernelWatches(this.dirs, {
      thresholds: [t.alert, t.rearm, t.kill].filter((x): x is number => x !== undefined && x > 0),
      pidsPollMs: this.ctx.pidsPollMs,
      pressure: this.pressureWatches(),
    });
    if (plan.pollMemory) this.polled.add('memory');
    const helper = this.ctx.helper;
    if (!helper) {
      for (const k of ['oom', 'pids', 'memory'] as const) this.polled.add(k);
      return;
    }
    await Promise.all(
      plan.watches.map((w) =>
        helper.watch(`${this.ctx.key}.${w.name}`, w.spec).then(() => this.keys.add(`${this.ctx.key}.${w.name}`), (err: Error) => {
          this.ctx.log.warn({ plugin: this.pluginId, watch: w.name, err: err.message }, 'kernel notification unavailable; polling instead');
          if (w.name === 'oom' || w.name === 'pids') this.polled.add(w.name);
          else if (w.name.startsWith('mem')) this.polled.add('memory');
        }),
      ),
    );
  }

  /** Does the kernel notify this watch of an OOM kill (an eventfd in place), rather than a poll finding it? */
  get notifiesOom(): boolean {
    return !this.polled.has('oom');
  }

  /** A cgwatch event for this watch (the key's part after the prefix). */
  onEvent(name: string): void {
    if (this.closed) return;
    try {
      if (name === 'oom') this.checkOom('notification', 0);
      else if (name === 'pids') this.checkPids('notification');
      else if (name.startsWith('mem')) this.checkMemory('notification');
      else if (name.startsWith('psi.')) this.onPressure(name);
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
      this.violation('oom-kill', 'none', source, s.memoryPeak, this.limits.memoryBytes, 'bytes', `the kernel's OOM killer killed ${killed} process(es) at the memory limit (${n} so far)`);
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
    if (this.isArmed('pids-limit')) {
      this.disarm('pids-limit');
      this.violation('pids-limit', 'none', source, current, Number.isFinite(max) ? max : this.limits.processes, 'count', `a fork was refused at pids.max (${refused} refused so far)`);
    }
  }

  private checkMemory(source: 'notification' | 'poll'): void {
    const used = this.sampler.memoryUsed();
    const t = this.thresholds();
    const limit = this.limits.memoryBytes;
    if (t.alert !== undefined) {
      const hyst = t.alert - (t.rearm ?? t.alert);
      if (this.threshold('memory-threshold', used, t.alert, hyst)) {
        this.violation('memory-threshold', 'alert', source, used, t.alert, 'bytes', `memory in use reached ${this.rules.alerts.memoryPercent}% of the ${limit}-byte limit`);
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

  private onPressure(name: string): void {
    const [, resource, use] = name.split('.') as [string, PressureResource, 'alert' | 'kill'];
    const w = this.pressureWatches().find((p) => p.name === name);
    if (!w) return;
    const file = openIfPresent(path.join(this.dirs.unified ?? '', `${resource}.pressure`));
    const avg10 = file ? parsePressure(file.read()).some.avg10 : w.percent;
    file?.close();
    const detail = `${resource} pressure: some tasks stalled more than ${w.percent}% of a ${w.windowMs} ms window (avg10 ${avg10}%)`;
    if (use === 'kill') {
      this.kill('pressure', 'notification', avg10, w.percent, 'percent', detail);
      return;
    }
    const r = pressureCrossing(this.pressure.get(name) ?? {}, performance.now(), w.windowMs);
    this.pressure.set(name, r.state);
    if (r.fire) this.violation('pressure', 'alert', 'notification', avg10, w.percent, 'percent', detail);
  }

  /** The periodic read (the monitor calls it every pollMs): what no notification covers, and the re-arming of once-per-crossing alerts. */
  tick(): void {
    this.safely(() => {
      this.ticks++;
      if (this.polled.has('oom')) this.checkOom('poll', OOM_SETTLE_MS);
      if (this.polled.has('pids')) this.checkPids('poll');
      if (this.polled.has('memory') || this.rules.alerts.memoryPercent !== undefined || this.rules.killOnExceed.memory) this.checkMemory('poll');
      const slow = this.ticks % this.ctx.slowEvery === 0;
      if (slow) this.pidsMax = this.sampler.pids().max;
      this.checkProcesses();
      this.checkThrottling();
      this.checkConnections();
      if (slow) this.checkProcfs();
    });
  }

  private checkProcesses(): void {
    const current = this.sampler.pidsCurrent();
    const limit = Number.isFinite(this.pidsMax) ? this.pidsMax : this.limits.processes;
    const h = this.rules.alerts.hysteresisPercent / 100;
    if (!this.isArmed('pids-limit') && current < limit * (1 - h)) this.armed.set('pids-limit', ARMED);
    const p = this.rules.alerts.processesPercent;
    if (p !== undefined && this.threshold('processes', current, (p / 100) * limit, h * limit)) {
      this.violation('pids-limit', 'alert', 'poll', current, Math.round((p / 100) * limit), 'count', `processes reached ${p}% of maxProcesses (${limit})`);
    }
  }

  private checkThrottling(): void {
    const alert = this.rules.alerts.throttling;
    const kill = this.rules.killOnExceed.throttling;
    if (!alert && !kill) return;
    const { periods, throttled } = this.sampler.cpuStat();
    const next = { at: performance.now(), periods, throttled };
    const longest = Math.max(alert?.windowMs ?? 0, kill?.windowMs ?? 0);
    this.throttleSamples = throttledShare(this.throttleSamples, next, longest).samples;
    for (const [rule, action] of [
      [alert, 'alert'],
      [kill, 'kill'],
    ] as const) {
      if (!rule) continue;
      const share = throttledShare(this.throttleSamples.slice(0, -1), next, rule.windowMs).percent;
      if (share === undefined) continue;
      const detail = `the CPU quota throttled ${share.toFixed(1)}% of periods over ${rule.windowMs} ms (policy: ${rule.percent}%)`;
      if (action === 'kill' && share > rule.percent) this.kill('cpu-throttled', 'poll', share, rule.percent, 'percent', detail);
      else if (action === 'alert' && this.threshold('cpu-throttled', share, rule.percent, this.rules.alerts.hysteresisPercent)) {
        this.violation('cpu-throttled', 'alert', 'poll', share, rule.percent, 'percent', detail);
      }
    }
  }

  private checkConnections(): void {
    const limit = this.limits.networkConnections;
    const n = this.ctx.connections(this.pluginId);
    if (n === undefined || limit <= 0) return;
    if (this.threshold('connection-limit', n, limit, Math.max(1, (this.rules.alerts.hysteresisPercent / 100) * limit))) {
      this.violation('connection-limit', 'none', 'poll', n, limit, 'count', `${n} connections open through the egress proxy (maxNetworkConnections ${limit})`);
    }
  }

  /** Open files and /tmp: read from /proc, every slowEvery polls (a readdir per process). */
  private checkProcfs(): void {
    const h = this.rules.alerts.hysteresisPercent / 100;
    const pids = cgroupPids(this.dirs.pids ?? this.dirs.memory ?? this.dirs.unified ?? '');
    const fh = fileHandles(pids, this.ctx.proc);
    const fl = this.limits.fileHandles;
    if (this.threshold('file-handles', fh.most, fl, Math.max(1, h * fl))) {
      this.violation('file-handles', 'none', 'poll', fh.most, fl, 'count', `process ${fh.pid} holds ${fh.most} open files, its maxFileHandles`);
    }
    const fp = this.rules.alerts.fileHandlesPercent;
    if (fp !== undefined && this.threshold('file-handles-alert', fh.most, (fp / 100) * fl, h * fl)) {
      this.violation('file-handles', 'alert', 'poll', fh.most, Math.round((fp / 100) * fl), 'count', `process ${fh.pid} holds ${fh.most} open files, ${fp}% of maxFileHandles`);
    }
    const tmp = pids.length > 0 ? tmpUsage(pids[0]!, this.ctx.proc) : undefined;
    if (!tmp || tmp.size === 0) return;
    if (this.threshold('tmp-full', tmp.used, tmp.size - TMP_FULL_SLACK, h * tmp.size)) {
      this.violation('tmp-full', 'none', 'poll', tmp.used, tmp.size, 'bytes', `/tmp is full (${tmp.used} of ${tmp.size} bytes)`);
    }
    const tp = this.rules.alerts.tmpPercent;
    if (tp !== undefined && this.threshold('tmp-alert', tmp.used, (tp / 100) * tmp.size, h * tmp.size)) {
      this.violation('tmp-full', 'alert', 'poll', tmp.used, Math.round((tp / 100) * tmp.size), 'bytes', `/tmp is ${tp}% full`);
    }
  }

  private isArmed(name: string): boolean {
    return (this.armed.get(name) ?? ARMED).armed;
  }

  private disarm(name: string): void {
    this.armed.set(name, { armed: false });
  }

  private threshold(name: string, value: number, level: number, hysteresis: number): boolean {
    const r = alertOnThreshold(this.armed.get(name) ?? ARMED, value, level, hysteresis);
    this.armed.set(name, r.state);
    return r.fire;
  }

  private kill(kind: ViolationKind, source: 'notification' | 'poll', value: number, limit: number, unit: ResourceViolation['unit'], detail: string): void {
    if (this.killed) return;
    this.killed = true;
    const how = killCgroup(this.dirs);
    this.violation(kind, 'kill', source, value, limit, unit, `${detail}; killed (${how})`);
  }

  private violation(kind: ViolationKind, action: ViolationAction, source: 'notification' | 'poll', value: number, limit: number, unit: ResourceViolation['unit'], detail: string): void {
    const v: ResourceViolation = Object.freeze({ kind, plugin: this.pluginId, value: Math.round(value * 100) / 100, limit, unit, time: Date.now(), action, source, detail });
    this.kept.push(v);
    if (this.kept.length > KEPT) this.kept.shift();
    this.ctx.emit(v);
  }

  /** The spec's ResourceUsage now. CPU percent is over at least the last second (or since the watch began). */
  usage(): ResourceUsage {
    const s = this.sampler.sample();
    const pids = cgroupPids(this.dirs.pids ?? this.dirs.memory ?? this.dirs.unified ?? '');
    const u = toUsage(this.pluginId, this.baseline, s, this.limits, {
      fileHandles: fileHandles(pids, this.ctx.proc).total,
      networkConnections: this.ctx.connections(this.pluginId) ?? 0,
      violations: this.kept,
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
    const after = this.thresholds();
    const helper = this.ctx.helper;
    if (!helper || this.dirs.version !== 1 || JSON.stringify(before) === JSON.stringify(after)) return;
    for (const b of new Set(Object.values(before))) {
      helper.unwatch(`${this.ctx.key}.mem${b}`);
      this.keys.delete(`${this.ctx.key}.mem${b}`);
    }
    const plan = kernelWatches(this.dirs, { thresholds: Object.values(after).filter((x) => x > 0), pidsPollMs: this.ctx.pidsPollMs, pressure: [] });
    for (const w of plan.watches.filter((x) => x.name.startsWith('mem'))) {
      await helper.watch(`${this.ctx.key}.${w.name}`, w.spec).then(
        () => this.keys.add(`${this.ctx.key}.${w.name}`),
        () => this.polled.add('memory'),
      );
    }
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
    for (const k of ['oom', 'pids', 'memory'] as const) this.polled.add(k);
    this.keys.clear();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const k of this.keys) this.ctx.helper?.unwatch(k);
    this.keys.clear();
    clearTimeout(this.exceedTimer);
    this.sampler.close();
  }
}
