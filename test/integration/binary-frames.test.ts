import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Controller } from '../../src/controller/controller.js';
import { resolveHome } from '../../src/controller/home.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { docker, instance, REPO, tempDir } from './support.js';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'frames-bench');

/**
 * Binary frames in real containers: Node.js plugins that ask for msgpack get it, and call
 * plugins that speak JSON and the other way; the values arrive the same.
 */
describe('binary (msgpack) frames where both ends agree', () => {
  let ctl: Controller;
  beforeAll(async () => {
    const home = resolveHome({ LOGOMESH_HOME: tempDir('lm-home-'), LOGOMESH_INSTANCE: `${instance()}-frames` });
    ctl = await Controller.create({ log: silentLogger, home, docker: await docker(), stopGraceMs: 1_000 });
    ctl.load(['caller-msgpack', 'echo-msgpack', 'echo-json', 'caller-pymsgpack', 'echo-pymsgpack', 'echo-gomsgpack', 'echo-rsmsgpack'].map((p) => loadManifest(path.join(FIXTURES, p))));
    await ctl.startAll();
  }, 300_000);
  afterAll(async () => {
    await ctl?.close();
  });

  it('the hub speaks msgpack to the plugins that asked, JSON to the others', () => {
    expect(ctl.hub.stats('caller-msgpack')?.encoding).toBe('msgpack');
    expect(ctl.hub.stats('echo-msgpack')?.encoding).toBe('msgpack');
    expect(ctl.hub.stats('echo-json')?.encoding).toBe('json');
    expect(ctl.hub.stats('caller-pymsgpack')?.encoding).toBe('msgpack');
    expect(ctl.hub.stats('echo-pymsgpack')?.encoding).toBe('msgpack');
    expect(ctl.hub.stats('echo-gomsgpack')?.encoding).toBe('msgpack');
    expect(ctl.hub.stats('echo-rsmsgpack')?.encoding).toBe('msgpack');
  });

  it('values arrive the same through msgpack frames, from the host and between plugins', async () => {
    const data = { text: 'ünïcødé ✓ 🎉', n: 42, f: 1.5, big: 5_000_000_000, list: [null, true, { deep: [[]] }], empty: {} };
    expect(await ctl.call('echo-msgpack', 'echo', data)).toEqual(data);
    expect(await ctl.call('echo-json', 'echo', data)).toEqual(data);
    const r = (await ctl.call('caller-msgpack', 'concurrent', { target: 'echo-msgpack.echo', inFlight: 8, ms: 500, data }, 30_000)) as { calls: number };
    expect(r.calls).toBeGreaterThan(10);
    // Whole numbers past 2^53 (2^53 itself, 2^60, 1e20) cannot go in a binary frame (the hub refuses
    // them there, LM_PROTOCOL): every SDK sends such a message as text on its msgpack connection.
    const unsafe = { edge: 2 ** 53, huge: 2 ** 60, float: 1e20, neg: -(2 ** 53) };
    for (const p of ['echo-msgpack', 'echo-pymsgpack', 'echo-gomsgpack', 'echo-rsmsgpack']) expect(await ctl.call(p, 'echo', unsafe), p).toEqual(unsafe);
    // Python with msgpack frames, to Node.js with msgpack and with JSON, and back.
    expect(await ctl.call('echo-pymsgpack', 'echo', data)).toEqual(data);
    for (const target of ['echo-msgpack.echo', 'echo-json.echo', 'echo-pymsgpack.echo']) {
      expect(((await ctl.call('caller-pymsgpack', 'sequential', { target, n: 20, data }, 30_000)) as number[]).length, target).toBe(20);
    }
  });

  it('the Go SDK speaks msgpack frames too, with every other SDK, and sends what msgpack cannot carry exactly as text', async () => {
    const data = { text: 'ünïcødé ✓ 🎉 <&>', n: 42, neg: -7, f: 1.5, big: 5_000_000_000, list: [null, true, { deep: [[]] }], empty: {} };
    expect(await ctl.call('echo-gomsgpack', 'echo', data)).toEqual(data);
    for (const target of ['echo-msgpack.echo', 'echo-json.echo', 'echo-pymsgpack.echo']) {
      expect(await ctl.call('echo-gomsgpack', 'sequential', { target, n: 5, data }, 30_000), target).toEqual(Array(5).fill(data));
    }
    expect(await ctl.call('caller-pymsgpack', 'sequential', { target: 'echo-gomsgpack.echo', n: 5, data }, 30_000)).toHaveLength(5);
    // 2^60 cannot go in a binary frame (the hub refuses integers past 2^53 there, LM_PROTOCOL): the SDK sends that answer as text.
    expect(await ctl.call('echo-gomsgpack', 'echo', { huge: 2 ** 60 })).toEqual({ huge: 2 ** 60 });
    expect(ctl.hub.stats('echo-gomsgpack')?.encoding).toBe('msgpack');
  });

  it('the Rust SDK speaks msgpack frames too, with every other SDK, and sends what msgpack cannot carry exactly as text', async () => {
    const data = { text: 'ünïcødé ✓ 🎉 <&>', n: 42, neg: -7, f: 1.5, big: 5_000_000_000, list: [null, true, { deep: [[]] }], empty: {} };
    expect(await ctl.call('echo-rsmsgpack', 'echo', data)).toEqual(data);
    for (const target of ['echo-msgpack.echo', 'echo-json.echo', 'echo-pymsgpack.echo', 'echo-gomsgpack.echo']) {
      expect(await ctl.call('echo-rsmsgpack', 'sequential', { target, n: 5, data }, 30_000), target).toEqual(Array(5).fill(data));
    }
    expect(await ctl.call('caller-pymsgpack', 'sequential', { target: 'echo-rsmsgpack.echo', n: 5, data }, 30_000)).toHaveLength(5);
    expect(await ctl.call('echo-rsmsgpack', 'echo', { huge: 2 ** 60 })).toEqual({ huge: 2 ** 60 });
    expect(ctl.hub.stats('echo-rsmsgpack')?.encoding).toBe('msgpack');
  });
});
