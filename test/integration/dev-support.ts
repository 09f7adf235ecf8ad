import { spawn, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { REPO, sleep } from './support.js';

const ENTRY = path.join(REPO, 'src/cli/entry.ts');

/** `logomesh dev <dir>` as a child process, with its output collected. */
export class DevProcess {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(dir: string, readonly env: Record<string, string>, extra: string[] = []) {
    this.child = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'dev', dir, ...extra], {
      cwd: REPO,
      env: { ...process.env, LOGOMESH_LOG_FORMAT: 'json', LOGOMESH_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout.on('data', (c: Buffer) => (this.stdout += c.toString()));
    this.child.stderr.on('data', (c: Buffer) => (this.stderr += c.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** Wait until stderr matches, from offset `from` on; the match. */
  async waitFor(pattern: RegExp, timeoutMs: number, from = 0): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.stderr.slice(from));
      if (m) return m;
      if (this.child.exitCode !== null) throw new Error(`logomesh dev exited (${this.child.exitCode}) before ${pattern}\n${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`logomesh dev did not print ${pattern} within ${timeoutMs} ms\n--- stderr\n${this.stderr}\n--- stdout\n${this.stdout}`);
      await sleep(25);
    }
  }

  /** The instance label of its containers, as it printed it: its own, never LOGOMESH_INSTANCE itself. */
  get instance(): string {
    const m = /; instance (\S+)/.exec(this.stderr);
    if (!m) throw new Error(`logomesh dev printed no instance\n${this.stderr}`);
    return m[1]!;
  }

  /** `logomesh call` against this session (same LOGOMESH_HOME): the parsed result. */
  call(target: string, args: unknown): Promise<{ code: number | null; result?: unknown; stderr: string }> {
    return new Promise((resolve, reject) => {
      const c = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'call', target, JSON.stringify(args), '--timeout', '5000'], {
        cwd: REPO,
        env: { ...process.env, LOGOMESH_HOME: this.env.LOGOMESH_HOME },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      c.stdout.on('data', (b: Buffer) => (out += b.toString()));
      c.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const timer = setTimeout(() => {
        c.kill();
        reject(new Error(`logomesh call ${target} did not finish within 20 s`));
      }, 20_000);
      c.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stderr: err, ...(code === 0 ? { result: JSON.parse(out) as unknown } : {}) });
      });
    });
  }

  /** SIGINT, then wait (bounded) for the exit; SIGKILL if it hangs. */
  async stop(timeoutMs = 30_000): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([this.exited, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)))]);
    clearTimeout(timer);
    if (code === 'timeout') {
      this.child.kill('SIGKILL');
      throw new Error(`logomesh dev did not stop within ${timeoutMs} ms of SIGINT\n${this.stderr}`);
    }
    return code;
  }
}

