/**
 * The kernel's own time of each OOM kill, for the monitor benchmark's oom-kill row: read from
 * the kernel log (/dev/kmsg, as root) and put on CLOCK_MONOTONIC, the clock of the driver's
 * stamp and of the violation callback (process.hrtime).
 *
 * The OOM killer logs `Memory cgroup out of memory: Killed process <pid> ...` right after it
 * has counted the kill in the cgroup (memory.oom_control `oom_kill`, what the monitor reads)
 * and sent SIGKILL (mm/oom_kill.c, __oom_kill_process). A record's timestamp is the kernel's
 * local clock in microseconds, which on this VM runs a near-constant offset from
 * CLOCK_MONOTONIC (about 24 ms, drifting about 1 µs a second): the offset is measured in the
 * same run by writing records to /dev/kmsg between two clock reads (calibrate), once before
 * and once after the runs, and interpolated between them. Checked against the oom:mark_victim
 * tracepoint on a tracefs instance with trace_clock mono (2026-12-06): the record so placed
 * fell within 30 µs of it (docs/monitoring.md#measured).
 *
 * The kill records of a container are told by the line `oom-kill:constraint=...,
 * oom_memcg=/docker/<id>,...,pid=<pid>,...` of the OOM report before them. The kernel writes
 * that report at most 10 times in 5 s (mm/oom_kill.c, oom_rs): a kill without one is taken
 * when its task's name and user are the driver's and no report named it in another cgroup
 * (the run's window, between its stamp and the next run's, makes the rest). The log is read
 * every 100 ms so a ring buffer filled by the reports (some 40 records each) loses nothing.
 */
import { closeSync, openSync, readSync, writeSync, constants } from 'node:fs';

const EVERY_MS = 100;
const MARK = 'logomesh-bench kmsg clock';

interface Calibration {
  /** CLOCK_MONOTONIC at the write, ns (the middle of the tightest bracket). */
  readonly at: bigint;
  /** CLOCK_MONOTONIC minus the kernel log's clock, ns. */
  readonly offset: bigint;
  /** Half the tightest bracket: how far off the offset can be, ns. */
  readonly errorNs: bigint;
}

/** One OOM kill in the watched cgroup: the killed pid and when, on CLOCK_MONOTONIC (ns). */
export interface KernelKill {
  readonly pid: number;
  /** The kernel wrote its OOM report before it (not rate-limited). */
  readonly reported: boolean;
  /** The record's timestamp in the kernel log's clock, ns. */
  readonly kmsgNs: bigint;
  /** On CLOCK_MONOTONIC, set by finish(). */
  at: bigint;
}

export class KernelKills {
  private readonly buf = Buffer.alloc(8192);
  private readonly timer: NodeJS.Timeout;
  private readonly inCgroup = new Set<number>();
  private readonly elsewhere = new Set<number>();
  private readonly marks = new Map<string, { t0: bigint; t1: bigint }>();
  private readonly cals: Calibration[] = [];
  readonly kills: KernelKill[] = [];
  /** Records lost to the ring buffer (EPIPE): some kills may be missing. */
  lost = 0;
  private closed = false;

  private constructor(
    private readonly fd: number,
    private readonly container: string,
    private readonly task: { readonly comm: string; readonly uid: number },
  ) {
    this.timer = setInterval(() => this.drain(), EVERY_MS);
  }

  /**
   * Follow the kernel log from now on for the OOM kills in a container (its id is in its memory
   * cgroup's path) of a task named `comm` run by `uid`; undefined if it cannot be read.
   */
  static open(container: string, task: { readonly comm: string; readonly uid: number }): KernelKills | undefined {
    let fd: number;
    try {
      fd = openSync('/dev/kmsg', constants.O_RDWR | constants.O_NONBLOCK);
    } catch {
      return undefined;
    }
    const k = new KernelKills(fd, container, task);
    k.skipToEnd();
    if (k.calibrate()) return k;
    process.stderr.write('kernel log: none of the records written to calibrate its clock came back (rate-limited?): OOM kills timed from the driver only\n');
    k.close();
    return undefined;
  }

  /** Stop following, calibrate again, and place every kill on CLOCK_MONOTONIC; returns the offset's drift over the runs, ns. */
  finish(): { driftNs: bigint | undefined; errorNs: bigint } {
    // Without a second calibration (its records dropped), the first alone: no drift is known.
    this.calibrate();
    this.drain();
    this.close();
    const [a, b] = [this.cals[0]!, this.cals.at(-1)!];
    for (const k of this.kills) k.at = k.kmsgNs + offsetAt(a, b, k.kmsgNs + a.offset);
    return { driftNs: this.cals.length > 1 ? b.offset - a.offset : undefined, errorNs: a.errorNs > b.errorNs ? a.errorNs : b.errorNs };
  }

  /** Stop reading (again: nothing). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    closeSync(this.fd);
  }

  /** The first kill at or after `from` and before `to` (CLOCK_MONOTONIC ns), after finish(). */
  killBetween(from: bigint, to: bigint): KernelKill | undefined {
    return this.kills.find((k) => k.at >= from && k.at < to);
  }

