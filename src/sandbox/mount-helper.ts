import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { createInterface } from 'node:readline';
import type { Logger } from '../log.js';

/**
 * The mount staging's helper (images/cgwatch/lm-mount.c): one small process, started once and
 * kept, that bind-mounts the controller's held descriptors (/proc/<controller>/fd/<n>) onto
 * its staging folders and unmounts them. Forking mount(8) for each mount copied the page
 * tables of the whole controller (about 10 ms of CPU a fork at 250 MiB: most of the
 * controller's CPU in an `up`, docs/performance.md#where-the-time-of-an-up-goes); a request
 * to the helper is one line each way.
 *
 * The helper takes no path but the staging targets, and only under this process's own
 * staging prefix; the source is a descriptor number, resolved by the kernel to the object
 * this process opened and checked. If it dies, the requests it had not answered fail (the
 * caller's start fails with its coded error) and the next request starts a new one; without
 * the binary, MountStaging forks mount(8) as before.
 */

/** A failed request: `answered` false when the helper ended before answering (the mount may have been made). */
export class MountHelperError extends Error {
  constructor(
    message: string,
    readonly answered: boolean,
    readonly errno?: string,
  ) {
    super(message);
    this.name = 'MountHelperError';
  }
}

interface Pending {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

export class MountHelper {
  private child?: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private next = 1;
  /** Helpers started so far (1 + restarts), for the log and the tests. */
  starts = 0;

  constructor(
    private readonly binary: string,
    /** Targets must start with it: this process's staging folders. */
    readonly prefix: string,
    private readonly log?: Logger,
  ) {}

  /** Bind-mount this process's descriptor `fd` on `target`, nosuid,nodev,noexec (and ro unless writable). */
  mount(fd: number, writable: boolean, target: string): Promise<void> {
    return this.request(`mount %ID% ${fd} ${writable ? 'rw' : 'ro'} ${target}`, target);
  }

  /** Detach the mount on `target` (lazily, never following a symlink). Rejects with errno EINVAL if nothing is mounted there. */
  umount(target: string): Promise<void> {
    return this.request(`umount %ID% ${target}`, target);
  }

  /** End the helper: it exits at the end of its input, after the requests already sent. */
  close(): void {
    this.child?.stdin?.end();
  }

  /** The helper's pid while it runs (for the tests). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private request(template: string, target: string): Promise<void> {
    // A newline would start a second request of the caller's making: never sent.
    if (/[\n\0]/.test(target)) return Promise.reject(new MountHelperError(`refused a staging path with a newline or NUL: ${JSON.stringify(target)}`, true, 'EINVAL'));
    const child = this.running();
    const id = this.next++;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.refWhileBusy(child);
      child.stdin?.write(`${template.replace('%ID%', String(id))}\n`);
    });
  }

  /** The running helper, started if there is none (the first request, or after it died). */
  private running(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn(this.binary, [String(process.pid), this.prefix], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.starts++;
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-1000)));
    child.stdin?.on('error', () => undefined); // a dead helper's pipe: its exit fails the requests
    createInterface({ input: child.stdout! }).on('line', (line) => this.answer(line));
    const ended = (why: string): void => {
      if (this.child !== child) return;
      this.child = undefined;
      const err = new MountHelperError(`the mount helper ${this.binary} ended (${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}) before answering`, false);
      if (this.pending.size) this.log?.warn({ err: err.message, unanswered: this.pending.size }, 'the mount helper ended; the next staging mount starts a new one');
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    child.on('error', (err) => ended(err.message));
    // 'close', not 'exit': the answers still in the pipe are read first.
    child.on('close', (code, signal) => ended(signal ? `signal ${signal}` : `exit ${code}`));
    this.refWhileBusy(child);
    return child;
  }

  private answer(line: string): void {
    const m = /^(\d+) (ok|err (\d+) (.*)|ready)$/.exec(line);
    if (!m || m[2] === 'ready') return;
    const p = this.pending.get(Number(m[1]));
    if (!p) return; // "0 err": a line the helper could not read, which this class never writes
    this.pending.delete(Number(m[1]));
    if (this.child) this.refWhileBusy(this.child);
    if (m[2] === 'ok') p.resolve();
    else p.reject(new MountHelperError(m[4]!, true, ERRNO_NAMES.get(Number(m[3]))));
  }

  /** The helper keeps the process alive only while a request waits for its answer. */
  private refWhileBusy(child: ChildProcess): void {
    const streams = [child.stdout, child.stderr] as unknown as (Socket | null)[];
    for (const s of streams) {
      if (this.pending.size) s?.ref();
      else s?.unref();
    }
    if (this.pending.size) child.ref();
    else child.unref();
  }
}

let binary: string | undefined;
let helper: MountHelper | undefined;

/**
 * The binary the staging uses from now on (the controller sets it once images/cgwatch is
 * built: controller/monitoring.ts); undefined (or a missing file) goes back to mount(8).
 */
export function useMountHelper(file: string | undefined, log?: Logger): void {
  const next = file && existsSync(file) ? file : undefined;
  if (next === binary) return;
  binary = next;
  helper?.close();
  helper = undefined;
  log?.debug({ binary: next }, next ? 'staging mounts through the mount helper' : 'staging mounts through mount(8)');
}

/** The process's helper for staging folders under `prefix`, or undefined when there is no binary. */
export function mountHelper(prefix: string, log?: Logger): MountHelper | undefined {
  if (!binary) return undefined;
  // Another temp folder (TMPDIR changed in this process): a helper for the new prefix.
  if (helper && helper.prefix !== prefix) {
    helper.close();
    helper = undefined;
  }
  helper ??= new MountHelper(binary, prefix, log);
  return helper;
}
