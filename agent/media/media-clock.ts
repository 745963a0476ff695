// The one packet clock of the engine: a single timer that ticks every 20 ms and
// drives every session that generates audio (tones, prompts, RFC 4733 events,
// RTCP). Tick k is due at start + k·period on the monotonic clock, so lateness of
// one tick never shifts the next (no drift from accumulated setTimeout delays).
//
// One timer for all sessions rather than one per stream: 200 calls would otherwise
// arm 400 timers 50 times a second, each waking the event loop on its own.
//
// With no listener (no session generates audio: an idle agent) the timer is not
// armed: 50 wake-ups a second for nobody kept V8 compiling and collecting in an idle
// agent (~1.2 MB of its RSS, docs/decisions/0004-single-executable.md). The grid
// stays the same: the first listener added resumes at the next tick due after now,
// and ticks that passed with nobody listening are neither delivered nor counted.

export type TickListener = (tick: number, dueAt: number) => void;

export interface MediaClockOptions {
  /** Tick period in ms; 20 for G.711 at 20 ms ptime. */
  periodMs?: number;
  /**
   * Ticks a late clock still delivers back to back before it gives up and jumps
   * ahead. Catching up a few ticks keeps a far-end jitter buffer fed after a short
   * stall (GC); beyond that the frames are stale and are skipped (counted).
   */
  maxCatchUpTicks?: number;
  /** For tests: where monotonic time comes from (ms). */
  now?: () => number;
}

export interface MediaClockStats {
  ticks: number;
  skippedTicks: number;
  listeners: number;
  /** How late ticks were dispatched, over all ticks since start or resetStats(). */
  lateP50Ms: number;
  lateP99Ms: number;
  lateMaxMs: number;
}

// Lateness histogram: 0.1 ms buckets up to 50 ms, the last bucket catching the rest.
const BUCKET_MS = 0.1;
const BUCKETS = 501;

export class MediaClock {
  readonly periodMs: number;
  readonly maxCatchUpTicks: number;
  readonly #now: () => number;
  readonly #listeners = new Set<TickListener>();
  readonly #histogram = new Uint32Array(BUCKETS);
  #startedAt = 0;
  #nextTick = 0;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** Inside #fire: the timer is re-armed at its end, not by an add() from a listener. */
  #firing = false;
  #ticks = 0;
  #skipped = 0;
  #lateMax = 0;
  #onError: ((err: unknown) => void) | undefined;

  constructor(options: MediaClockOptions = {}) {
    this.periodMs = options.periodMs ?? 20;
    this.maxCatchUpTicks = options.maxCatchUpTicks ?? 5;
    this.#now = options.now ?? (() => performance.now());
  }

  get running(): boolean {
    return this.#running;
  }

  /** Index of the next tick to be dispatched. */
  get nextTick(): number {
    return this.#nextTick;
  }

  /** The (fractional) tick index for a monotonic time; ticks start at 0. */
  tickAt(time: number): number {
    return (time - this.#startedAt) / this.periodMs;
  }

  /** When tick `tick` is due, on the monotonic clock. */
  dueAt(tick: number): number {
    return this.#startedAt + tick * this.periodMs;
  }

  /** A listener that throws is reported here and does not stop the clock. */
  start(onError?: (err: unknown) => void): void {
    if (this.#running) return;
    this.#running = true;
    this.#onError = onError;
    this.#startedAt = this.#now();
    this.#nextTick = 1;
    if (this.#listeners.size > 0) this.#schedule();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Adds a listener; returns the function that removes it. */
  add(listener: TickListener): () => void {
    this.#listeners.add(listener);
    if (this.#running && this.#timer === undefined && !this.#firing) {
      // Resuming after a time without listeners: the next tick due from now on.
      this.#nextTick = Math.max(this.#nextTick, Math.floor(this.tickAt(this.#now())) + 1);
      this.#schedule();
    }
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #schedule(): void {
    if (!this.#running || this.#listeners.size === 0) return; // add() re-arms
    const delay = this.dueAt(this.#nextTick) - this.#now();
    // setTimeout rounds to whole milliseconds and never fires early by its own
    // measure, so a fractional delay is rounded down: firing up to 1 ms early is
    // caught in #fire (nothing due yet → re-arm), firing late is what we measure.
    this.#timer = setTimeout(this.#fire, Math.max(0, Math.floor(delay)));
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    if (!this.#running) return;
    if (this.#listeners.size === 0) return; // idle until add()
    this.#firing = true;
    try {
      this.#dispatchDue();
    } finally {
      this.#firing = false;
    }
    this.#schedule();
  };

  #dispatchDue(): void {
    const now = this.#now();
    let behind = Math.floor(this.tickAt(now)) - this.#nextTick + 1;
    if (behind > this.maxCatchUpTicks) {
      const skip = behind - this.maxCatchUpTicks;
      this.#skipped += skip;
      this.#nextTick += skip;
      behind = this.maxCatchUpTicks;
    }
    for (let i = 0; i < behind; i++) {
      const tick = this.#nextTick++;
      const due = this.dueAt(tick);
      this.#record(this.#now() - due);
      this.#ticks++;
      for (const listener of this.#listeners) {
        try {
          listener(tick, due);
        } catch (err) {
          this.#onError?.(err);
        }
      }
    }
  }

  #record(lateMs: number): void {
    const late = lateMs < 0 ? 0 : lateMs;
    if (late > this.#lateMax) this.#lateMax = late;
    const bucket = Math.min(BUCKETS - 1, Math.floor(late / BUCKET_MS));
    this.#histogram[bucket]!++;
  }

  #quantile(q: number): number {
    let total = 0;
    for (const n of this.#histogram) total += n;
    if (total === 0) return 0;
    const target = Math.ceil(q * total);
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.#histogram[b]!;
      if (seen >= target) return (b + 1) * BUCKET_MS;
    }
    return this.#lateMax;
  }

  stats(): MediaClockStats {
    return {
      ticks: this.#ticks,
      skippedTicks: this.#skipped,
      listeners: this.#listeners.size,
      lateP50Ms: Math.min(this.#quantile(0.5), this.#lateMax),
      lateP99Ms: Math.min(this.#quantile(0.99), this.#lateMax),
      lateMaxMs: this.#lateMax,
    };
  }

  resetStats(): void {
    this.#histogram.fill(0);
    this.#lateMax = 0;
    this.#ticks = 0;
    this.#skipped = 0;
  }
}
