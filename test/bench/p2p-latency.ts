import type { Controller } from '../../src/controller/controller.js';
import { pct, type Row } from './stats.js';

/** Plugin -> hub -> plugin pairs, timed inside the calling plugin. */
const PAIRS = [
  ['caller-node', 'echo-node'],
  ['caller-python', 'echo-python'],
  ['caller-node', 'echo-python'],
] as const;

/**
 * Calls in one turn of a pair; a row has `rounds` x 100 calls, in turns of this many. The
 * first call of a turn wakes processes that sat idle while the other pairs ran (its median
 * 370-600 us against a p50 of 210-330 us on a quiet host), so turns of 100 made one call in
 * a hundred a cold one: the 1% that p99 reads. At 250 the switches are 0.4% of the calls,
 * every pair still timed in turns (docs/performance.md#the-hub).
 */
const TURN = 250;
/** Warm-up calls of each pair: the first few thousand run before the JIT (hub, SDKs) settles. */
const WARM_UP = 4_000;
/**
 * Wait after the plugins started before any pair is timed: the start-up CPU boost of each
 * plugin ends by its hello or 2 s after its start, and the controller's own start-up work
 * (adoption, the monitor's first reads) with it.
 */
const SETTLE_MS = 3_000;

const DATA = { text: 'hello world' };

/**
 * Plugin -> plugin latency in steady state, no pair favoured. Measured one pair after the
 * other, the first pair timed (node -> node) was the slowest in every run that moved it
 * (p99 1.3-8.8 ms first, 0.4-3.1 ms later in the same runs; docs/performance.md#the-hub):
 * so every pair is warmed up before any is timed, and the pairs are timed in turns of TURN
 * calls, each turn of the three starting with the next pair.
 */
export async function p2pLatency(host: Controller, present: ReadonlySet<string>, rounds: number): Promise<Row[]> {
  const pairs = PAIRS.filter(([caller, target]) => present.has(caller) && present.has(target));
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  for (const [caller, target] of pairs) await sequential(host, caller, target, WARM_UP);
  const us: number[][] = pairs.map(() => []);
  const turns = Math.max(1, Math.ceil((rounds * 100) / TURN));
  for (let turn = 0; turn < turns; turn++) {
    for (let k = 0; k < pairs.length; k++) {
      const i = (turn + k) % pairs.length;
      const [caller, target] = pairs[i]!;
      us[i]!.push(...(await sequential(host, caller, target, TURN)));
    }
  }
  return pairs.flatMap(([caller, target], i) => {
    const xs = us[i]!;
    const base = { section: 'latency', subject: 'plugin -> hub -> plugin', baseline: 'raw ws echo, two host processes', baselineValue: NaN, unit: 'us' } as const;
    return [
      { ...base, id: `latency.p2p.${caller}.${target}.p50`, name: `${caller} -> ${target} p50`, value: pct(xs, 50) },
      { ...base, id: `latency.p2p.${caller}.${target}.p99`, name: `${caller} -> ${target} p99`, value: pct(xs, 99), target: '<= 1 ms', met: pct(xs, 99) <= 1000 },
    ];
  });
}

/** `n` calls one after the other from `caller` to `target`'s echo: each call's microseconds, timed in the caller. */
async function sequential(host: Controller, caller: string, target: string, n: number): Promise<number[]> {
  return (await host.call(caller, 'sequential', { target: `${target}.echo`, n, data: DATA }, 120_000)) as number[];
}
