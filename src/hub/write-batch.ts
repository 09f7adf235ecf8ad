import type { Duplex } from 'node:stream';

/**
 * Writes to one connection coalesced per turn of the event loop. The profile of the hub at
 * 64 calls in flight (docs/benchmarks.md) was dominated by `writev`: one system call per
 * frame sent. The receiver hands the hub every frame of a chunk it read in one go, and each
 * may send one or two frames on: corking the socket at the first write and uncorking it once
 * the current work is done (`process.nextTick`, before any I/O) puts all of them in one
 * `writev`. Nothing waits longer than the code that is already running, so latency does not
 * grow; queued bytes still count in `bufferedAmount` (the socket's writable length), so the
 * back-pressure limits see them.
 */
export class WriteBatch {
  private corked = false;

  constructor(private readonly socket: Duplex | undefined) {}

  /** Call before each write: the first one of a turn corks the socket until the turn ends. */
  hold(): void {
    const s = this.socket;
    if (this.corked || !s || s.destroyed) return;
    this.corked = true;
    s.cork();
    process.nextTick(release, this);
  }

  /** @internal */
  flush(): void {
    this.corked = false;
    const s = this.socket;
    if (s && !s.destroyed) s.uncork();
  }
}

function release(batch: WriteBatch): void {
  batch.flush();
}
