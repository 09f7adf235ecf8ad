import { describe, expect, it } from 'vitest';
import { fullDepth as reference, valueDepth } from '../../src/hub/codec.js';

// `reference`: the walk valueDepth always did (a stack of pairs and a set of the objects seen),
// what its small walk must still return.

function nested(depth: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { v };
  return v;
}

/** A random tree of objects and arrays (seeded), up to `objects` of them. */
function randomValue(seed: number, objects: number): unknown {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let left = objects;
  const make = (d: number): unknown => {
    if (left <= 0 || d > 12 || rnd() < 0.3) return rnd() < 0.5 ? 'x' : null;
    left--;
    const n = Math.floor(rnd() * 4);
    return rnd() < 0.5 ? Array.from({ length: n }, () => make(d + 1)) : Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, make(d + 1)]));
  };
  return make(1);
}

describe('valueDepth: the small values walked without allocating, the result as before', () => {
  it("gives the full walk's depth for primitives, small and large trees, deep values and cycles", () => {
    const cyclic: Record<string, unknown> = { a: [1] };
    cyclic.self = cyclic;
    const shared = { leaf: { x: 1 } };
    const cases: unknown[] = [
      undefined, null, 1, 'text', [], {}, { text: 'hello world' }, [[[]]], nested(10), nested(63), nested(64), nested(65), nested(200),
      cyclic, [cyclic], { a: shared, b: shared }, Array.from({ length: 100 }, () => ({ x: [1] })), Object.create({ inherited: { deep: { er: 1 } } }),
    ];
    for (let seed = 1; seed < 300; seed++) cases.push(randomValue(seed, seed % 150));
    for (const v of cases) for (const limit of [3, 63]) expect(valueDepth(v, limit)).toBe(reference(v, limit));
  });

  it('does not walk a value of many shared references once per path', () => {
    // 40 levels, each one array holding the level below twice: 2^40 paths, 40 objects.
    let v: unknown = { end: true };
    for (let i = 0; i < 40; i++) v = [v, v];
    expect(valueDepth(v, 63)).toBe(Infinity); // seen twice: what the full walk has always called a cycle
    expect(valueDepth(v, 63)).toBe(reference(v, 63));
  });
});
