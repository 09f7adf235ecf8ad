/**
 * The monitor's slow /proc reads (open files and /tmp: procfs-check.ts), paced host-wide.
 * Each plugin's are due every `baseMs` (pollMs × slowEvery, 1.5 s by default), but at most
 * `maxPerSecond` plugins' are done in a second across the monitor: past `maxPerSecond ×
 * baseMs` plugins (60 by default) each one's interval grows with the count, as the Docker
 * health check's spacing does (src/sandbox/health-check.ts). At 200 idle plugins the reads
 * were 133 a second and 0.58% of a core of the controller's 2.3% (docs/performance.md#scale).
 * What they watch the kernel enforces itself (RLIMIT_NOFILE, the tmpfs size): the reads are
 * the early warning, and their latency is stated per count in docs/monitoring.md.
 */

/** Slow reads a second host-wide by default: 200 plugins are each read every 5 s. */
export const SLOW_READS_PER_SECOND = 40;

/**
 * After a stall of the event loop (a busy host), the reads missed are not caught up in one
 * burst: at most this much time's worth is carried over.
 */
const CATCH_UP_MS = 250;

/** Slow reads a second for `watches` plugins: each every `baseMs`, capped at `maxPerSecond`. */
export function slowReadRate(watches: number, baseMs: number, maxPerSecond = SLOW_READS_PER_SECOND): number {
  if (watches <= 0) return 0;
  return Math.min((watches * 1000) / baseMs, maxPerSecond);
}

/** The time between two slow reads of one plugin, ms: `baseMs`, or longer past `maxPerSecond × baseMs` plugins. */
export function slowReadInterval(watches: number, baseMs: number, maxPerSecond = SLOW_READS_PER_SECOND): number {
  return Math.max(baseMs, (Math.max(0, watches) * 1000) / maxPerSecond);
}

/**
 * The plugins in a ring, read in turn at the pace of slowReadRate: `turn()` (called at each
 * wake-up of the monitor's poll wheel, no timer of its own) does the reads due since the
 * last turn, so every plugin's are evenly spaced whatever the wheel's phases. A plugin added
 * joins the ring's end: its first read within one interval.
 */
export class SlowReads<T> {
  private readonly ring: T[] = [];
  private cursor = 0;
  private credit = 0;
  private last: number | undefined;

  constructor(
    private readonly baseMs: number,
    private readonly maxPerSecond: number,
    private readonly read: (item: T) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(baseMs > 0) || !(maxPerSecond > 0)) throw new RangeError('slow reads need a positive interval and rate');
  }

  get size(): number {
    return this.ring.length;
  }

  add(item: T): void {
    if (this.ring.includes(item)) return;
    this.ring.push(item);
  }

  remove(item: T): void {
    const i = this.ring.indexOf(item);
    if (i < 0) return;
    this.ring.splice(i, 1);
    // The item after the removed one keeps its place in the order.
    if (i < this.cursor) this.cursor--;
    if (this.cursor >= this.ring.length) this.cursor = 0;
    if (this.ring.length === 0) {
      this.credit = 0;
      this.last = undefined;
    }
  }

  /** The reads due now: the next plugins of the ring, as many as the pace allows since the last turn. An item that throws does not stop the others. */
  turn(): void {
    const t = this.now();
    const elapsed = this.last === undefined ? 0 : Math.max(0, t - this.last);
    this.last = t;
    const rate = slowReadRate(this.ring.length, this.baseMs, this.maxPerSecond);
    this.credit = Math.min(this.credit + (rate * elapsed) / 1000, Math.max(1, (rate * CATCH_UP_MS) / 1000));
    while (this.credit >= 1 && this.ring.length > 0) {
      this.credit--;
      const item = this.ring[this.cursor]!;
      this.cursor = (this.cursor + 1) % this.ring.length;
      try {
        this.read(item);
      } catch {
        // The read reports its own failures (PluginWatch.safely); nothing to do here.
      }
    }
  }
}
