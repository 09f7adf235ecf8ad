import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../../src/cli/io.js';
import { validateCommand } from '../../src/cli/validate.js';
import { closest } from '../../src/schema-errors.js';
import { loadManifest } from '../../src/manifest/index.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'lm-validate-set-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function plugin(set: string, id: string, coordination: string, deps = '[]'): string {
  const dir = path.join(root, set, id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'main.py'), 'print(1)\n');
  writeFileSync(path.join(dir, 'plugin.yaml'), `id: ${id}\nversion: 1.0.0\nruntime: python\nentrypoint: main.py\ndependencies: { plugins: ${deps} }\ncoordination:\n${coordination}`);
  return dir;
}

function run(targets: string[]): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { out: (l) => void out.push(l), err: (l) => void err.push(l), stdout: process.stdout, stderr: process.stderr };
  return { code: validateCommand(targets, false, io), out, err };
}

describe('logomesh validate on a folder of plugins', () => {
  it('checks every consumed plugin.method against what its plugin exposes, and every dependency, saying what was meant', () => {
    plugin('bad', 'tokenizer', '  exposesMethods: [tokenize, count]\n');
    plugin('bad', 'analyzer', '  consumesMethods: [tokenizer.tokenise, tokenizr.count, elsewhere.thing, get_user]\n', '[tokeniser]');
    const r = run([path.join(root, 'bad')]);
    expect(r.code).toBe(1);
    const file = path.join(root, 'bad', 'analyzer', 'plugin.yaml');
    expect(r.err).toEqual([
      `${file} LM_DEPENDENCY /dependencies/plugins/0: expected a plugin of this set (analyzer, tokenizer), found 'tokeniser' (did you mean 'tokenizer'?)`,
      `${file} LM_PERMISSION_DENIED /coordination/consumesMethods/0: expected a method tokenizer exposes (tokenize, count), found 'tokenizer.tokenise' (did you mean 'tokenize'?)`,
      `${file} LM_PERMISSION_DENIED /coordination/consumesMethods/1: expected a plugin of this set (analyzer, tokenizer), found 'tokenizr.count': no plugin 'tokenizr' (did you mean 'tokenizer'?)`,
      '1 of 2 manifest(s) rejected, 3 error(s)',
    ]);
    expect(r.out).toEqual([`ok   ${path.join(root, 'bad', 'tokenizer', 'plugin.yaml')} (tokenizer@1.0.0, python)`]);
  });

  it('accepts a set that agrees, and plugins named one by one are one set too', () => {
    const a = plugin('good', 'tokenizer', '  exposesMethods: [tokenize]\n');
    const b = plugin('good', 'analyzer', '  consumesMethods: [tokenizer.tokenize]\n', '[tokenizer]');
    expect(run([path.join(root, 'good')]).code).toBe(0);
    expect(run([a, b]).code).toBe(0);
  });

  it('says what a misspelled field was meant to be', () => {
    const dir = plugin('typo', 'one', '  exposeMethods: [go]\n');
    expect(() => loadManifest(dir)).toThrow(expect.objectContaining({ message: expect.stringContaining("found unknown field 'exposeMethods' (did you mean 'exposesMethods'?)") }));
    expect(closest('maxMemoryMb', ['maxMemoryMB', 'maxCpuPercent'])).toBe('maxMemoryMB');
    expect(closest('colour', ['signatures', 'hosts'])).toBeUndefined();
  });
});
