import { describe, expect, it } from 'vitest';
import { loadManifest } from '../../src/manifest/index.js';
import { checkLimitChange } from '../../src/monitor/enforce-limit.js';
import { ARMED, alertOnThreshold, killOnExceed, pressureCrossing, psiTrigger, throttledShare, type ThresholdState, type ThrottleSample } from '../../src/monitor/policies.js';
import { monitoringRules } from '../../src/monitor/rules.js';
import { NO_POLICY, type Policy } from '../../src/policy/policy.js';
import { writePlugin } from './support/plugin.js';

describe('alertOnThreshold: once per crossing, with hysteresis', () => {
  it('fires once while the value stays up, and again only after it fell below the hysteresis band', () => {
    const values = [10, 79, 80, 95, 80, 75, 71, 79, 85, 69, 81];
    let state: ThresholdState = ARMED;
    const fired: number[] = [];
    for (const v of values) {
      const r = alertOnThreshold(state, v, 80, 10);
      state = r.state;
      if (r.fire) fired.push(v);
    }
    // 80 fires; 95..71 stay quiet (71 is not below 70); 69 re-arms; 81 fires again.
    expect(fired).toEqual([80, 81]);
  });
});

describe('killOnExceed: above the limit for forMs', () => {
  it('kills only after the value stayed above for the whole time, and a dip resets the clock', () => {
    let s = killOnExceed({}, 90, 80, 1000, 0);
    expect(s).toMatchObject({ kill: false, dueAt: 1000 });
    s = killOnExceed(s.state, 95, 80, 1000, 600);
    expect(s.kill).toBe(false);
    s = killOnExceed(s.state, 70, 80, 1000, 900);
    expect(s).toEqual({ state: {}, kill: false });
    s = killOnExceed(s.state, 90, 80, 1000, 1000);
    expect(s.dueAt).toBe(2000);
    expect(killOnExceed(s.state, 90, 80, 1000, 2000).kill).toBe(true);
  });

  it('with forMs 0, kills at the first value above', () => {
    expect(killOnExceed({}, 81, 80, 0, 5).kill).toBe(true);
    expect(killOnExceed({}, 80, 80, 0, 5).kill).toBe(false);
  });
});

describe('throttledShare: throttled periods over a window', () => {
  it('says nothing until the samples cover the window, then the share in it', () => {
    const at = (t: number, periods: number, throttled: number): ThrottleSample => ({ at: t, periods, throttled });
    let r = throttledShare([], at(0, 0, 0), 1000);
    expect(r.percent).toBeUndefined();
    r = throttledShare(r.samples, at(500, 5, 5), 1000);
    expect(r.percent).toBeUndefined();
    r = throttledShare(r.samples, at(1000, 10, 8), 1000);
    expect(r.percent).toBe(80);
    r = throttledShare(r.samples, at(1500, 15, 8), 1000);
    // From the sample at 500: 10 periods, 3 throttled.
    expect(r.percent).toBe(30);
    expect(r.samples.map((s) => s.at)).toEqual([500, 1000, 1500]);
  });
});

describe('PSI triggers', () => {
  it('writes the stall share of the window in microseconds', () => {
    expect(psiTrigger(20, 1000, true)).toEqual({ text: 'some 200000 1000000', windowMs: 1000 });
    expect(psiTrigger(50, 100, true)).toEqual({ text: 'some 250000 500000', windowMs: 500 });
  });

  it('rounds the window up to a multiple of 2 s without CAP_SYS_RESOURCE', () => {
    expect(psiTrigger(20, 1000, false)).toEqual({ text: 'some 400000 2000000', windowMs: 2000 });
    expect(psiTrigger(10, 9000, false)).toEqual({ text: 'some 1000000 10000000', windowMs: 10000 });
  });

  it('reports a run of firings less than three windows apart once', () => {
    let s = pressureCrossing({}, 0, 2000);
    expect(s.fire).toBe(true);
    s = pressureCrossing(s.state, 2000, 2000);
    expect(s.fire).toBe(false);
    // A firing delivered late, 5 s after the last: the same crossing.
    s = pressureCrossing(s.state, 7000, 2000);
    expect(s.fire).toBe(false);
    expect(pressureCrossing(s.state, 13001, 2000).fire).toBe(true);
  });
});

