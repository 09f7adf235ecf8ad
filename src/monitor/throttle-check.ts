import { throttledShare, type ThrottleSample } from './policies.js';
import type { EffectiveMonitoring } from './rules.js';
import type { ResourceViolation, ViolationKind } from './types.js';
import type { WatchState } from './watch-state.js';

export type Kill = (kind: ViolationKind, source: 'notification' | 'poll', value: number, limit: number, unit: ResourceViolation['unit'], detail: string) => void;

/**
 * CPU throttling over a window, from cpu.stat's periods and throttled periods read at each
 * poll (the kernel has no notification for it): an alert once per crossing, or a kill.
 */
export class ThrottleCheck {
  private samples: ThrottleSample[] = [];

  constructor(
    private readonly state: WatchState,
    private readonly kill: Kill,
  ) {}

  /** Is there a rule to check (else cpu.stat is not read at all)? */
  static wanted(rules: EffectiveMonitoring): boolean {
    return rules.alerts.throttling !== undefined || rules.killOnExceed.throttling !== undefined;
  }

  check(rules: EffectiveMonitoring, stat: { periods: number; throttled: number }): void {
    const alert = rules.alerts.throttling;
    const kill = rules.killOnExceed.throttling;
    const next = { at: performance.now(), periods: stat.periods, throttled: stat.throttled };
    const longest = Math.max(alert?.windowMs ?? 0, kill?.windowMs ?? 0);
    this.samples = throttledShare(this.samples, next, longest).samples;
    for (const [rule, action] of [
      [alert, 'alert'],
      [kill, 'kill'],
    ] as const) {
      if (!rule) continue;
      const share = throttledShare(this.samples.slice(0, -1), next, rule.windowMs).percent;
      if (share === undefined) continue;
      const detail = `the CPU quota throttled ${share.toFixed(1)}% of periods over ${rule.windowMs} ms (policy: ${rule.percent}%)`;
      if (action === 'kill' && share > rule.percent) this.kill('cpu-throttled', 'poll', share, rule.percent, 'percent', detail);
      else if (action === 'alert' && this.state.threshold('cpu-throttled', share, rule.percent, rules.alerts.hysteresisPercent)) {
        this.state.violation('cpu-throttled', 'alert', 'poll', share, rule.percent, 'percent', detail);
      }
    }
  }
}
