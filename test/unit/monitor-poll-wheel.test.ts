import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PollWheel } from '../../src/monitor/poll-wheel.js';

describe("the monitor's poll wheel", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('ticks every item once a period, a tenth of them at each wake-up with ten phases, never all at once', () => {
    const ticks = new Map<number, number>();
    const perTurn: number[] = [];
    let turn = 0;
    const wheel = new PollWheel<number>(500, (i) => {
      ticks.set(i, (ticks.get(i) ?? 0) + 1);
      perTurn[turn] = (perTurn[turn] ?? 0) + 1;
    }, 10);
    for (let i = 0; i < 200; i++) wheel.add(i);
    for (turn = 0; turn < 40; turn++) vi.advanceTimersByTime(50);
    // Four periods: each item four times.
    expect(new Set(ticks.values())).toEqual(new Set([4]));
    expect(ticks.size).toBe(200);
    expect(Math.max(...perTurn)).toBe(20);
    wheel.clear();
  });

  it('places a new item in the emptiest phase, stops ticking a removed one, and stops its timer when empty', () => {
    const seen: string[] = [];
    const wheel = new PollWheel<string>(100, (s) => seen.push(s), 4);
    wheel.add('a');
    wheel.add('b');
    vi.advanceTimersByTime(100);
    expect(seen.sort()).toEqual(['a', 'b']);
    wheel.remove('a');
    seen.length = 0;
    vi.advanceTimersByTime(200);
    expect(seen).toEqual(['b', 'b']);
    wheel.remove('b');
    expect(wheel.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an item that throws does not stop the others in its phase', () => {
    const seen: number[] = [];
    const wheel = new PollWheel<number>(100, (i) => {
      if (i === 0) throw new Error('gone');
      seen.push(i);
    }, 1);
    wheel.add(0);
    wheel.add(1);
    vi.advanceTimersByTime(100);
    expect(seen).toEqual([1]);
    wheel.clear();
  });
});
