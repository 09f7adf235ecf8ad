import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { docker, instance, REPO, tempDir } from './support.js';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'shm-langs');
const LANGS = ['python', 'go', 'node', 'rust'].filter((l) => existsSync(path.join(FIXTURES, `lang-${l}`)));
const FORMATS = ['json', 'msgpack', 'protobuf'] as const;
/** What all three formats carry exactly: no binary, no NaN, integers within 2^53. */
const VALUE = { name: 'ünïcødé ✓ 日本語 🎉', n: 42, neg: -7, big: 5_000_000_000, f: 1.5, list: [1, 'two', null, { deep: [null, { x: [] }] }], empty: {}, yes: true, no: false };
/** A declared message type (each fixture ships test/vectors/protobuf/types.pb): what the reader returns is its proto3 JSON. */
const SAMPLE = 'logomesh.vectors.v1.Sample';
const TYPED = {
  displayName: 'ünïcødé ✓ 🎉',
  big: '9007199254740993',
  ubig: '18446744073709551615',
  small: -5,
  ratio: 0.25,
  flag: true,
  blob: 'AP8QgA==',
  color: 'COLOR_GREEN',
  origin: { x: 1, y: -2 },
  path: [{ x: 1 }, {}],
  counts: [1, -1, 300],
  totals: { b: '-2', a: '9007199254740993' },
  tags: ['x', ''],
  colors: ['COLOR_RED', 'COLOR_UNSPECIFIED'],
  at: {},
};

/**
 * The data bridge across languages through real segments: for every ordered pair of
 * languages and every format, the first writes the value into a segment it allocates, sends
 * the handle with a read grant, and the second maps it and reads it back.
 */
describe('structured data through a segment, every ordered pair of languages, every format', () => {
  let ctl: Controller;
  beforeAll(async () => {
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-shm-langs` });
    ctl = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 1_000, startTimeoutMs: 120_000 });
    ctl.load(LANGS.map((l) => loadManifest(path.join(FIXTURES, `lang-${l}`))));
    await ctl.startAll();
  }, 900_000);
  afterAll(async () => {
    await ctl?.close();
  });

  const pairs = LANGS.flatMap((a) => LANGS.filter((b) => b !== a).flatMap((b) => FORMATS.map((fmt) => ({ a, b, fmt }))));
  it.each(pairs)('$a -> $b in $fmt', async ({ a, b, fmt }) => {
    expect(await ctl.call(`lang-${a}`, 'roundtrip', { fmt, value: VALUE, target: `lang-${b}` }, 30_000)).toEqual(VALUE);
  });

  const typedPairs = LANGS.flatMap((a) => LANGS.filter((b) => b !== a).map((b) => ({ a, b })));
  it.each(typedPairs)('$a -> $b as the declared message type ' + SAMPLE, async ({ a, b }) => {
    expect(await ctl.call(`lang-${a}`, 'roundtrip', { fmt: 'protobuf', type: SAMPLE, value: TYPED, target: `lang-${b}` }, 30_000)).toEqual({ ...TYPED, totals: { a: '9007199254740993', b: '-2' } });
  });

  it.each(LANGS)('%s refuses a value that does not fit the type with LM_INVALID_ARGUMENT naming the type and the path', async (a) => {
    const target = `lang-${LANGS.find((b) => b !== a) ?? a}`;
    await expect(ctl.call(`lang-${a}`, 'roundtrip', { fmt: 'protobuf', type: SAMPLE, value: { origin: { x: 'abc' } }, target }, 30_000)).rejects.toMatchObject({
      code: 'LM_INVALID_ARGUMENT',
      message: expect.stringContaining(`protobuf ${SAMPLE}: /origin/x: expected int32 (an integer or a decimal string), found "abc" (string)`),
    });
  });

  it('leaves no segment behind', () => {
    expect(ctl.memory.list()).toEqual([]);
  });
});
