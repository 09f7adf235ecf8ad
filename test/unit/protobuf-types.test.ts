import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ManifestRejectedError } from '../../src/errors.js';
import { loadManifest } from '../../src/manifest/index.js';
import { protobufTypesOf } from '../../src/manifest/protobuf.js';
import { decodeStructured, encodeStructured, frameStructured, unframeStructured } from '../../src/memory/bridge.js';
import { MAX_DESCRIPTOR_SET_BYTES, ProtobufTypes } from '../../src/protobuf/types.js';
import { dedent, MAIN_PY, PluginFolders, symlink } from './support/plugin-folder.js';

const VECTORS = new URL('../vectors/', import.meta.url);
const DOC = JSON.parse(readFileSync(new URL('protobuf-types.json', VECTORS), 'utf8')) as {
  descriptorSet: string;
  vectors: { name: string; type: string; value: unknown; decoded: unknown; protobuf: string }[];
  invalid: { name: string; type: string; value: unknown; error: string }[];
};
const SET = readFileSync(new URL(DOC.descriptorSet, VECTORS));
const types = ProtobufTypes.fromBinary(SET);
const SAMPLE = 'logomesh.vectors.v1.Sample';

function varint(n: number): number[] {
  const out: number[] = [];
  for (; n > 127; n = Math.floor(n / 128)) out.push((n & 127) | 128);
  return [...out, n];
}

