import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, formatIssue, LogoMeshError, ManifestRejectedError } from '../../src/errors.js';
import { loadManifest, type LoadedManifest } from '../../src/manifest/index.js';
import { parseManifestSource } from '../../src/manifest/source.js';
import { notPlainData } from '../../src/manifest/yaml-features.js';
import { loadPolicy, PolicyRejectedError } from '../../src/policy/policy.js';
import { dedent, folder, MAIN_PY, PluginFolders } from './support/plugin-folder.js';
import { prng } from './support/prng.js';

/**
 * Seeded, bounded fuzzing of the manifest loader (and the policy loader, which shares its
 * parser) as a hostile author would: YAML tricks, broken bytes, absurd sizes and nesting,
 * special files. Whatever the input, the loader accepts it or refuses it with a coded
 * LogoMesh error, each case within a time bound and the whole run within a memory bound.
 * LOGOMESH_FUZZ_SEED and LOGOMESH_FUZZ_CASES change the run; a failure names the seed, the
 * case and the mutations, and writes the input to the scratch folder, so it can be replayed.
 */

const SEED = Number(process.env.LOGOMESH_FUZZ_SEED ?? 0x10605e12);
const CASES = Number(process.env.LOGOMESH_FUZZ_CASES ?? 1000);
const CASE_MS = 5000;
const TOTAL_MS = 90_000;
const RSS_GROWTH = 512 * 1024 * 1024;

const SEEDS: Record<string, string> = {
  'plugin.yaml': dedent(`
    id: example-plugin
    version: 1.0.0
    runtime: python
    entrypoint: main.py
    capabilities:
      - id: inputs
        scope: filesystem
        permissions: [read]
        paths: ["./data/**"]
      - id: results
        scope: filesystem
        permissions: [read, write]
        paths: ["out/**"]
      - id: net
        scope: network
        hosts: ["api.example.com:443"]
    resources: { maxMemoryMB: 100, maxCpuPercent: 25, maxFileHandles: 50, maxNetworkConnections: 4 }
    dependencies:
      system: [python3]
      plugins: [data-processor]
      packages: { python: [numpy] }
    coordination:
      exposesMethods: [process_data]
      consumesMethods: [data-processor.update_metadata]
      sharedMemory: true
      messaging: true
  `),
  'plugin.json': `${JSON.stringify(
    {
      id: 'demo',
      version: '1.0.0',
      runtime: 'python',
      entrypoint: 'main.py',
      capabilities: [{ id: 'fs', scope: 'filesystem', permissions: ['read'], paths: ['data'] }],
      resources: { maxMemoryMB: 64 },
      security: { syscalls: [] },
    },
    null,
    2,
  )}\n`,
  'plugin.yml': 'id: demo\nversion: 1.0.0\nruntime: node\nentrypoint: main.py\nhealth: {intervalMs: 1000, timeoutMs: 500}\n',
};

/** Pieces a hostile author reaches for. */
const TOKENS = [
  '&a ', '*a', '*b ', '&b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]', '!!omap ', '!!set ', '!!binary ', '!!timestamp ', '!custom ',
  '!!python/object:os.system ', '!!float ', '!!str ', '!!int ', '! ', '%YAML 1.1\n---\n', '%YAML 1.3\n', '%TAG !e! tag:x,2000:\n---\n',
  '%FOO\n', '<<: ', '<<: {maxMemoryMB: 1}\n', '? ', '? [a]\n: 1\n', ': ', '- ', '[', ']', '{', '}', ',', '"', "'", '#', '\n', '\r',
  '\r\n', '\t', '\0', '\ufeff', '\u2028', '\u0085', '.nan', '.inf', '-.inf', '1e999', '-0', '0x7fffffffffffffff', '0o777',
  '123456789012345678901234567890', '~', 'null', 'true', 'yes', 'on', '---\n', '...\n', '|\n  x\n', '>-\n  x\n', '__proto__: ',
  '__proto__: {maxMemoryMB: 1}\n', 'constructor: ', 'prototype: ', '"\\u0000"', '"\\ud800"', '..', '../outside/secret.txt', '/etc/passwd',
  '~/x', '"main\\0.py"', '2048: x\n', 'true: x\n', '"\\x41": 1\n', 'id: dup\n', '\\', '@', '`', '%', '&', '*', '!', '|', '>',
];

