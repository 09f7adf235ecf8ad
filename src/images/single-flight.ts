/**
 * One run of a task per key at a time: a caller that asks while one is under way gets the
 * same promise, and the key is free again once it settles (fulfilled or not). Builds use it
 * so that concurrent starts of plugins sharing an image make one build, not several.
 */
export class SingleFlight<T> {
  private readonly inFlight = new Map<string, Promise<T>>();

  run(key: string, fn: () => Promise<T>): Promise<T> {
    let p = this.inFlight.get(key);
    if (!p) {
      p = fn().finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }
}
