import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { every } from '../../src/ticker.js';

describe('the shared ticker', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('runs every callback of one period in the same timer, and clears it after the last stops', () => {
    const seen: string[] = [];
    const a = every(100, () => seen.push('a'));
    const b = every(100, () => seen.push('b'));
    const c = every(250, () => seen.push('c'));
    expect(vi.getTimerCount()).toBe(2);
    vi.advanceTimersByTime(100);
    expect(seen).toEqual(['a', 'b']);
    vi.advanceTimersByTime(150);
    expect(seen).toEqual(['a', 'b', 'a', 'b', 'c']);
    a.stop();
    a.stop();
    vi.advanceTimersByTime(50);
    expect(seen.slice(5)).toEqual(['b']);
    b.stop();
    c.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('the same function twice is two callbacks; one stopped by an earlier one in the same turn does not run', () => {
    let n = 0;
    const f = () => n++;
    const one = every(100, f);
    const two = every(100, f);
    vi.advanceTimersByTime(100);
    expect(n).toBe(2);
    one.stop();
    let late = 0;
    const stopper = every(100, () => later.stop());
    const later = every(100, () => late++);
    vi.advanceTimersByTime(100);
    expect(late).toBe(0);
    two.stop();
    stopper.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a callback that throws does not stop the others, and its error is thrown on its own', async () => {
    vi.useRealTimers();
    const thrown: unknown[] = [];
    const onError = (err: unknown) => thrown.push(err);
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onError);
    try {
      let ran = 0;
      const bad = every(5, () => {
        throw new Error('boom');
      });
      const good = every(5, () => ran++);
      await new Promise((r) => setTimeout(r, 30));
      bad.stop();
      good.stop();
      expect(ran).toBeGreaterThan(0);
      expect(thrown.length).toBeGreaterThan(0);
      expect((thrown[0] as Error).message).toBe('boom');
    } finally {
      process.off('uncaughtException', onError);
      for (const l of listeners) process.on('uncaughtException', l);
    }
  });
});
