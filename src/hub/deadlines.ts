/**
 * Call timeouts without a timer a call. Each open call is a node of the list of calls with
 * the same timeout: added at its tail, so each list is in deadline order, and taken out in
 * O(1) when answered. One timer, armed for the earliest deadline of all the lists' heads,
 * takes out and expires every call whose deadline has passed, then arms for the next. A
 * per-call `setTimeout` cost a Timeout object, a closure and its clearTimeout each call (3%
 * of the hub's CPU at 64 calls in flight; docs/performance.md#the-hub).
 *
 * Precision: a call expires at its deadline, or up to SLACK_MS after it (plus the event
 * loop's own delay): a call whose deadline falls less than SLACK_MS before the armed timer
 * waits for that timer instead of arming a new one.
 */
export const SLACK_MS = 50;

/** What Deadlines keeps of a call: set and read only here. */
export interface Timed {
  deadline: number;
  prevTimed: Timed | undefined;
  nextTimed: Timed | undefined;
  timedList: TimedList | undefined;
}

class TimedList {
  head: Timed | undefined = undefined;
  tail: Timed | undefined = undefined;

  constructor(readonly timeoutMs: number) {}
}

export class Deadlines<T extends Timed> {
  private readonly lists = new Map<number, TimedList>();
  private last: TimedList | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** performance.now() the timer fires at (Infinity when none is armed). */
  private armedFor = Infinity;

  constructor(private readonly expired: (item: T) => void) {}

  /** Time `item` out `timeoutMs` after `now` (performance.now()). */
  add(item: T, timeoutMs: number, now: number): void {
    let list = this.last;
    if (list === undefined || list.timeoutMs !== timeoutMs) {
      list = this.lists.get(timeoutMs);
      if (list === undefined) this.lists.set(timeoutMs, (list = new TimedList(timeoutMs)));
      this.last = list;
    }
    item.deadline = now + timeoutMs;
    item.timedList = list;
    item.prevTimed = list.tail;
    item.nextTimed = undefined;
    if (list.tail) list.tail.nextTimed = item;
    else list.head = item;
    list.tail = item;
    if (item.deadline < this.armedFor - SLACK_MS) this.arm(item.deadline, now);
  }

  /** `item` will not time out (answered, or gone). Nothing when it is not in a list. */
  remove(item: T): void {
    const list = item.timedList;
    if (list === undefined) return;
    if (item.prevTimed) item.prevTimed.nextTimed = item.nextTimed;
    else list.head = item.nextTimed;
    if (item.nextTimed) item.nextTimed.prevTimed = item.prevTimed;
    else list.tail = item.prevTimed;
    item.prevTimed = item.nextTimed = item.timedList = undefined;
    // An empty list goes, so that a caller cycling through timeouts cannot grow the map.
    if (list.head === undefined) {
      this.lists.delete(list.timeoutMs);
      if (this.last === list) this.last = undefined;
    }
  }

  /** The lists kept: one per timeout in use (an empty one goes at once). */
  get listCount(): number {
    return this.lists.size;
  }

  /** No timer left behind. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  private arm(at: number, now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = at;
    // Unref'd as the timers of each call were not: what keeps the process alive is the hub's
    // sockets, and a call cannot outlive them (closing the hub fails every call).
    this.timer = setTimeout(() => this.sweep(), Math.max(0, Math.ceil(at - now))).unref();
  }

  private sweep(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = performance.now();
    const due: Timed[] = [];
    for (const list of this.lists.values()) {
      for (let t = list.head; t !== undefined && t.deadline <= now; t = t.nextTimed) due.push(t);
    }
    // Expired after the walk: expiring one settles it, which takes it out of its list.
    for (const t of due) {
      this.remove(t as T);
      this.expired(t as T);
    }
    let next = Infinity;
    for (const list of this.lists.values()) if (list.head && list.head.deadline < next) next = list.head.deadline;
    if (next !== Infinity && next < this.armedFor) this.arm(next, performance.now());
  }
}
