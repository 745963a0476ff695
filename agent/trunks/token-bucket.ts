/**
 * A call-rate throttle: `ratePerMinute` sustained, up to `burst` at once. Unlike the
 * SIP rate limiter (agent/security) it says how long until the next call would be
 * allowed, which becomes the Retry-After of the refusal.
 */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #at: number;

  constructor(opts: { ratePerMinute: number; burst: number; now: number }) {
    if (!(opts.ratePerMinute > 0)) throw new RangeError(`a call rate must be positive, got ${opts.ratePerMinute}`);
    if (!(opts.burst >= 1)) throw new RangeError(`a burst must be at least 1, got ${opts.burst}`);
    this.#perMs = opts.ratePerMinute / 60_000;
    this.#burst = opts.burst;
    this.#tokens = opts.burst;
    this.#at = opts.now;
  }

  /** Takes one token; when none is left, returns the milliseconds until one will be. */
  take(now: number): { ok: true } | { ok: false; waitMs: number } {
    this.#refill(now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return { ok: true };
    }
    return { ok: false, waitMs: Math.ceil((1 - this.#tokens) / this.#perMs) };
  }

  /** Tokens available now (fractional while refilling). */
  available(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  #refill(now: number): void {
    if (now > this.#at) this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#perMs);
    this.#at = Math.max(this.#at, now);
  }
}
