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

  it('loads no module of ws or of the SDK but itself', () => {
    const code = "await import('logomesh'); const { createRequire } = await import('node:module'); process.stdout.write(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));";
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: '/plugin', encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
  });
});