interface Input {
  readonly name: 'plugin.yaml' | 'plugin.yml' | 'plugin.json';
  readonly bytes: Buffer;
  /** Set when the manifest is made a special file instead. */
  readonly special?: 'fifo' | 'folder' | 'dev-zero' | 'proc-mem' | 'outside' | 'hard-link';
  readonly steps: string[];
}

function generate(rand: () => number): Input {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const int = (n: number) => Math.floor(rand() * n);
  const name = pick(['plugin.yaml', 'plugin.yml', 'plugin.json'] as const);
  const steps: string[] = [];
  if (rand() < 0.03) {
    const special = pick(['fifo', 'folder', 'dev-zero', 'proc-mem', 'outside', 'hard-link'] as const);
    return { name, bytes: Buffer.from(SEEDS[name] ?? ''), special, steps: [`special ${special}`] };
  }
  let text = SEEDS[name] ?? '';
  const whole = rand();
  if (whole < 0.02) {
    const depth = 1 + int(60_000);
    steps.push(`nesting ${depth}`);
    text = `${text}x: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
  } else if (whole < 0.04) {
    const size = int(300_000);
    steps.push(`long string ${size}`);
    text = `${text}x: "${'x'.repeat(size)}"\n`;
  } else if (whole < 0.06) {
    const keys = int(8000);
    steps.push(`keys ${keys}`);
    text = text + Array.from({ length: keys }, (_, i) => `k${i % (1 + int(keys))}: ${i}`).join('\n');
  } else if (whole < 0.08) {
    steps.push('alias bomb');
    text = `${text}a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n`;
  }
  const count = 1 + int(4);
  for (let i = 0; i < count; i++) {
    const at = int(text.length + 1);
    const kind = int(9);
    if (kind <= 2) {
      const token = pick(TOKENS);
      steps.push(`insert ${JSON.stringify(token)} at ${at}`);
      text = text.slice(0, at) + token + text.slice(at);
    } else if (kind === 3) {
      const len = int(40);
      steps.push(`delete ${len} at ${at}`);
      text = text.slice(0, at) + text.slice(at + len);
    } else if (kind === 4) {
      const lines = text.split('\n');
      const j = int(lines.length);
      steps.push(`duplicate line ${j}`);
      lines.splice(j, 0, lines[j] ?? '');
      text = lines.join('\n');
    } else if (kind === 5) {
      const lines = text.split('\n');
      const [j, k] = [int(lines.length), int(lines.length)];
      steps.push(`swap lines ${j} ${k}`);
      [lines[j], lines[k]] = [lines[k] ?? '', lines[j] ?? ''];
      text = lines.join('\n');
    } else if (kind === 6) {
      const value = pick(['-5', '0', '99999999', '1.5', '"64"', '[]', '{}', 'null', '""', '"x"', '.nan', '1e999']);
      steps.push(`value ${value} at ${at}`);
      text = text.replace(/: [^\n,}\]]+/g, (m, offset: number) => (offset >= at && !steps.includes('replaced') ? (steps.push('replaced'), `: ${value}`) : m));
    } else if (kind === 7) {
      steps.push(`truncate at ${at}`);
      text = text.slice(0, at);
    } else {
      const lines = text.split('\n');
      const j = int(lines.length);
      const indent = int(5);
      steps.push(`indent line ${j} by ${indent}`);
      lines[j] = ' '.repeat(indent) + (lines[j] ?? '').trimStart();
      text = lines.join('\n');
    }
  }
  let bytes = Buffer.from(text);
  if (rand() < 0.05 && bytes.length > 0) {
    const at = int(bytes.length);
    const byte = int(256);
    steps.push(`byte ${byte} at ${at}`);
    bytes = Buffer.from(bytes);
    bytes[at] = byte;
  }
  return { name, bytes, steps };
}

const folders = new PluginFolders();
afterAll(() => folders.removeAll());

/** Put the case's manifest in place (and nothing else named like a manifest). */
function place(dir: string, input: Input): string {
  for (const n of ['plugin.yaml', 'plugin.yml', 'plugin.json']) rmSync(path.join(dir, n), { recursive: true, force: true });
  rmSync(path.join(dir, 'out', 'link.yaml'), { force: true });
  const file = path.join(dir, input.name);
  switch (input.special) {
    case 'fifo':
      execFileSync('mkfifo', [file]);
      break;
    case 'folder':
      mkdirSync(file);
      break;
    case 'dev-zero':
      symlinkSync('/dev/zero', file);
      break;
    case 'proc-mem':
      symlinkSync('/proc/self/mem', file);
      break;
    case 'outside':
      symlinkSync('../outside/secret.txt', file);
      break;
    case 'hard-link':
      writeFileSync(file, input.bytes);
      linkSync(file, path.join(dir, 'out', 'link.yaml'));
      break;
    default:
      writeFileSync(file, input.bytes);
  }
  return file;
}

function checkAccepted(loaded: LoadedManifest, file: string): void {
  expect(loaded.file).toBe(file);
  expect(loaded.fileSha256).toBe(createHash('sha256').update(readFileSync(file)).digest('hex'));
  expect(notPlainData(loaded.manifest)).toBeUndefined();
  expect(Object.isFrozen(loaded.manifest)).toBe(true);
}

function checkRefused(err: unknown, file: string, dir: string): string {
  if (!(err instanceof LogoMeshError)) throw new Error(`not a LogoMesh error: ${String((err as Error)?.stack ?? err)}`);
  expect(Object.keys(ERROR_CODES)).toContain(err.code);
  expect(() => JSON.stringify(err.toJSON())).not.toThrow();
  if (err instanceof ManifestRejectedError) {
    expect(err.issues.length).toBeGreaterThan(0);
    for (const issue of err.issues) {
      expect(Object.keys(ERROR_CODES)).toContain(issue.code);
      expect(issue.file).toBe(file);
      expect(formatIssue(issue)).toContain(issue.code);
    }
  } else expect([file, dir]).toContain(err.details.file);
  // Never a line of a file outside the plugin folder.
  expect(err.message).not.toContain('host secret');
  return err.code;
}

describe('fuzzed manifests: accepted, or refused with a coded error, in bounded time and memory', () => {
  it(`${CASES} cases from seed ${SEED}`, { timeout: TOTAL_MS + 30_000 }, () => {
    const dir = folders.create({ 'main.py': MAIN_PY, data: folder, out: folder });
    const policyFile = path.join(path.dirname(dir), 'policy.yaml');
    const rand = prng(SEED);
    const rssBefore = process.memoryUsage.rss();
    const started = performance.now();
    const outcomes = new Map<string, number>();
    let slowest = 0;
    let slowestSteps = '';
    for (let i = 0; i < CASES; i++) {
      const input = generate(rand);
      const file = place(dir, input);
      const t0 = performance.now();
      let outcome: string;
      try {
        try {
          checkAccepted(loadManifest(dir), file);
          outcome = 'accepted';
        } catch (err) {
          if ((err as Error).name === 'AssertionError') throw err;
          outcome = checkRefused(err, file, dir);
        }
        if (i % 4 === 0 && !input.special) {
          writeFileSync(policyFile, input.bytes);
          try {
            loadPolicy(policyFile);
          } catch (err) {
            if (!(err instanceof PolicyRejectedError)) throw new Error(`policy: not a coded refusal: ${String((err as Error)?.stack ?? err)}`);
          }
        }
        const ms = performance.now() - t0;
        if (ms > slowest) [slowest, slowestSteps] = [ms, `${input.name}: ${input.steps.join('; ')}`];
        expect(ms, 'one case within its time bound').toBeLessThan(CASE_MS);
        expect(process.memoryUsage.rss() - rssBefore, 'memory within its bound').toBeLessThan(RSS_GROWTH);
      } catch (err) {
        // Outside the test's folders, which are removed when it ends.
        const replay = path.join(os.tmpdir(), `logomesh-fuzz-${SEED}-${i}-${input.name}`);
        writeFileSync(replay, input.bytes);
        throw new Error(`seed ${SEED} case ${i} (${input.name}; ${input.steps.join('; ')}; input kept at ${replay}): ${(err as Error).message}`, { cause: err });
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const total = performance.now() - started;
    expect(total).toBeLessThan(TOTAL_MS);
    // A fuzzer that only ever hits one outcome tests nothing: it must reach both sides.
    expect(outcomes.get('accepted') ?? 0).toBeGreaterThan(0);
    expect([...outcomes.keys()].filter((k) => k !== 'accepted').length).toBeGreaterThanOrEqual(4);
    if (process.env.LOGOMESH_FUZZ_REPORT) {
      console.log(JSON.stringify({ seed: SEED, cases: CASES, totalMs: Math.round(total), slowestMs: Math.round(slowest), slowestSteps, rssGrowthMB: Math.round((process.memoryUsage.rss() - rssBefore) / 2 ** 20), outcomes: Object.fromEntries(outcomes) }));
    }
  });
});

/** A random JSON value within the accepted bounds (nesting, items): strings full of escapes and odd characters. */
function jsonValue(rand: () => number, depth: number): unknown {
  const int = (n: number) => Math.floor(rand() * n);
  const chars = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\r', '\t', '\u0000', '\u001f', '\u007f', '\u0085', '\u00e9', '\u2028', '\u2029', '\ufeff', '\ud83d\ude00', '\ud800', '#', ':', '-', '&', '*', '!', '%', '@', '`', '|', '>', "'", '{', '[', ',', '?'];
  const str = () => Array.from({ length: int(12) }, () => chars[int(chars.length)]).join('');
  const kind = depth >= 5 ? int(4) : int(6);
  if (kind === 0) return str();
  if (kind === 1) return [0, -0, 1, -1, 0.5, 1e-7, 1e21, 123456789012, -2.5e-300, Number.MAX_SAFE_INTEGER][int(10)];
  if (kind === 2) return [true, false][int(2)];
  if (kind === 3) return null;
  if (kind === 4) return Array.from({ length: int(5) }, () => jsonValue(rand, depth + 1));
  return Object.fromEntries(Array.from({ length: int(5) }, () => [str(), jsonValue(rand, depth + 1)]));
}

describe('fuzzed JSON: every JSON text within the bounds reads as JSON.parse reads it', () => {
  it(`${CASES} documents from seed ${SEED}`, () => {
    const rand = prng(SEED ^ 0x5a5a5a5a);
    for (let i = 0; i < CASES; i++) {
      const value = { id: 'demo', extra: jsonValue(rand, 1) };
      const indent = [undefined, 2, '\t', ' '][Math.floor(rand() * 4)];
      const eol = ['\n', '\r\n', '\r'][Math.floor(rand() * 3)] as string;
      const text = JSON.stringify(value, null, indent).replace(/\n/g, eol);
      const source = parseManifestSource(text, { json: true });
      const context = `seed ${SEED} case ${i}: ${JSON.stringify(text).slice(0, 400)}`;
      expect(source.errors, context).toEqual([]);
      expect(source.value, context).toEqual(JSON.parse(text));
    }
  });
});
