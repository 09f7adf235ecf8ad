/**
 * What the host and this process were doing while a section ran, to tell a slow run's cause:
 * the host's idle share every 100 ms (/proc/stat), how late this process's own 100 ms timer
 * fired (the event loop held up), and every garbage collection with its pause. One timer and
 * one small read every 100 ms: far below what it watches for.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { cpuTicks, idlePercent, type CpuTicks } from './settle.js';

const EVERY_MS = 100;

interface Sample {
  /** process.hrtime.bigint() at the sample, ns. */
  readonly at: bigint;
  readonly ticks: CpuTicks;
  /** How late the timer fired, ms. */
  readonly lagMs: number;
}

interface Gc {
  readonly start: bigint;
  readonly ms: number;
}

/** Beside one run [from, to]: the host's idle share, the event loop's lag and the GC pauses of that time. */
export interface RunContext {
  readonly hostIdlePercent: number;
  readonly maxLagMs: number;
  readonly gcMs: number;
}

export class HostTrace {
  private readonly samples: Sample[] = [];
  private readonly gcs: Gc[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly observer: PerformanceObserver;
  /** performance.now() 0 in hrtime ns: GC entries are on the performance clock. */
  private readonly origin = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));

  constructor() {
    let due = performance.now() + EVERY_MS;
    this.timer = setInterval(() => {
      const now = performance.now();
      this.samples.push({ at: process.hrtime.bigint(), ticks: cpuTicks(), lagMs: Math.max(0, now - due) });
      due = now + EVERY_MS;
    }, EVERY_MS);
    this.samples.push({ at: process.hrtime.bigint(), ticks: cpuTicks(), lagMs: 0 });
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.gcs.push({ start: this.origin + BigInt(Math.round(e.startTime * 1e6)), ms: e.duration });
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    clearInterval(this.timer);
    this.observer.disconnect();
  }

  /** The host's idle share over the whole trace, percent. */
  hostIdlePercent(): number {
    return idlePercent(this.samples[0]!.ticks, this.samples.at(-1)!.ticks);
  }

  /** The largest lag of this process's timer over the whole trace, and its GC pauses in all, ms. */
  loop(): { maxLagMs: number; gcCount: number; gcMaxMs: number } {
    return { maxLagMs: Math.max(0, ...this.samples.map((s) => s.lagMs)), gcCount: this.gcs.length, gcMaxMs: Math.max(0, ...this.gcs.map((g) => g.ms)) };
  }

  /** The samples around [from, to] (the one before `from` to the one after `to`): what the host and this process did then. */
  around(from: bigint, to: bigint): RunContext {
    const i = Math.max(0, this.samples.findLastIndex((s) => s.at <= from));
    let j = this.samples.findIndex((s) => s.at >= to);
    if (j < 0) j = this.samples.length - 1;
    const span = this.samples.slice(i, j + 1);
    const gcMs = this.gcs.filter((g) => g.start <= to && g.start + BigInt(Math.round(g.ms * 1e6)) >= from).reduce((a, g) => a + g.ms, 0);
    return { hostIdlePercent: idlePercent(span[0]!.ticks, span.at(-1)!.ticks), maxLagMs: Math.max(0, ...span.slice(1).map((s) => s.lagMs)), gcMs };
  }
}