describe('monitoring rules: the manifest, made stricter by the policy', () => {
  const manifest = (monitoring: string) =>
    loadManifest(writePlugin(`id: watched\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\nmonitoring:\n${monitoring}`)).manifest.monitoring;
  const policy = (p: Partial<Policy>): Policy => ({ ...NO_POLICY, file: '/etc/lm/policy.yaml', ...p });

  it('fills the defaults: no alerts, no kill rules, 10 points of hysteresis', () => {
    const m = loadManifest(writePlugin('id: plain\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\n')).manifest.monitoring;
    expect(m).toEqual({ alerts: { hysteresisPercent: 10 }, killOnExceed: {} });
    expect(monitoringRules(m, NO_POLICY, 'plain')).toEqual({ alerts: { hysteresisPercent: 10 }, killOnExceed: {}, fromPolicy: [] });
  });

  it('takes the lower percent of the two, and the policy window', () => {
    const m = manifest('  alerts:\n    memoryPercent: 90\n    throttling: { percent: 80 }\n  killOnExceed:\n    memory: { percent: 95, forMs: 5000 }\n');
    const p = policy({ monitoring: { alerts: { memoryPercent: 70, throttling: { percent: 90, windowMs: 3000 } }, killOnExceed: { memory: { percent: 99, forMs: 100 } } } });
    const r = monitoringRules(m, p, 'watched');
    expect(r.alerts).toEqual({ memoryPercent: 70, hysteresisPercent: 10, throttling: { percent: 80, windowMs: 3000 } });
    expect(r.killOnExceed).toEqual({ memory: { percent: 95, forMs: 100 } });
    expect(r.fromPolicy).toEqual(['/etc/lm/policy.yaml /monitoring/alerts/memoryPercent', '/etc/lm/policy.yaml /monitoring/alerts/throttling', '/etc/lm/policy.yaml /monitoring/killOnExceed/memory']);
  });

  it('adds what only the policy sets, and a plugin override replaces the policy-wide section', () => {
    const m = manifest('  alerts: {}\n');
    const p = policy({
      monitoring: { killOnExceed: { pressure: { memory: 60 } } },
      plugins: { watched: { monitoring: { alerts: { tmpPercent: 50 } } } },
    });
    expect(monitoringRules(m, p, 'watched')).toMatchObject({ alerts: { tmpPercent: 50 }, killOnExceed: {} });
    expect(monitoringRules(m, p, 'other')).toMatchObject({ killOnExceed: { pressure: { memory: 60, windowMs: 2000 } } });
  });

  it('refuses a bad monitoring section with the field and what was expected', () => {
    expect(() => manifest('  alerts:\n    memoryPercent: 150\n')).toThrow(/\/monitoring\/alerts\/memoryPercent: expected .*100/);
    expect(() => manifest('  killOnExceed:\n    memory: { forMs: 10 }\n')).toThrow(/\/monitoring\/killOnExceed\/memory/);
    expect(() => manifest('  alerts:\n    pressure: { windowMs: 2000 }\n')).toThrow(/\/monitoring\/alerts\/pressure/);
  });
});

describe('checkLimitChange', () => {
  it('accepts values within the manifest bounds', () => {
    expect(() => checkLimitChange({ memoryMB: 128, cpuPercent: 50, processes: 64 })).not.toThrow();
  });

  it.each([
    [{}, /names no limit/],
    [{ memoryMB: 8 }, /memoryMB: expected an integer from 16 to 65536, found 8/],
    [{ cpuPercent: 2.5 }, /cpuPercent: expected an integer from 1 to 800/],
    [{ swapMB: 1 }, /unknown limit 'swapMB'/],
  ])('refuses %j with LM_LIMIT_INVALID', (change, message) => {
    expect(() => checkLimitChange(change as never)).toThrow(message);
    try {
      checkLimitChange(change as never);
    } catch (err) {
      expect((err as { code: string }).code).toBe('LM_LIMIT_INVALID');
    }
  });
});
