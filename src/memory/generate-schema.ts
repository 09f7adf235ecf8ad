/** A JSON Schema, as generateSchema writes it. */
export type JsonSchema = Record<string, unknown>;

/**
 * The spec's generateSchema: a JSON Schema that `sample` matches, for an author to start from
 * and tighten (coordination.methodSchemas). Objects require the keys the sample has and allow
 * no others; arrays take the union of their items' schemas; integers are `integer`.
 */
export function generateSchema(sample: unknown): JsonSchema {
  if (sample === null || sample === undefined) return { type: 'null' };
  if (typeof sample === 'boolean') return { type: 'boolean' };
  if (typeof sample === 'number' || typeof sample === 'bigint') return { type: typeof sample === 'bigint' || Number.isInteger(sample) ? 'integer' : 'number' };
  if (typeof sample === 'string') return { type: 'string' };
  if (Array.isArray(sample)) {
    const items = unique(sample.map(generateSchema));
    return items.length === 0 ? { type: 'array' } : { type: 'array', items: items.length === 1 ? items[0]! : { anyOf: items } };
  }
  if (typeof sample === 'object') {
    const o = sample as Record<string, unknown>;
    const keys = Object.keys(o);
    return { type: 'object', properties: Object.fromEntries(keys.map((k) => [k, generateSchema(o[k])])), required: keys, additionalProperties: false };
  }
  return {};
}

function unique(schemas: JsonSchema[]): JsonSchema[] {
  const seen = new Map<string, JsonSchema>();
  for (const s of schemas) seen.set(JSON.stringify(s), s);
  // An integer and a number: number covers both.
  if (seen.has('{"type":"integer"}') && seen.has('{"type":"number"}')) seen.delete('{"type":"integer"}');
  return [...seen.values()];
}
