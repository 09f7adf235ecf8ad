/**
 * A token bucket: `rate` tokens a second, holding at most `burst`. One message costs one
 * token; a sender with none left is refused until the bucket refills.
 */
export class TokenBucket {
  private tokens: number;
  private refilledAt = Date.now();
  private noticedAt = 0;

  constructor(
    readonly rate: number,
    private readonly burst = rate * 2,
  ) {
    this.tokens = burst;
  }

  take(): boolean {
    if (!this.peek()) return false;
    this.tokens -= 1;
    return true;
  }

  /** Is a token left now (refilled for the time passed), without taking it? */
  peek(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.rate);
    this.refilledAt = now;
    return this.tokens >= 1;
  }

  /** True at most once a second: may the sender be told (again) that it is over the limit? */
  notice(): boolean {
    const now = Date.now();
    if (now - this.noticedAt < 1_000) return false;
    this.noticedAt = now;
    return true;
  }
}
