/**
 * The calls in flight by id, without a hash table that churns. A `Map` keyed by each call's
 * id rehashes into a new table every few calls (its deleted entries fill it). With the
 * pending calls in such Maps, the controller at 64 calls in flight spent whole seconds in a
 * state where each scavenge promoted about 0.7 MB of calls long answered (the heap profiler
 * named the calls and the Maps' `set` and `delete`), until a full collection; with this table
 * it was not seen in 16 windows (docs/performance.md#the-hub). A likely cause, not proven: V8
 * links each obsolete table to its successor, so one that reached the old generation keeps the
 * later ones, and the calls they held, reachable for the scavenger.
 *
 * Here the hub's ids (`h` and base-36 digits, hub.ts nextId) pick a slot of one array made
 * once by their last digits: consecutive ids take consecutive slots, and a slot is emptied
 * when its call ends, so nothing finished stays reachable. An id whose slot is taken (a call
 * still open after SLOTS later ones) or that is not the hub's goes to a Map beside it.
 */
export const SLOTS = 4096;

export class CallTable<T> {
  private readonly ids: (string | undefined)[] = new Array<string | undefined>(SLOTS).fill(undefined);
  private readonly values: (T | undefined)[] = new Array<T | undefined>(SLOTS).fill(undefined);
  private readonly overflow = new Map<string, T>();
  private inSlots = 0;

  get size(): number {
    return this.inSlots + this.overflow.size;
  }

  /** Add a call under an id not in the table. */
  set(id: string, value: T): void {
    const i = slotOf(id);
    if (this.ids[i] === undefined) {
      this.ids[i] = id;
      this.values[i] = value;
      this.inSlots++;
    } else this.overflow.set(id, value);
  }

  get(id: string): T | undefined {
    const i = slotOf(id);
    if (this.ids[i] === id) return this.values[i];
    return this.overflow.size === 0 ? undefined : this.overflow.get(id);
  }

  delete(id: string): boolean {
    const i = slotOf(id);
    if (this.ids[i] === id) {
      this.ids[i] = undefined;
      this.values[i] = undefined;
      this.inSlots--;
      return true;
    }
    return this.overflow.size !== 0 && this.overflow.delete(id);
  }

  /** Every entry, a copy: the caller may delete while it walks them. */
  entries(): [string, T][] {
    const out: [string, T][] = [];
    if (this.inSlots > 0) for (let i = 0; i < SLOTS; i++) if (this.ids[i] !== undefined) out.push([this.ids[i]!, this.values[i]!]);
    for (const e of this.overflow) out.push(e);
    return out;
  }
}

/** The slot of an id: its last three characters read as base-36 digits (any other character still gives a slot). */
function slotOf(id: string): number {
  let v = 0;
  for (let i = id.length < 3 ? 0 : id.length - 3; i < id.length; i++) {
    const c = id.charCodeAt(i);
    v = v * 36 + (c <= 0x39 ? c - 0x30 : c - 0x57);
  }
  return v & (SLOTS - 1);
}
