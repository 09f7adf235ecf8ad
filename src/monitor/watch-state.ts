import { ARMED, alertOnThreshold, type ThresholdState } from './policies.js';
import type { ResourceViolation, ViolationAction, ViolationKind } from './types.js';

/** Violations kept per plugin for ResourceUsage.violations. */
const KEPT = 50;

/**
 * One plugin's violations and once-per-crossing states: which thresholds are armed, the
 * violations kept for ResourceUsage, and emitting each new one. The watch's checks (its own,
 * procfs-check.ts) all report through it.
 */
export class WatchState {
  private readonly armed = new Map<string, ThresholdState>();
  readonly kept: ResourceViolation[] = [];

  constructor(
    readonly pluginId: string,
    private readonly emit: (v: ResourceViolation) => void,
  ) {}

  isArmed(name: string): boolean {
    return (this.armed.get(name) ?? ARMED).armed;
  }

  arm(name: string): void {
    this.armed.set(name, ARMED);
  }

  disarm(name: string): void {
    this.armed.set(name, { armed: false });
  }

  /** alertOnThreshold for the named threshold: true when this value fires it. */
  threshold(name: string, value: number, level: number, hysteresis: number): boolean {
    const r = alertOnThreshold(this.armed.get(name) ?? ARMED, value, level, hysteresis);
    this.armed.set(name, r.state);
    return r.fire;
  }

  violation(kind: ViolationKind, action: ViolationAction, source: 'notification' | 'poll', value: number, limit: number, unit: ResourceViolation['unit'], detail: string): void {
    const v: ResourceViolation = Object.freeze({ kind, plugin: this.pluginId, value: Math.round(value * 100) / 100, limit, unit, time: Date.now(), action, source, detail });
    this.kept.push(v);
    if (this.kept.length > KEPT) this.kept.shift();
    this.emit(v);
  }
}
