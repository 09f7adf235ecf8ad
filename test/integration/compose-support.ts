import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { holdingMount } from '../../src/memory/propagation.js';
import { REPO } from './support.js';

export interface Done {
  code: number | null;
  out: string;
  ms: number;
}

/** `docker compose -p project ...` from the repository root, killed after timeoutMs. */
export function compose(project: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<Done> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('docker', ['compose', '--progress', 'plain', '-p', project, '-f', path.join(REPO, 'compose.yaml'), ...args], {
      cwd: REPO,
      // compose.yaml's defaults are relative to ${PWD}: the folder compose is started in.
      env: { ...process.env, PWD: REPO, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => {
      out += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - started });
    });
  });
}

/**
 * compose.yaml binds the home rshared, which needs it on a shared host mount: what an operator
 * does once on a host without systemd (images/controller/share-home.sh). Returns the undo: the
 * self-bind the script made, if it made one (the test's own folder only).
 */
export function shareHome(home: string): () => void {
  const before = holdingMount(readFileSync('/proc/self/mountinfo', 'utf8'), home);
  const run = spawnSync('bash', [path.join(REPO, 'images', 'controller', 'share-home.sh'), home], { encoding: 'utf8', timeout: 30_000 });
  if (run.status !== 0) throw new Error(`share-home.sh ${home} failed: ${run.stderr}`);
  if (before?.target === home) return () => undefined;
  return () => {
    spawnSync('umount', ['-l', home], { timeout: 30_000 });
  };
}
