/**
 * Brute-force protection: a source that fails authentication `failures` times within
 * `windowMs` is locked out for `durationMs`. Keyed by source address, not by
 * extension, so an attacker cannot lock a real user out of their own phone from
 * elsewhere.
 */
export class AuthLockout {
  readonly #failures: number;
  readonly #windowMs: number;
  readonly #durationMs: number;
  readonly #now: () => number;
  readonly #recent = new Map<string, number[]>();
  readonly #locked = new Map<string, number>();

  constructor(opts: { failures: number; windowMs: number; durationMs: number; now?: () => number }) {
    this.#failures = opts.failures;
    this.#windowMs = opts.windowMs;
    this.#durationMs = opts.durationMs;
    this.#now = opts.now ?? Date.now;
  }

  /** Epoch ms until which the source is locked out, or undefined. */
  lockedUntil(source: string): number | undefined {
    const until = this.#locked.get(source);
    if (until === undefined) return undefined;
    if (until <= this.#now()) {
      this.#locked.delete(source);
      return undefined;
    }
    return until;
  }

  /** Records a failure; returns the lock-out end when this failure triggered one. */
  recordFailure(source: string): { lockedUntil: number; failures: number } | undefined {
    const now = this.#now();
    const times = (this.#recent.get(source) ?? []).filter((t) => t > now - this.#windowMs);
    times.push(now);
    if (times.length >= this.#failures) {
      this.#recent.delete(source);
      const until = now + this.#durationMs;
      this.#locked.set(source, until);
      return { lockedUntil: until, failures: times.length };
    }
    this.#recent.set(source, times);
    return undefined;
  }

  recordSuccess(source: string): void {
    this.#recent.delete(source);
  }

  sweep(): void {
    const now = this.#now();
    for (const [source, until] of this.#locked) if (until <= now) this.#locked.delete(source);
    for (const [source, times] of this.#recent) if ((times[times.length - 1] ?? 0) <= now - this.#windowMs) this.#recent.delete(source);
  }

  get lockedCount(): number {
    return this.#locked.size;
  }
}
