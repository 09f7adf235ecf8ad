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

  it('leaves no segment behind', () => {
    expect(ctl.memory.list()).toEqual([]);
  });
});
