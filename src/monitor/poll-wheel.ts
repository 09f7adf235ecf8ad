/**
 * Periodic work for many items on one timer, spread over the period instead of done in one
 * burst. Each item is ticked once per `periodMs`, in one of `slots` phases of the period (the
 * phase with the fewest items when it is added), and the timer wakes once per phase. With
 * 200 plugins a burst of all their reads at once held the event loop for milliseconds, and
 * every hub call that arrived meanwhile waited that long (docs/performance.md#scale). Not
 * more phases than needed: on the test VM every wake-up of the process costs about 0.1 ms
 * of CPU by itself (a 50 ms timer is 0.2% of a core, a 100 ms one 0.12%).
 */
export class PollWheel<T> {
  private readonly phases: Set<T>[];
  private readonly phaseOf = new Map<T, number>();
  private next = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly periodMs: number,
    private readonly tick: (item: T) => void,
    slots = 5,
    /** Called after each phase's items: work paced over the same wake-ups (the monitor's slow reads, slow-reads.ts), no timer of its own. */
    private readonly afterTurn?: () => void,
  ) {
    // Phases shorter than a few milliseconds would wake the loop for nothing.
    const n = Math.max(1, Math.min(slots, Math.floor(periodMs / 5)));
    this.phases = Array.from({ length: n }, () => new Set<T>());
  }

  get size(): number {
    return this.phaseOf.size;
  }

  add(item: T): void {
    if (this.phaseOf.has(item)) return;
    let best = 0;
    for (let i = 1; i < this.phases.length; i++) if (this.phases[i]!.size < this.phases[best]!.size) best = i;
    this.phases[best]!.add(item);
    this.phaseOf.set(item, best);
    if (!this.timer) {
      this.timer = setInterval(() => this.turn(), this.periodMs / this.phases.length);
      this.timer.unref();
    }
  }

  remove(item: T): void {
    const i = this.phaseOf.get(item);
    if (i === undefined) return;
    this.phases[i]!.delete(item);
    this.phaseOf.delete(item);
    if (this.phaseOf.size === 0) this.stop();
  }

  /** One phase: its items, each once (one removed meanwhile is skipped). An item that throws does not stop the others. */
  private turn(): void {
    const phase = this.phases[this.next]!;
    this.next = (this.next + 1) % this.phases.length;
    for (const item of phase) {
      try {
        this.tick(item);
      } catch {
        // The tick reports its own failures (PluginWatch.safely); nothing to do here.
      }
    }
    this.afterTurn?.();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.next = 0;
  }

  clear(): void {
    this.stop();
    for (const p of this.phases) p.clear();
    this.phaseOf.clear();
  }
}
