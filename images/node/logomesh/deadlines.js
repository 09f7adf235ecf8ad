// Exchange timeouts without a timer an exchange (the same design as the hub's
// src/hub/deadlines.ts). Each waiting exchange is a node of the list of those with the same
// wait: added at its tail, so each list is in deadline order, and taken out in O(1) when
// answered. One timer, armed for the earliest deadline of the lists' heads, expires every
// exchange whose deadline has passed, then arms for the next. A setTimeout a call cost a
// Timeout object, a closure and a clearTimeout on each call of plugin.call().
//
// Precision: an exchange expires at its deadline or up to SLACK_MS after it (plus the event
// loop's delay). For a call this is the backstop after the hub's own timeout answer
// (TIMEOUT_BACKSTOP_MS later): the hub's LM_TIMEOUT normally comes first.

export const SLACK_MS = 50;

class List {
  constructor(waitMs) {
    this.waitMs = waitMs;
    this.head = undefined;
    this.tail = undefined;
  }
}

/** An item: any object with the fields deadline, prevTimed, nextTimed and timedList (set here). */
export class Deadlines {
  /** @param {(item: object) => void} expired */
  constructor(expired) {
    this.expired = expired;
    this.lists = new Map();
    this.last = undefined;
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  /** Expire `item` `waitMs` from now. */
  add(item, waitMs) {
    let list = this.last;
    if (list === undefined || list.waitMs !== waitMs) {
      list = this.lists.get(waitMs);
      if (list === undefined) this.lists.set(waitMs, (list = new List(waitMs)));
      this.last = list;
    }
    const now = performance.now();
    item.deadline = now + waitMs;
    item.timedList = list;
    item.prevTimed = list.tail;
    item.nextTimed = undefined;
    if (list.tail) list.tail.nextTimed = item;
    else list.head = item;
    list.tail = item;
    if (item.deadline < this.armedFor - SLACK_MS) this.arm(item.deadline, now);
  }

  /** `item` will not expire (answered, or failed otherwise). Nothing when it is in no list. */
  remove(item) {
    const list = item.timedList;
    if (list === undefined) return;
    if (item.prevTimed) item.prevTimed.nextTimed = item.nextTimed;
    else list.head = item.nextTimed;
    if (item.nextTimed) item.nextTimed.prevTimed = item.prevTimed;
    else list.tail = item.prevTimed;
    item.prevTimed = item.nextTimed = item.timedList = undefined;
    if (list.head === undefined) {
      this.lists.delete(list.waitMs);
      if (this.last === list) this.last = undefined;
    }
  }

  arm(at, now) {
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = at;
    // Unref'd: an exchange cannot outlive its connection (closing fails every one), and the
    // connection is what keeps the process alive.
    this.timer = setTimeout(() => this.sweep(), Math.max(0, Math.ceil(at - now)));
    this.timer.unref();
  }

  sweep() {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = performance.now();
    const due = [];
    for (const list of this.lists.values()) {
      for (let t = list.head; t !== undefined && t.deadline <= now; t = t.nextTimed) due.push(t);
    }
    for (const t of due) {
      this.remove(t);
      this.expired(t);
    }
    let next = Infinity;
    for (const list of this.lists.values()) if (list.head && list.head.deadline < next) next = list.head.deadline;
    if (next !== Infinity && next < this.armedFor) this.arm(next, performance.now());
  }
}
