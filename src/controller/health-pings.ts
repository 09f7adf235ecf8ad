/**
 * The health pings of every ready plugin on one timer. A timer per plugin woke the
 * controller once per ping: with 200 plugins pinged every 5 s that was 40 wake-ups a
 * second, and on the test VM each wake-up of an idle Node.js process costs about 0.1 ms of
 * CPU whatever it then does (a 50 ms interval timer alone is 0.2% of a core). Here one
 * timer turns every TURN_MS and sends the pings that are due, so a plugin is pinged every
 * intervalMs, at most TURN_MS late, and the pongs of one turn arrive together.
 */
const TURN_MS = 250;

/**
 * A plugin that answered one of its calls this recently is not pinged at this check: the
 * answer shows what the pong would (its process reads the hub and answers). No older: a
 * plugin found hung is found at most this much later than by a ping, as a ping may be late
 * by a turn anyway. Under calls every plugin answers all the time, and its ping, its pong,
 * its wake-up and the controller's handling of the pong (each came 5-10 times more often
 * within a slow call than by chance: docs/performance.md#the-spread-calls-tail-the-controllers-side)
 * are skipped; an idle plugin is pinged as before.
 */
export const ANSWER_PROVES_MS = TURN_MS;

interface Due {
  at: number;
  readonly everyMs: number;
  readonly ping: () => void;
}

export class HealthPings<K> {
  private readonly due = new Map<K, Due>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly turnMs = TURN_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.due.size;
  }

  /** Ping `key` every `everyMs` from now on (the first in `everyMs`), replacing an earlier schedule of it. */
  add(key: K, everyMs: number, ping: () => void): void {
    this.due.set(key, { at: this.now() + everyMs, everyMs, ping });
    if (!this.timer) {
      this.timer = setInterval(() => this.turn(), this.turnMs);
      this.timer.unref();
    }
  }

  remove(key: K): void {
    if (!this.due.delete(key) || this.due.size > 0) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private turn(): void {
    const now = this.now();
    for (const d of this.due.values()) {
      if (d.at > now) continue;
      // The next one interval after this one; after a stall (the event loop held up), not a catch-up burst.
      d.at = Math.max(d.at + d.everyMs, now + d.everyMs / 2);
      d.ping();
    }
  }
}
