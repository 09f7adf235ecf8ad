/** The longest wait setTimeout accepts (2^31-1 ms, about 24 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * When temporary grants run out: one timer per key (`plugin:method`, `plugin:topic:t`,
 * `plugin:path:name`), a new one replacing whatever was due under the same key. Timers are
 * unref'd: a pending expiry never keeps the process alive.
 */
export class ExpiryTimers {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  /** Run `fn` at `at` (ms since the epoch); a longer wait than setTimeout takes is made in steps. */
  schedule(key: string, at: number, fn: () => void): void {
    clearTimeout(this.timers.get(key));
    const timer = setTimeout(
      () => {
        if (Date.now() < at) return this.schedule(key, at, fn);
        this.timers.delete(key);
        fn();
      },
      Math.min(Math.max(at - Date.now(), 0), MAX_TIMER_MS),
    );
    timer.unref();
    this.timers.set(key, timer);
  }

  cancel(key: string): void {
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
  }

  /** Cancel every pending expiry (the controller is closing; the saved ones resume under its successor). */
  clear(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }
}
