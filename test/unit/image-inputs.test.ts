import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Docker } from '../../src/engine/docker.js';
import { cachedHash, fingerprint, keepHash } from '../../src/images/inputs-cache.js';
import { contextHash } from '../../src/images/inputs-hash.js';

/** A Dockerfile without FROM: the hash then needs no engine. */
const NO_ENGINE = {} as Docker;
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lm-inputs-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

describe("a runtime image's inputs hash", () => {
  it('covers a small extra by its bytes, not its mtime (a copy made by a Docker build keeps whole seconds only)', async () => {
    const context = folder({ Dockerfile: 'COPY protocol /x\n' });
    const a = folder({ 'protocol.json': '{"maxDepth":64}' });
    const b = folder({ 'protocol.json': '{"maxDepth":64}' });
    utimesSync(path.join(b, 'protocol.json'), 1_000_000.5, 1_000_000.5);
    const hashA = await contextHash(NO_ENGINE, context, { protocol: a }, '');
    expect(await contextHash(NO_ENGINE, context, { protocol: b }, '')).toBe(hashA);
    writeFileSync(path.join(b, 'protocol.json'), '{"maxDepth":65}');
    expect(await contextHash(NO_ENGINE, context, { protocol: b }, '')).not.toBe(hashA);
  });
});

describe("the inputs hash kept between runs (inputs-cache.ts)", () => {
  const cacheOf = () => ({ dir: folder({}) });

  it('is the hash computed from the files, and is used while nothing changed', async () => {
    const context = folder({ Dockerfile: 'COPY . /x\n', 'sdk/a.py': 'a = 1\n', 'sdk/b.py': 'b = 2\n' });
    const cache = cacheOf();
    const fresh = await contextHash(NO_ENGINE, context, {}, '', undefined, null);
    expect(await contextHash(NO_ENGINE, context, {}, '', undefined, cache)).toBe(fresh);
    // Files changed within the last seconds are not kept (their times could still hide a write): nothing stored yet.
    expect(readdirSync(cache.dir)).toEqual([]);
    const fp = fingerprint(context, {}, 'rest');
    keepHash(cache, 'ctx', fp, fp, 'f'.repeat(64), Date.now() + 10_000);
    expect(cachedHash(cache, 'ctx', fingerprint(context, {}, 'rest'))).toBe('f'.repeat(64));
    expect(cachedHash(cache, 'ctx', fingerprint(context, {}, 'other base image id'))).toBeUndefined();
    expect(cachedHash(cache, 'another context', fp)).toBeUndefined();
  });

  it('changes with any write, even one of the same size that puts the old modification time back', () => {
    const context = folder({ Dockerfile: 'COPY . /x\n', 'sdk/a.py': 'a = 1\n' });
    const file = path.join(context, 'sdk', 'a.py');
    utimesSync(file, 1_000_000, 1_000_000);
    const before = fingerprint(context, {}, '');
    writeFileSync(file, 'a = 2\n');
    utimesSync(file, 1_000_000, 1_000_000); // the change time moves: no process can set it
    expect(fingerprint(context, {}, '').text).not.toBe(before.text);
  });

  it('changes when a file is added, removed or replaced by a rename, in the context or an extra', () => {
    const context = folder({ Dockerfile: 'COPY . /x\n' });
    const extra = folder({ 'protocol.json': '{}' });
    const fp = () => fingerprint(context, { protocol: extra }, '').text;
    const seen = new Set([fp()]);
    writeFileSync(path.join(context, 'new.py'), '');
    seen.add(fp());
    writeFileSync(path.join(extra, 'tmp'), '{}');
    renameSync(path.join(extra, 'tmp'), path.join(extra, 'protocol.json'));
    seen.add(fp());
    rmSync(path.join(context, 'new.py'));
    seen.add(fp());
    expect(seen.size).toBe(4);
  });

  it('is not kept when a file changed while it was computed, nor where the cache cannot be written', () => {
    const context = folder({ Dockerfile: 'x' });
    const cache = cacheOf();
    const a = fingerprint(context, {}, '');
    writeFileSync(path.join(context, 'Dockerfile'), 'y');
    keepHash(cache, 'ctx', a, fingerprint(context, {}, ''), 'f'.repeat(64), Date.now() + 10_000);
    expect(readdirSync(cache.dir)).toEqual([]);
    const blocked = path.join(folder({ file: '' }), 'file'); // a file where the folder would be
    keepHash({ dir: blocked }, 'ctx', a, a, 'f'.repeat(64), Date.now() + 10_000);
    expect(cachedHash({ dir: blocked }, 'ctx', a)).toBeUndefined();
  });
});
