import { describe, expect, it } from 'vitest';
import { SLOW_READS_PER_SECOND, slowReadInterval, slowReadRate, SlowReads } from '../../src/monitor/slow-reads.js';

describe("the monitor's slow /proc reads, paced host-wide", () => {
  it('reads each plugin every 1.5 s up to 60 plugins, then at most 40 a second: 2.5 s at 100, 5 s at 200', () => {
    expect(SLOW_READS_PER_SECOND).toBe(40);
    expect(slowReadInterval(10, 1500)).toBe(1500);
    expect(slowReadInterval(50, 1500)).toBe(1500);
    expect(slowReadInterval(60, 1500)).toBe(1500);
    expect(slowReadInterval(100, 1500)).toBe(2500);
    expect(slowReadInterval(200, 1500)).toBe(5000);
    expect(slowReadRate(10, 1500)).toBeCloseTo(6.67, 2);
    expect(slowReadRate(200, 1500)).toBe(40);
    expect(slowReadRate(0, 1500)).toBe(0);
    // Tests and operators can set their own pace.
    expect(slowReadInterval(200, 200, 1000)).toBe(200);
    expect(slowReadInterval(4, 200, 1)).toBe(4000);
  });

  it('refuses a pace of zero, which would never read', () => {
    expect(() => new SlowReads(1500, 0, () => undefined)).toThrow(RangeError);
    expect(() => new SlowReads(0, 40, () => undefined)).toThrow(RangeError);
  });

  /** Turns every 100 ms (the wheel's wake-ups) for `ms`, with a clock of its own; the times each item was read. */
  function drive(items: number, ms: number, baseMs: number, perSecond: number, turnMs = 100): Map<number, number[]> {
    let t = 0;
    const reads = new Map<number, number[]>();
    const slow = new SlowReads<number>(baseMs, perSecond, (i) => (reads.get(i) ?? reads.set(i, []).get(i)!).push(t), () => t);
    for (let i = 0; i < items; i++) slow.add(i);
    for (; t <= ms; t += turnMs) slow.turn();
    return reads;
  }

  it('at 200 plugins: 40 reads a second, every plugin once per 5 s, evenly spaced', () => {
    const reads = drive(200, 20_000, 1500, 40);
    const all = [...reads.values()].flat();
    expect(all.length).toBeGreaterThanOrEqual(799);
    expect(all.length).toBeLessThanOrEqual(801);
    expect(reads.size).toBe(200);
    for (const times of reads.values()) {
      for (let k = 1; k < times.length; k++) expect(times[k]! - times[k - 1]!).toBe(5000);
    }
    // Never a burst: 4 a turn.
    const perTurn = new Map<number, number>();
    for (const at of all) perTurn.set(at, (perTurn.get(at) ?? 0) + 1);
    expect(Math.max(...perTurn.values())).toBe(4);
  });

  it('at 10 plugins: each every 1.5 s, as without the bound', () => {
    const reads = drive(10, 15_000, 1500, 40);
    expect(reads.size).toBe(10);
    for (const times of reads.values()) {
      expect(times[0]).toBeLessThanOrEqual(1500);
      for (let k = 1; k < times.length; k++) expect(Math.abs(times[k]! - times[k - 1]! - 1500)).toBeLessThanOrEqual(100);
    }
  });

  it('after a stall of the loop, catches up at most a quarter second of reads, not the whole stall', () => {
    let t = 0;
    let n = 0;
    const slow = new SlowReads<number>(1500, 40, () => n++, () => t);
    for (let i = 0; i < 200; i++) slow.add(i);
    slow.turn();
    t = 10_000; // the loop held for 10 s
    slow.turn();
    expect(n).toBe(10);
  });

  it('a plugin removed is not read again, the others keep their order, and one that throws does not stop a turn', () => {
    let t = 0;
    const seen: string[] = [];
    const slow = new SlowReads<string>(300, 1000, (s) => {
      if (s === 'b') throw new Error('gone');
      seen.push(s);
    }, () => t);
    const until = (end: number): void => {
      for (; t <= end; t += 100) slow.turn();
    };
    for (const s of ['a', 'b', 'c']) slow.add(s);
    slow.add('a');
    expect(slow.size).toBe(3);
    until(300);
    expect(seen).toEqual(['a', 'c']);
    slow.remove('a');
    seen.length = 0;
    // Two left: each every 300 ms.
    until(900);
    expect(seen).toEqual(['c', 'c']);
    slow.remove('b');
    slow.remove('c');
    expect(slow.size).toBe(0);
    until(2000);
    expect(seen).toEqual(['c', 'c']);
  });
});
