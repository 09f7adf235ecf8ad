/**
 * The tags of test/vectors/bridge.json, to and from JavaScript values: `{"$int": "<decimal>"}`
 * (a number if it is safe, else a BigInt), `{"$float": "NaN"|"Infinity"|"-Infinity"}`,
 * `{"$bytes": "<hex>"}` (a Uint8Array).
 */
export function fromTagged(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromTagged);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && typeof o.$int === 'string') {
      const n = BigInt(o.$int);
      return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(n) : n;
    }
    if (keys.length === 1 && typeof o.$float === 'string') return Number(o.$float);
    if (keys.length === 1 && typeof o.$bytes === 'string') return new Uint8Array(Buffer.from(o.$bytes, 'hex'));
    return Object.fromEntries(keys.map((k) => [k, fromTagged(o[k])]));
  }
  return v;
}
