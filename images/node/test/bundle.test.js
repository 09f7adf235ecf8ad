// The image resolves 'logomesh' to one bundled file (SDK and ws together: one module to load
// at a plugin's start), which must offer exactly what index.js offers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import * as bundled from 'logomesh';

describe('the bundled SDK', () => {
  it("is what 'logomesh' resolves to, for ES modules and require() alike", () => {
    assert.match(import.meta.resolve('logomesh'), /\/logomesh\/index\.bundle\.mjs$/);
    const r = spawnSync(process.execPath, ['-e', "process.stdout.write(require.resolve('logomesh'))"], { cwd: '/plugin', encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\/logomesh\/index\.bundle\.mjs$/);
  });

  it('exports the same names as the SDK sources', async () => {
    const sources = await import('/opt/logomesh/node/logomesh/index.js');
    assert.deepEqual(Object.keys(bundled).sort(), Object.keys(sources).sort());
    assert.equal(bundled.SDK_VERSION, sources.SDK_VERSION);
  });

  it('loads neither the data bridge codecs nor tls and https until they are used', () => {
    // What an idle plugin holds (docs/performance.md#nodejs-plugins); then each loads on its first use.
    const code = `
      const lm = await import('logomesh');
      const { createRequire } = await import('node:module');
      const cache = createRequire(import.meta.url).cache;
      const state = () => ({ codecs: Object.keys(cache).map((f) => f.slice(f.lastIndexOf('/') + 1)).sort(), tls: process.moduleLoadList.includes('NativeModule tls'), https: process.moduleLoadList.includes('NativeModule https') });
      const idle = state();
      lm.decodeStructured(lm.encodeStructured({ a: [1] }, 'msgpack'), 'msgpack');
      const msgpack = state();
      lm.decodeStructured(lm.encodeStructured({ a: [1] }, 'protobuf'), 'protobuf');
      process.stdout.write(JSON.stringify({ idle, msgpack, protobuf: state() }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: '/plugin', encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      idle: { codecs: [], tls: false, https: false },
      msgpack: { codecs: ['codec-msgpack.bundle.cjs'], tls: false, https: false },
      protobuf: { codecs: ['codec-msgpack.bundle.cjs', 'codec-protobuf.bundle.cjs'], tls: false, https: false },
    });
  });

  it('loads no module of ws or of the SDK but itself', () => {
    const code = "await import('logomesh'); const { createRequire } = await import('node:module'); process.stdout.write(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));";
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: '/plugin', encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
  });
});
