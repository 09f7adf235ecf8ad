/**
 * Periodic work of many parts of the controller on shared timers: every callback of one
 * period runs in the same wake-up of the process. On the test VM each wake-up of an idle
 * Node.js process costs CPU whatever it then does (an empty 100 ms interval timer alone is
 * about 0.12% of a core), and the controller had a 100 ms timer each for the monitor's
 * polls, the kernel log and the audit daemon's log, which Node.js fires in separate
 * wake-ups unless they were started in the same millisecond (docs/performance.md#scale).
 * One interval per period, made for the first callback and cleared after the last, never
 * keeping the process alive (unref), as the timers it replaces.
 */

/** A callback on the ticker; `stop` takes it off (idempotent). */
export interface Tick {
  stop(): void;
}

interface Group {
  readonly callbacks: Set<() => void>;
  readonly timer: NodeJS.Timeout;
}

const groups = new Map<number, Group>();

/** Run `fn` every `periodMs`, in the same wake-up as every other callback of that period. */
export function every(periodMs: number, fn: () => void): Tick {
  let group = groups.get(periodMs);
  if (!group) {
    const callbacks = new Set<() => void>();
    const timer = setInterval(() => runAll(callbacks), periodMs);
    timer.unref();
    group = { callbacks, timer };
    groups.set(periodMs, group);
  }
  // A wrapper per call: the same function twice is two callbacks, each stopped by its own handle.
  const cb = () => fn();
  group.callbacks.add(cb);
  const g = group;
  return {
    stop() {
      if (!g.callbacks.delete(cb) || g.callbacks.size > 0) return;
      clearInterval(g.timer);
      if (groups.get(periodMs) === g) groups.delete(periodMs);
    },
  };
}

/** Each callback once (one stopped meanwhile by an earlier one is skipped); one that throws does not stop the others, and its error is thrown as its own timer's would be. */
function runAll(callbacks: Set<() => void>): void {
  for (const cb of callbacks) {
    try {
      cb();
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}
