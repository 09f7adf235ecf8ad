import type { Logger } from '../log.js';
import type { Cgwatch } from './cgwatch.js';
import type { CgroupDirs } from './cgroups.js';
import { kernelWatches, type PressureResource } from './kernel-watches.js';
import { psiTrigger } from './policies.js';
import type { EffectiveMonitoring } from './rules.js';
import type { WatchedLimits } from './types.js';

/** Memory thresholds in bytes: alert and its re-arm level, kill. */
export interface MemoryThresholds {
  readonly alert?: number;
  readonly rearm?: number;
  readonly kill?: number;
}

export function memoryThresholds(limits: WatchedLimits, rules: EffectiveMonitoring): MemoryThresholds {
  const limit = limits.memoryBytes;
  const a = rules.alerts;
  const k = rules.killOnExceed.memory;
  const alert = a.memoryPercent !== undefined ? Math.round((a.memoryPercent / 100) * limit) : undefined;
  return {
    ...(alert !== undefined ? { alert, rearm: Math.max(0, alert - Math.round((a.hysteresisPercent / 100) * limit)) } : {}),
    ...(k ? { kill: Math.round((k.percent / 100) * limit) } : {}),
  };
}

export interface PressureWatch {
  readonly resource: PressureResource;
  readonly trigger: string;
  readonly name: string;
  readonly windowMs: number;
  readonly percent: number;
}

/** The PSI triggers the rules ask for, named `psi.<resource>.<alert|kill>`. */
export function pressureWatches(rules: EffectiveMonitoring, privilegedPsi: boolean): PressureWatch[] {
  const out: PressureWatch[] = [];
  for (const [use, rule] of [
    ['alert', rules.alerts.pressure],
    ['kill', rules.killOnExceed.pressure],
  ] as const) {
    if (!rule) continue;
    for (const resource of ['cpu', 'memory', 'io'] as const) {
      const percent = rule[resource];
      if (percent === undefined) continue;
      const t = psiTrigger(percent, rule.windowMs, privilegedPsi);
      out.push({ resource, trigger: t.text, name: `psi.${resource}.${use}`, windowMs: t.windowMs, percent });
    }
  }
  return out;
}

const positive = (xs: (number | undefined)[]): number[] => xs.filter((x): x is number => x !== undefined && x > 0);

/**
 * One watch's kernel notifications through cgwatch (keys `<prefix>.<name>`), and the kinds
 * read at every poll instead because no notification could be set up for them (no helper,
 * a kernel without the interface, or the helper gone).
 */
export class KernelNotifications {
  /** Kinds read at every poll. */
  readonly polled = new Set<'oom' | 'pids' | 'memory'>();
  /** The cgwatch keys in place. */
  private readonly keys = new Set<string>();

  constructor(
    private readonly helper: Cgwatch | undefined,
    private readonly dirs: CgroupDirs,
    private readonly prefix: string,
    private readonly pidsPollMs: number,
    private readonly log: Logger,
    private readonly pluginId: string,
  ) {}

  /** Set up the notifications; what cannot be set up is polled. */
  async arm(thresholds: MemoryThresholds, pressure: readonly PressureWatch[]): Promise<void> {
    const plan = kernelWatches(this.dirs, { thresholds: positive([thresholds.alert, thresholds.rearm, thresholds.kill]), pidsPollMs: this.pidsPollMs, pressure });
    if (plan.pollMemory) this.polled.add('memory');
    const helper = this.helper;
    if (!helper) {
      for (const k of ['oom', 'pids', 'memory'] as const) this.polled.add(k);
      return;
    }
    await Promise.all(
      plan.watches.map((w) =>
        helper.watch(`${this.prefix}.${w.name}`, w.spec).then(
          () => this.keys.add(`${this.prefix}.${w.name}`),
          (err: Error) => {
            this.log.warn({ plugin: this.pluginId, watch: w.name, err: err.message }, 'kernel notification unavailable; polling instead');
            if (w.name === 'oom' || w.name === 'pids') this.polled.add(w.name);
            else if (w.name.startsWith('mem')) this.polled.add('memory');
          },
        ),
      ),
    );
  }

  /** Limits changed live: on cgroup v1 the memory eventfds move to the new thresholds. */
  async rearmMemory(before: MemoryThresholds, after: MemoryThresholds): Promise<void> {
    const helper = this.helper;
    if (!helper || this.dirs.version !== 1 || JSON.stringify(before) === JSON.stringify(after)) return;
    for (const b of new Set(Object.values(before) as number[])) {
      helper.unwatch(`${this.prefix}.mem${b}`);
      this.keys.delete(`${this.prefix}.mem${b}`);
    }
    const plan = kernelWatches(this.dirs, { thresholds: positive(Object.values(after) as number[]), pidsPollMs: this.pidsPollMs, pressure: [] });
    for (const w of plan.watches.filter((x) => x.name.startsWith('mem'))) {
      await helper.watch(`${this.prefix}.${w.name}`, w.spec).then(
        () => this.keys.add(`${this.prefix}.${w.name}`),
        () => this.polled.add('memory'),
      );
    }
  }

  /** The helper died: everything it waited on is polled from now on. */
  pollEverything(): void {
    for (const k of ['oom', 'pids', 'memory'] as const) this.polled.add(k);
    this.keys.clear();
  }

  close(): void {
    for (const k of this.keys) this.helper?.unwatch(k);
    this.keys.clear();
  }
}
