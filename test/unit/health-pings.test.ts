import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HealthPings } from '../../src/controller/health-pings.js';

describe("the supervisor's health pings on one timer", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('pings each plugin every interval, at most one turn late, with one timer for all of them', () => {
    const pings = new HealthPings<string>(250);
    const at: Record<string, number[]> = { a: [], b: [] };
    const t0 = performance.now();
    pings.add('a', 5_000, () => at.a!.push(performance.now() - t0));
    vi.advanceTimersByTime(1_000);
    pings.add('b', 2_000, () => at.b!.push(performance.now() - t0));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(20_000);
    expect(at.a).toHaveLength(4);
    expect(at.b).toHaveLength(10);
    at.a!.forEach((t, i) => {
      expect(t).toBeGreaterThanOrEqual((i + 1) * 5_000);
      expect(t).toBeLessThanOrEqual((i + 1) * 5_000 + 250);
    });
    at.b!.forEach((t, i) => {
      expect(t).toBeGreaterThanOrEqual(1_000 + (i + 1) * 2_000);
      expect(t).toBeLessThanOrEqual(1_000 + (i + 1) * 2_000 + 250);
    });
    pings.remove('a');
    pings.remove('b');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stops pinging a removed plugin at once; a stalled loop does not make a burst of pings to catch up', () => {
    let stalled = 0;
    const pings = new HealthPings<string>(250, () => performance.now() + stalled);
    let n = 0;
    pings.add('a', 1_000, () => n++);
    vi.advanceTimersByTime(1_250);
    expect(n).toBe(1);
    // Ten intervals pass in one turn (the event loop was held): one ping, then the interval again.
    stalled = 10_000;
    vi.advanceTimersByTime(250);
    expect(n).toBe(2);
    vi.advanceTimersByTime(250);
    expect(n).toBe(2);
    pings.remove('a');
    vi.advanceTimersByTime(5_000);
    expect(n).toBe(2);
  });
});