  /**
   * Three records written between two clock reads; the tightest bracket gives the offset.
   * The kernel rate-limits writes to /dev/kmsg (printk_devkmsg=ratelimit), so some may not
   * come back; false if none did.
   */
  private calibrate(): boolean {
    const tag = `${process.pid}.${this.cals.length}`;
    for (let i = 0; i < 3; i++) {
      const text = `${MARK} ${tag}.${i}`;
      const t0 = process.hrtime.bigint();
      writeSync(this.fd, text);
      const t1 = process.hrtime.bigint();
      this.marks.set(text, { t0, t1 });
    }
    let best: Calibration | undefined;
    this.drain((text, kmsgNs) => {
      const m = this.marks.get(text);
      if (!m) return;
      const c = { at: (m.t0 + m.t1) / 2n, offset: (m.t0 + m.t1) / 2n - kmsgNs, errorNs: (m.t1 - m.t0) / 2n };
      if (!best || c.errorNs < best.errorNs) best = c;
    });
    if (!best) return false;
    this.cals.push(best);
    return true;
  }

  private skipToEnd(): void {
    this.drain(() => undefined);
  }

  /** Read every record there is (non-blocking: EAGAIN ends it). */
  private drain(other?: (text: string, kmsgNs: bigint) => void): void {
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') {
          this.lost++;
          continue;
        }
        if (code === 'EAGAIN') return;
        throw err;
      }
      if (n <= 0) return;
      this.record(this.buf.toString('latin1', 0, n), other);
    }
  }

  /** "<prio>,<seq>,<usec>,<flags>;<text>\n[ KEY=value\n]...". */
  private record(rec: string, other?: (text: string, kmsgNs: bigint) => void): void {
    const semi = rec.indexOf(';');
    const head = rec.slice(0, semi).split(',');
    const eol = rec.indexOf('\n', semi);
    const text = rec.slice(semi + 1, eol < 0 ? undefined : eol);
    const kmsgNs = BigInt(head[2] ?? '0') * 1000n;
    if (other) other(text, kmsgNs);
    const victim = /^oom-kill:.*,oom_memcg=([^,]*),.*,pid=(\d+),/.exec(text);
    if (victim) (victim[1]!.includes(this.container) ? this.inCgroup : this.elsewhere).add(Number(victim[2]));
    const killed = /Killed process (\d+) \(([^)]*)\).* UID:(\d+) /.exec(text);
    if (!killed) return;
    const pid = Number(killed[1]);
    const reported = this.inCgroup.has(pid);
    const driver = killed[2] === this.task.comm && Number(killed[3]) === this.task.uid && !this.elsewhere.has(pid);
    if (reported || driver) this.kills.push({ pid, reported, kmsgNs, at: 0n });
  }
}

/** The offset at CLOCK_MONOTONIC `t`, on the line through the two calibrations. */
function offsetAt(a: Calibration, b: Calibration, t: bigint): bigint {
  if (b.at === a.at) return a.offset;
  return a.offset + ((b.offset - a.offset) * (t - a.at)) / (b.at - a.at);
}

/** Each run split at the kernel's kill: ms from the driver's stamp to it, and from it to the callback. */
export interface KillSplit {
  /** Per run (NaN where no kill record was matched). */
  readonly kernelMs: readonly number[];
  readonly fromKillMs: readonly number[];
  /** Runs without a kill record between their stamp and the next run's. */
  readonly unmatched: number;
  /** How far the clock's offset moved over the runs (NaN: calibrated once), and how far off it can be (half the tightest bracket), µs. */
  readonly driftUs: number;
  readonly errorUs: number;
  readonly lost: number;
  /** Kills the kernel wrote its OOM report for (the rest were rate-limited: no report). */
  readonly reported: number;
}

/** Run i's kill: the first record of the container's at or after its stamp and before the next run's. */
export function splitAtKill(kills: KernelKills, stamps: readonly bigint[], seen: readonly { at: bigint }[]): KillSplit {
  const { driftNs, errorNs } = kills.finish();
  const kernelMs: number[] = [];
  const fromKillMs: number[] = [];
  let unmatched = 0;
  let reported = 0;
  for (let i = 0; i < Math.min(stamps.length, seen.length); i++) {
    const k = kills.killBetween(stamps[i]!, stamps[i + 1] ?? seen[i]!.at + 1_000_000_000n);
    if (!k) unmatched++;
    else if (k.reported) reported++;
    kernelMs.push(k ? Number(k.at - stamps[i]!) / 1e6 : NaN);
    fromKillMs.push(k ? Number(seen[i]!.at - k.at) / 1e6 : NaN);
  }
  return { kernelMs, fromKillMs, unmatched, driftUs: driftNs === undefined ? NaN : Number(driftNs) / 1000, errorUs: Number(errorNs) / 1000, lost: kills.lost, reported };
}
