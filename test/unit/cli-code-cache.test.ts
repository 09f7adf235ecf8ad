import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const LOADER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'code-cache.ts');

/** One process that loads `bundle` through the code cache, calls its answer() and prints it. */
function runBundle(bundle: string): string {
  const script = `import { loadCachedBundle } from ${JSON.stringify(LOADER)}; process.stdout.write(String(loadCachedBundle(${JSON.stringify(bundle)}).answer()));`;
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
}

/** A CommonJS bundle whose answer() returns `value`: the same length for every one-letter value. */
const bundleText = (value: string) => `const path = require('node:path');\nmodule.exports.answer = () => '${value}' + path.basename(__filename);\n`;

/** Each test starts a few Node.js processes: a generous bound for a loaded machine. */
const PROCESSES_MS = 60_000;

describe("the CLI's code cache (src/code-cache.ts)", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the cache at the first run, uses it after, and gives the module require and __filename', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-code-cache-'));
    const bundle = path.join(dir, 'b.cjs');
    writeFileSync(bundle, bundleText('a'));
    expect(runBundle(bundle)).toBe('ab.cjs');
    const cache = readFileSync(`${bundle}.v8-cache`);
    expect(cache.subarray(0, 22).toString()).toBe('logomesh-code-cache 1 ');
    expect(runBundle(bundle)).toBe('ab.cjs');
    // Accepted: the second run did not write it again.
    expect(readFileSync(`${bundle}.v8-cache`).equals(cache)).toBe(true);
  }, PROCESSES_MS);

  it('never runs the bytecode of another source of the same length (V8 checks only the length)', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-code-cache-'));
    const bundle = path.join(dir, 'b.cjs');
    writeFileSync(bundle, bundleText('a'));
    expect(runBundle(bundle)).toBe('ab.cjs');
    const old = readFileSync(`${bundle}.v8-cache`);
    writeFileSync(bundle, bundleText('z'));
    // Even with the old modification time back, the inode of a file written anew differs; here
    // the same file is rewritten, so the time is what tells them apart.
    utimesSync(bundle, new Date(), new Date(Date.now() + 5_000));
    expect(runBundle(bundle)).toBe('zb.cjs');
    expect(readFileSync(`${bundle}.v8-cache`).equals(old)).toBe(false);
    expect(runBundle(bundle)).toBe('zb.cjs');
  }, PROCESSES_MS);

  it('runs from a damaged cache, and writes a good one in its place', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lm-code-cache-'));
    const bundle = path.join(dir, 'b.cjs');
    writeFileSync(bundle, bundleText('a'));
    expect(runBundle(bundle)).toBe('ab.cjs');
    const cache = readFileSync(`${bundle}.v8-cache`);
    const head = cache.indexOf(10) + 1;
    const damaged = Buffer.concat([cache.subarray(0, head), Buffer.alloc(cache.length - head, 0x55)]);
    writeFileSync(`${bundle}.v8-cache`, damaged);
    expect(runBundle(bundle)).toBe('ab.cjs'); // V8 rejects the bytes: compiled, and written again
    const again = readFileSync(`${bundle}.v8-cache`);
    expect(again.equals(damaged)).toBe(false);
    expect(again.subarray(0, head).equals(cache.subarray(0, head))).toBe(true);
    rmSync(`${bundle}.v8-cache`);
    writeFileSync(`${bundle}.v8-cache`, 'not a cache');
    expect(runBundle(bundle)).toBe('ab.cjs');
    expect(existsSync(`${bundle}.v8-cache`)).toBe(true);
  }, PROCESSES_MS);
});
