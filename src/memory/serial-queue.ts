/**
 * Tasks run one at a time, in the order they were queued: a task starts when the one before
 * it has settled, fulfilled or not. The pool's changes go through one: each spawns mount or
 * setfacl between reading its records and writing them, and two at once could each see the
 * other's half-made change.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