describe('declared protobuf message types on the host (test/vectors/protobuf-types.json)', () => {
  it('has the awkward values: int64 past 2^53, nested, repeated, enums, oneof, a map, unicode, bytes, defaults', () => {
    const all = JSON.stringify(DOC.vectors.map((v) => v.value));
    for (const s of ['9007199254740993', '"origin"', '"path"', 'COLOR_GREEN', '"label"', '"totals"', '日本語', '"blob"']) expect(all).toContain(s);
    expect(DOC.vectors.find((v) => v.name.startsWith('default values'))?.protobuf).toBe('');
  });

  it.each(DOC.vectors)('$name: encodes to exactly the vector bytes and decodes to proto3 JSON', ({ type, value, decoded, protobuf }) => {
    expect(Buffer.from(types.encode(type, value)).toString('hex')).toBe(protobuf);
    expect(types.decode(type, Buffer.from(protobuf, 'hex'))).toEqual(decoded);
  });

  it.each(DOC.invalid)('$name: LM_INVALID_ARGUMENT naming the type, the path, expected and found', ({ type, value, error }) => {
    expect(() => types.encode(type, value)).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT', message: error }));
  });

  const protoc = ((): boolean => {
    try {
      execFileSync('protoc', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!protoc)('types.pb is what protoc builds from types.proto (build.sh)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-protoc-'));
    try {
      const out = path.join(dir, 'types.pb');
      execFileSync('protoc', ['--include_imports', `--descriptor_set_out=${out}`, 'types.proto'], { cwd: fileURLToPath(new URL('protobuf/', VECTORS)) });
      expect(readFileSync(out).equals(SET)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists its message types, not map entries', () => {
    expect(types.messageNames()).toEqual(['logomesh.vectors.v1.Point', 'logomesh.vectors.v1.Sample']);
  });

  it('goes through the segment header as format protobuf; without a type, protobuf stays a google.protobuf.Value', () => {
    const message = { type: SAMPLE, types };
    const framed = frameStructured({ big: '9007199254740993', origin: { x: 1 } }, 'protobuf', message);
    expect(framed.readUInt8(5)).toBe(3);
    expect(unframeStructured(framed, 'protobuf', message)).toEqual({ value: { big: '9007199254740993', origin: { x: 1 } }, format: 'protobuf' });
    expect(decodeStructured(encodeStructured({ a: 1 }, 'protobuf'), 'protobuf')).toEqual({ a: 1 });
    expect(() => encodeStructured({}, 'json', message)).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT' }));
  });

  it('refuses, with a code, an unknown type, bytes that are not the message, and a descriptor set that is not one', () => {
    expect(() => types.encode('no.such.Type', {})).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT', message: expect.stringContaining("found 'no.such.Type'") }));
    expect(() => types.decode(SAMPLE, Buffer.from([0xff, 0xff]))).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT', message: expect.stringContaining(SAMPLE) }));
    expect(() => ProtobufTypes.fromBinary(Buffer.from('0a056a756e6b21', 'hex'))).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT' }));
    expect(() => ProtobufTypes.fromBinary(Buffer.alloc(MAX_DESCRIPTOR_SET_BYTES + 1))).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT' }));
    // A hostile descriptor set nested past the library's recursion limit: refused, not a crash.
    let nested = Buffer.alloc(0);
    for (let i = 0; i < 300; i++) nested = Buffer.concat([Buffer.from([0x1a, ...varint(nested.length)]), nested]);
    const file = Buffer.concat([Buffer.from([0x22, ...varint(nested.length)]), nested]);
    expect(() => ProtobufTypes.fromBinary(Buffer.concat([Buffer.from([0x0a, ...varint(file.length)]), file]))).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT' }));
    // A value the shape check passes but the library refuses (out of range) keeps the code.
    expect(() => types.encode(SAMPLE, { small: '99999999999' })).toThrow(expect.objectContaining({ code: 'LM_INVALID_ARGUMENT', message: expect.stringContaining(SAMPLE) }));
  });
});

describe('coordination.protobuf in the manifest', () => {
  const folders = new PluginFolders();
  afterAll(() => folders.removeAll());

  const manifest = (protobuf: string): string =>
    dedent(`
      id: calc
      version: 1.0.0
      runtime: python
      entrypoint: main.py
      coordination:
        exposesMethods: [sum]
        protobuf:
    `) + protobuf.split('\n').map((l) => `    ${l}`).join('\n') + '\n';

  function plugin(protobuf: string, files: Record<string, Buffer> = { 'types.pb': SET }, extra: Record<string, ReturnType<typeof symlink>> = {}): string {
    const dir = folders.create({ 'main.py': MAIN_PY, 'plugin.yaml': manifest(protobuf), ...extra });
    for (const [name, bytes] of Object.entries(files)) writeFileSync(path.join(dir, name), bytes);
    return dir;
  }

  function issues(dir: string): { code: string; path: string; expected: string; found: string; file: string }[] {
    try {
      loadManifest(dir);
    } catch (err) {
      if (err instanceof ManifestRejectedError) return err.issues as never;
      throw err;
    }
    throw new Error('the manifest loaded');
  }

  it('loads a descriptor set in the folder whose types the methods name, and gives its types to the host', () => {
    const dir = plugin(`descriptorSet: ./types.pb\nmethods:\n  sum: { params: ${SAMPLE}, result: logomesh.vectors.v1.Point }`);
    const loaded = loadManifest(dir);
    expect(loaded.manifest.coordination.protobuf).toEqual({ descriptorSet: './types.pb', methods: { sum: { params: SAMPLE, result: 'logomesh.vectors.v1.Point' } } });
    expect(protobufTypesOf(loaded.pluginDir, './types.pb').messageNames()).toContain(SAMPLE);
  });

  it('names the file, the field, expected and found for each way it can be wrong', () => {
    const cases: [string, Record<string, Buffer>, Record<string, ReturnType<typeof symlink>>, string, RegExp][] = [
      ['descriptorSet: ./missing.pb', {}, {}, '/coordination/protobuf/descriptorSet', /missing\.pb: nothing/],
      ['descriptorSet: ./types.pb', { 'types.pb': Buffer.from('not a descriptor set at all') }, {}, '/coordination/protobuf/descriptorSet', /types\.pb: /],
      ['descriptorSet: ./big.pb', { 'big.pb': Buffer.alloc(MAX_DESCRIPTOR_SET_BYTES + 1) }, {}, '/coordination/protobuf/descriptorSet', /big\.pb: \d+ bytes/],
      ['descriptorSet: ./escape.pb', {}, { 'escape.pb': symlink('../outside/secret.txt') }, '/coordination/protobuf/descriptorSet', /outside/],
      ['descriptorSet: /etc/passwd', {}, {}, '/coordination/protobuf/descriptorSet', /\/etc\/passwd/],
      [`descriptorSet: ./types.pb\nmethods:\n  sum: { params: calc.v1.Nope }`, { 'types.pb': SET }, {}, '/coordination/protobuf/methods/sum/params', /calc\.v1\.Nope/],
      [`descriptorSet: ./types.pb\nmethods:\n  other: { result: ${SAMPLE} }`, { 'types.pb': SET }, {}, '/coordination/protobuf/methods/other', /other/],
    ];
    for (const [yaml, files, extra, at, found] of cases) {
      const dir = plugin(yaml, files, extra);
      const got = issues(dir).find((i) => i.path === at);
      expect(got, yaml).toMatchObject({ code: 'LM_MANIFEST_INVALID', file: path.join(dir, 'plugin.yaml'), found: expect.stringMatching(found) });
      expect(got?.expected.length).toBeGreaterThan(10);
    }
  });

  it('refuses a message name that is not a protobuf name, and an unknown key, by the schema', () => {
    const dir = plugin(`descriptorSet: ./types.pb\nmethods:\n  sum: { params: "not a name" }\nextra: 1`);
    expect(issues(dir).map((i) => i.path)).toEqual(expect.arrayContaining(['/coordination/protobuf/methods/sum/params', '/coordination/protobuf/extra']));
  });
});

describe("check.ts's ScalarType", () => {
  it("holds the library's numbers, so the module can load without the library", async () => {
    const { ScalarType: library } = await import('@bufbuild/protobuf');
    const { ScalarType: ours } = await import('../../src/protobuf/check.js');
    const names = Object.keys(library).filter((k) => Number.isNaN(Number(k)));
    expect(Object.fromEntries(names.map((n) => [n, (library as unknown as Record<string, number>)[n]]))).toEqual(ours);
  });
});
