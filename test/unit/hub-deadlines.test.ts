import { describe, expect, it } from 'vitest';
import type { PluginPolicy } from '../../src/hub/acl.js';
import { Deadlines, SLACK_MS, type Timed } from '../../src/hub/deadlines.js';
import { Hub } from '../../src/hub/hub.js';
import { silentLogger } from '../../src/log.js';
import { hubHarness } from './support/hub-harness.js';

/** Call timeouts by one timer over per-timeout lists (src/hub/deadlines.ts), not a timer a call. */

function policy(id: string, exposes: string[], consumes: string[]): PluginPolicy {
  return { id, exposes: new Set(exposes), consumes: new Set(consumes), messaging: true, publishes: [], subscribes: [] };
}

/** Generous: the test host is shared and loaded; the bound the hub states is SLACK_MS plus the event loop's delay. */
const LATE_MS = SLACK_MS + 400;

describe('hub: call timeouts', () => {
  const { connect } = hubHarness('lm-hub-deadline-', async (sock) => {
    const hub = new Hub({ log: silentLogger, token: 't' });
    await hub.attachPlugin(policy('mute', ['wait'], []), sock('mute'));
    await hub.attachPlugin(policy('caller', [], ['mute.wait']), sock('caller'));
    return hub;
  });

  it('fail a call its target leaves unanswered with LM_TIMEOUT at its timeout, a short one after a long one too', async () => {
    await connect('mute', ['wait']);
    const caller = await connect('caller');
    const call = (timeout: number) => {
      const t = performance.now();
      return caller.reply(caller.send({ type: 'request', to: ['mute'], method: 'wait', data: 1, timeout }), timeout + 5_000).then((r) => ({ r, ms: performance.now() - t }));
    };
    // The long call arms the timer for its deadline; the short one, made after it, must not wait for it.
    const long = call(3_000);
    const short = await call(150);
    expect(short.r).toMatchObject({ success: false, error: { code: 'LM_TIMEOUT', message: expect.stringContaining('within 150 ms') } });
    expect(short.ms).toBeGreaterThanOrEqual(149);
    expect(short.ms).toBeLessThan(150 + LATE_MS);
    const second = await call(200);
    expect(second.ms).toBeGreaterThanOrEqual(199);
    expect(second.ms).toBeLessThan(200 + LATE_MS);
    const l = await long;
    expect(l.r).toMatchObject({ success: false, error: { code: 'LM_TIMEOUT' } });
    expect(l.ms).toBeGreaterThanOrEqual(2_999);
    expect(l.ms).toBeLessThan(3_000 + LATE_MS);
  });

  it('do not fail a call that was answered, however many with other timeouts wait beside it', async () => {
    const mute = await connect('mute', ['wait']);
    const answered = new Set<string>();
    // Answers every other call: the rest time out.
    let n = 0;
    mute.serve((m) => (n++ % 2 === 0 ? (answered.add(String(m.data)), m.data) : undefined));
    const caller = await connect('caller');
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => caller.reply(caller.send({ type: 'request', to: ['mute'], method: 'wait', data: i, timeout: 100 + (i % 7) * 30 }), 5_000).then((r) => [i, r] as const)),
    );
    for (const [i, r] of results) {
      if (answered.has(String(i))) expect(r).toMatchObject({ success: true, data: i });
      else expect(r).toMatchObject({ success: false, error: { code: 'LM_TIMEOUT' } });
    }
    expect(answered.size).toBe(20);
  });
});

describe('Deadlines', () => {
  class Item implements Timed {
    deadline = 0;
    prevTimed: Timed | undefined;
    nextTimed: Timed | undefined;
    timedList: Timed['timedList'];
    constructor(readonly n: number) {}
  }

  it('expires each item once, in deadline order within a timeout, never a removed one, and keeps no empty list', async () => {
    const expired: number[] = [];
    const d = new Deadlines<Item>((item) => expired.push(item.n));
    const items = Array.from({ length: 300 }, (_, i) => new Item(i));
    const now = performance.now();
    // Distinct timeouts for some (a caller cycling through them), shared ones for the rest.
    items.forEach((item, i) => d.add(item, i < 100 ? 20 + i : 60, now));
    for (const item of items) if (item.n % 3 === 0) d.remove(item);
    // Removing twice, or an item in no list, is nothing.
    d.remove(items[0]!);
    await new Promise((r) => setTimeout(r, 200 + LATE_MS));
    const expected = items.filter((i) => i.n % 3 !== 0).map((i) => i.n);
    expect([...expired].sort((a, b) => a - b)).toEqual(expected);
    const shared = expired.filter((n) => n >= 100);
    expect(shared).toEqual([...shared].sort((a, b) => a - b));
    expect(d.listCount).toBe(0);
    d.close();
  });

  it('takes every removed item out of its list: none left after they all leave', () => {
    const d = new Deadlines<Item>(() => undefined);
    const items = Array.from({ length: 1000 }, (_, i) => new Item(i));
    items.forEach((item, i) => d.add(item, 1_000 + (i % 37), performance.now()));
    expect(d.listCount).toBe(37);
    // Out of order: the middle, the heads, the tails.
    for (const i of [...items.keys()].sort((a, b) => ((a * 7919) % 1000) - ((b * 7919) % 1000))) d.remove(items[i]!);
    expect(d.listCount).toBe(0);
    for (const item of items) expect(item.timedList).toBeUndefined();
    d.close();
  });
});
