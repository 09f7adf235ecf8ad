import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeStructured, encodeStructured, frameStructured, unframeStructured, type Format } from '../../src/memory/bridge.js';
import { generateSchema } from '../../src/memory/generate-schema.js';
import { methodSchemaCompiler } from '../../src/manifest/method-schemas.js';
import { fromTagged } from './support/tagged.js';

const VECTORS = JSON.parse(readFileSync(new URL('../vectors/bridge.json', import.meta.url), 'utf8')) as { vectors: { name: string; value: unknown; encoded: Partial<Record<Format, string>> }[] };

describe('the data bridge on the host (test/vectors/bridge.json, the bytes every SDK writes)', () => {
  const cases = VECTORS.vectors.flatMap((v) => Object.entries(v.encoded).map(([fmt, hex]) => ({ name: `${v.name} (${fmt})`, value: fromTagged(v.value), fmt: fmt as Format, hex: hex! })));

  it('has the awkward values in it', () => {
    const names = VECTORS.vectors.map((v) => v.name);
    expect(names).toEqual(expect.arrayContaining(['int64 beyond 2^53', 'NaN and infinities', 'empty map', 'unicode', 'binary', 'nested nulls']));
  });

  it.each(cases)('$name: encodes to exactly the vector bytes and decodes back', ({ value, fmt, hex }) => {
    expect(Buffer.from(encodeStructured(value, fmt)).toString('hex')).toBe(hex);
    expect(decodeStructured(Buffer.from(hex, 'hex'), fmt)).toEqual(value);
  });

  it('refuses, with a code, what a format cannot carry', () => {
    expect(() => encodeStructured(NaN, 'json')).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT' }));
    expect(() => encodeStructured(new Uint8Array(1), 'protobuf')).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT' }));
    expect(() => encodeStructured(2n ** 60n, 'json')).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT' }));
    expect(() => encodeStructured({}, 'yaml' as Format)).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT' }));
  });

  it('frames with the LMSD header and refuses a frame of another format or a short one', () => {
    const framed = frameStructured({ a: [1, 2] }, 'protobuf');
    expect(framed.subarray(0, 4).toString()).toBe('LMSD');
    expect(unframeStructured(Buffer.concat([framed, Buffer.alloc(10)]))).toEqual({ value: { a: [1, 2] }, format: 'protobuf' });
    expect(() => unframeStructured(framed, 'json')).toThrow(expect.objectContaining({ code: 'LM_SEGMENT' }));
    expect(() => unframeStructured(framed.subarray(0, framed.length - 1))).toThrow(expect.objectContaining({ code: 'LM_SEGMENT' }));
    expect(() => unframeStructured(Buffer.alloc(64))).toThrow(expect.objectContaining({ code: 'LM_SEGMENT' }));
  });
});

describe('generateSchema', () => {
  it('writes a schema the sample matches and a different shape does not', () => {
    const sample = { name: 'x', n: 3, ratio: 0.5, tags: ['a', 'b'], nested: { ok: true, none: null }, mixed: [1, 2.5] };
    const schema = generateSchema(sample);
    expect(schema).toMatchObject({ type: 'object', required: ['name', 'n', 'ratio', 'tags', 'nested', 'mixed'], additionalProperties: false, properties: { n: { type: 'integer' }, mixed: { type: 'array', items: { type: 'number' } } } });
    const validate = methodSchemaCompiler().compile(schema);
    expect(validate(sample)).toBe(true);
    expect(validate({ ...sample, n: 'three' })).toBe(false);
    expect(validate({ ...sample, extra: 1 })).toBe(false);
  });
});
