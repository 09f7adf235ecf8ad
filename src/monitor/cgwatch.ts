import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { LogoMeshError } from '../errors.js';
import type { Logger } from '../log.js';

/** What cgwatch is asked to wait on (see images/cgwatch/cgwatch.c). */
export type WatchSpec =
  /** cgroup v1: an eventfd registered through cgroup.event_control for `file` (with `args`: a threshold). */
  | { readonly type: 'eventfd'; readonly control: string; readonly file: string; readonly args?: string }
  /** A PSI trigger written to a pressure file; fires at most once per window. */
  | { readonly type: 'psi'; readonly file: string; readonly trigger: string }
  /** A file the kernel notifies on change (cgroup v2 memory.events, pids.events, cgroup.events): inotify. */
  | { readonly type: 'notify'; readonly file: string }
  /**
   * A file read every intervalMs by cgwatch, reported when its text changes (cgroup v1
   * pids.events). With `kernelLog` and the helper in `kernel-log` mode, not read while every
   * count in it is 0, but at once when the kernel logs the cgroup's first refused fork, and
   * every intervalMs from then on.
   */
  | { readonly type: 'poll'; readonly file: string; readonly intervalMs: number; readonly kernelLog?: boolean };

/**
 * How cgwatch learns of a cgroup v1 refused fork: `kernel-log`, from the pids controller's
 * line in /dev/kmsg, then by polling that cgroup only; `poll`, by reading every pids.events
 * every pids poll (the kernel log cannot be read, or LOGOMESH_CGWATCH_KMSG=0).
 */
export type PidsMode = 'kernel-log' | 'poll';

/** Set to 0 to have cgwatch poll every v1 pids.events instead of waiting on the kernel log. */
export const CGWATCH_KMSG_ENV = 'LOGOMESH_CGWATCH_KMSG';

export interface WatchEvent {
  readonly key: string;
  /** The eventfd count, else 1. */
  readonly count: number;
  /** CLOCK_MONOTONIC when cgwatch woke, ns (the clock of process.hrtime.bigint()). */
  readonly t: bigint;
}

/** An error cgwatch reported for a watch: the errno it got. */
export class WatchError extends LogoMeshError {
  constructor(
    readonly key: string,
    readonly errno: number,
    text: string,
  ) {
    super('LM_MONITOR_UNAVAILABLE', `cgwatch could not set up ${key}: ${text}`, { key, errno, expected: 'a kernel notification', found: text });
  }
}

const KEY = /^[A-Za-z0-9_.:-]{1,128}$/;
const FIELD = /^[^\t\n\0]+$/;

interface Reply {
  k?: string;
  ok?: number;
  err?: string;
  errno?: number;
  ev?: number;
  t?: number | string;
  gone?: number;
  ready?: number;
  /** On the ready line, and later if the kernel log fails: 1 if cgwatch reads it. */
  kmsg?: number;
  why?: string;
}

/**
 * The cgwatch helper process: one per monitor. `watch` resolves once the kernel
 * notification is in place; each firing is an `event`, and a watch whose cgroup went away
 * is `gone`. Emits `exit` if the helper dies.
 */
