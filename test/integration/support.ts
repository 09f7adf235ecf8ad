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
export async function runCaptured(dir: string, extra: Partial<Pick<RunOptions, 'onCreated' | 'signal'>> = {}): Promise<Captured> {
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
