/**
 * Token bucket per source address. Memory is bounded: buckets that have refilled
 * completely carry no information and are swept.
 */
export class RateLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #now: () => number;

  constructor(opts: { perSecond: number; burst: number; now?: () => number }) {
    this.#rate = opts.perSecond / 1000;
    this.#burst = opts.burst;
    this.#now = opts.now ?? Date.now;
  }

  /** Takes one token for `key`; false when the source is over its rate. */
  take(key: string): boolean {
    const now = this.#now();
    const b = this.#buckets.get(key);
    if (!b) {
      this.#buckets.set(key, { tokens: this.#burst - 1, at: now });
      return true;
    }
    b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  sweep(): void {
    const now = this.#now();
    for (const [key, b] of this.#buckets) {
      if (b.tokens + (now - b.at) * this.#rate >= this.#burst) this.#buckets.delete(key);
    }
  }

  get size(): number {
    return this.#buckets.size;
  }
}