export class Cgwatch extends EventEmitter<{ event: [WatchEvent]; gone: [string]; exit: [number | null]; ready: [] }> {
  private readonly pending = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  private closed = false;
  private pidsMode: PidsMode = 'poll';

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly log: Logger,
  ) {
    super();
  }

  /**
   * Start the helper at `binary` and wait for its ready line. `kernelLog: false` (default:
   * unless LOGOMESH_CGWATCH_KMSG=0) keeps it from reading /dev/kmsg: every v1 pids.events is
   * then polled.
   */
  static async start(binary: string, log: Logger, opts: { kernelLog?: boolean } = {}): Promise<Cgwatch> {
    const kernelLog = opts.kernelLog ?? process.env[CGWATCH_KMSG_ENV] !== '0';
    // A process group of its own: a Ctrl-C at the terminal (SIGINT to the foreground group)
    // reaches the controller, which stops the helper in order, and not the helper first. It
    // still ends with the controller however that ends: it exits when its stdin closes.
    const child = spawn(binary, kernelLog ? [] : ['-p'], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const w = new Cgwatch(child, log);
    const ready = new Promise<void>((resolve, reject) => {
      child.once('error', (err) => reject(new LogoMeshError('LM_MONITOR_UNAVAILABLE', `cannot start cgwatch (${binary}): ${err.message}`, { file: binary }, { cause: err })));
      w.once('ready', () => resolve());
    });
    child.stderr.on('data', (d: Buffer) => log.warn({ stderr: d.toString().trim() }, 'cgwatch'));
    // Parse each line (the helper writes one JSON object per line, at once).
    createInterface({ input: child.stdout }).on('line', (line) => w.line(line));
    child.on('exit', (code) => {
      w.closed = true;
      for (const p of w.pending.values()) p.reject(new LogoMeshError('LM_MONITOR_UNAVAILABLE', `cgwatch exited (${code})`, {}));
      w.pending.clear();
      w.emit('exit', code);
    });
    await ready;
    return w;
  }

  private line(line: string): void {
    let r: Reply;
    try {
      // Event times are nanoseconds beyond 2^53: keep them exact.
      r = JSON.parse(line.replace(/"t":(\d+)/, '"t":"$1"')) as Reply;
    } catch {
      this.log.warn({ line }, 'cgwatch printed a line that is not JSON');
      return;
    }
    if (r.ready) {
      this.setMode(r, 'an older cgwatch, which does not read the kernel log');
      this.emit('ready');
      return;
    }
    if (r.kmsg !== undefined && !r.k) {
      this.setMode(r, 'unknown');
      return;
    }
    if (!r.k) {
      this.log.warn({ err: r.err }, 'cgwatch refused a command');
      return;
    }
    if (r.ev !== undefined) this.emit('event', { key: r.k, count: r.ev, t: BigInt(r.t ?? 0) });
    else if (r.gone) this.emit('gone', r.k);
    else {
      const p = this.pending.get(r.k);
      this.pending.delete(r.k);
      if (r.ok) p?.resolve();
      else p?.reject(new WatchError(r.k, r.errno ?? 0, r.err ?? 'unknown error'));
    }
  }

  /** The mode a ready line or a later kmsg line gives, said once in the log. */
  private setMode(r: Reply, unsaid: string): void {
    this.pidsMode = r.kmsg === 1 ? 'kernel-log' : 'poll';
    if (this.pidsMode === 'kernel-log') this.log.info({ pidsMode: this.pidsMode }, 'cgwatch: refused forks (cgroup v1 pids.events) are seen from the kernel log (/dev/kmsg); only cgroups that hit their limit are polled');
    else this.log.info({ pidsMode: this.pidsMode, why: r.why ?? unsaid }, 'cgwatch: the kernel log is not read; every cgroup v1 pids.events is polled');
  }

  /** How refused forks on cgroup v1 are seen (docs/monitoring.md#how-each-violation-is-seen). */
  get mode(): PidsMode {
    return this.pidsMode;
  }

  /** The helper's process id (for measuring its CPU). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Set up one watch under `key` (unique among this helper's watches). */
  watch(key: string, spec: WatchSpec): Promise<void> {
    if (!KEY.test(key)) throw new LogoMeshError('LM_INTERNAL', `cgwatch key ${JSON.stringify(key)} is not [A-Za-z0-9_.:-]{1,128}`, {});
    const fields = (() => {
      switch (spec.type) {
        case 'eventfd':
          return ['E', key, spec.control, spec.file, spec.args ?? ''];
        case 'psi':
          return ['P', key, spec.file, spec.trigger];
        case 'notify':
          return ['N', key, spec.file];
        case 'poll':
          return ['W', key, spec.file, String(Math.round(spec.intervalMs)), ...(spec.kernelLog ? ['k'] : [])];
      }
    })();
    for (const f of fields.slice(2)) {
      if (f !== '' && !FIELD.test(f)) throw new LogoMeshError('LM_MONITOR_UNAVAILABLE', `cannot watch ${JSON.stringify(f)}: a tab, newline or NUL in a path`, { file: f });
    }
    if (this.closed) return Promise.reject(new LogoMeshError('LM_MONITOR_UNAVAILABLE', 'cgwatch is not running', {}));
    return new Promise((resolve, reject) => {
      this.pending.set(key, { resolve, reject });
      this.child.stdin.write(`${fields.join('\t')}\n`);
    });
  }

  unwatch(key: string): void {
    if (!this.closed) this.child.stdin.write(`U\t${key}\n`);
  }

  /** Stop the helper (closing its stdin ends it; the kernel drops its watches with its fds). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once('exit', () => resolve());
      this.child.stdin.end();
      setTimeout(() => this.child.kill('SIGKILL'), 2000).unref();
    });
  }
}
