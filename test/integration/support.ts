import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, inject } from 'vitest';
import { connectEngine, type Docker } from '../../src/engine/docker.js';
import { silentLogger } from '../../src/log.js';
import { loadManifest } from '../../src/manifest/index.js';
import { runPlugin, type RunOptions, type RunResult } from '../../src/sandbox/run-plugin.js';

export const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'plugins');
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function instance(): string {
  return inject('instance');
}

let engine: Promise<Docker> | undefined;
export function docker(): Promise<Docker> {
  engine ??= connectEngine();
  return engine;
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A private copy of a fixture plugin in a temp folder, removed after the file's tests. */
export function copyFixture(name: string): string {
  const root = mkdtempSync(path.join(os.tmpdir(), `lm-${name}-`));
  tempDirs.push(root);
  const dir = path.join(root, name);
  cpSync(path.join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

export function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export interface Captured extends RunResult {
  stdout: string;
  stderr: string;
}

/** Run a plugin folder to completion in its sandbox and capture its output. */
export async function runCaptured(dir: string, extra: Partial<Pick<RunOptions, 'onCreated' | 'signal' | 'egress' | 'policy' | 'hooks' | 'signed'>> = {}): Promise<Captured> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (c: Buffer) => chunks.out.push(c));
  err.on('data', (c: Buffer) => chunks.err.push(c));
  const result = await runPlugin({
    docker: await docker(),
    loaded: loadManifest(dir),
    instance: instance(),
    stdout: out,
    stderr: err,
    log: silentLogger,
    ...extra,
  });
  return { ...result, stdout: Buffer.concat(chunks.out).toString(), stderr: Buffer.concat(chunks.err).toString() };
}

/** The last line of output that parses as JSON: what a probe plugin reported. */
export function report<T = Record<string, unknown>>(stdout: string): T {
  const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no JSON report in plugin output:\n${stdout}`);
  return JSON.parse(line) as T;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface CliExit {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to (and overriding) the environment below. */
  env?: Record<string, string>;
  /** Called on every chunk of output, with all output so far. */
  onOutput?: (output: { stdout: string; stderr: string }, child: ChildProcess) => void;
  /** Kill with SIGINT and fail the test after this long. */
  timeoutMs?: number;
}

/**
 * Run the real `logomesh` CLI from source as a child process, under this run's instance
 * label, JSON logs at warn, and no operator policy unless the test sets one.
 */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliExit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'src/cli/entry.ts'), ...args], {
      cwd: REPO,
      env: { ...process.env, LOGOMESH_INSTANCE: instance(), LOGOMESH_LOG_FORMAT: 'json', LOGOMESH_LOG_LEVEL: 'warn', LOGOMESH_POLICY: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = { stdout: '', stderr: '' };
    child.stdout.on('data', (c: Buffer) => {
      out.stdout += c.toString();
      opts.onOutput?.(out, child);
    });
    child.stderr.on('data', (c: Buffer) => {
      out.stderr += c.toString();
      opts.onOutput?.(out, child);
    });
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            child.kill('SIGINT');
            reject(new Error(`logomesh ${args.join(' ')} did not finish within ${opts.timeoutMs} ms\n${out.stdout}\n${out.stderr}`));
          }, opts.timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...out });
    });
  });
}

/**
 * Poll `fn` every `everyMs` until it gives a value (not undefined), and return it; throws
 * naming `what` after `ms`. A generous safety bound: no timing is asserted with it.
 */
export async function until<T>(what: string, fn: () => T | undefined, ms = 60_000, everyMs = 25): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}
