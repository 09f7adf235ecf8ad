import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { schemaValidator } from '../../src/schema-validator.js';

const schema = { type: 'object', additionalProperties: false, properties: { n: { type: 'integer', minimum: 1, default: 3 } } };
const options = { allErrors: true, useDefaults: true, verbose: true, strict: true };

describe('validators compiled once per schema', () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'lm-validators-'));
    dirs.push(d);
    return d;
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('writes the compiled code once and validates the same from it, defaults and errors included', () => {
    const cache = dir();
    const first = schemaValidator('t', schema, options, cache);
    const files = readdirSync(cache);
    expect(files).toEqual([expect.stringMatching(/^t-validator-[0-9a-f]{16}\.cjs$/)]);
    const second = schemaValidator('t', schema, options, cache);
    expect(second).not.toBe(first);
    for (const v of [first, second]) {
      const data: Record<string, unknown> = {};
      expect(v(data)).toBe(true);
      expect(data).toEqual({ n: 3 });
      expect(v({ n: 0, x: 1 })).toBe(false);
      expect(v.errors?.map((e) => [e.keyword, e.instancePath])).toEqual([['additionalProperties', ''], ['minimum', '/n']]);
    }
  });

  it('compiles again when the cached file is damaged, and when the schema changes', () => {
    const cache = dir();
    schemaValidator('t', schema, options, cache);
    const [file] = readdirSync(cache);
    writeFileSync(path.join(cache, file!), 'this is not JavaScript');
    const v = schemaValidator('t', schema, options, cache);
    expect(v({ n: 0 })).toBe(false);
    expect(readFileSync(path.join(cache, file!), 'utf8')).toMatch(/^"use strict"/);
    schemaValidator('t', { ...schema, properties: { n: { type: 'integer', minimum: 2 } } }, options, cache);
    expect(readdirSync(cache)).toHaveLength(2);
  });

  it('works without a cache it can write', () => {
    const cache = path.join(dir(), 'file');
    writeFileSync(cache, '');
    const v = schemaValidator('t', schema, options, cache);
    expect(v({ n: 2 })).toBe(true);
  });
});
