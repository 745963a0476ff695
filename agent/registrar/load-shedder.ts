// Load shedding for the registrar. Past capacity, answering every REGISTER late
// makes phones retransmit (every 500 ms over UDP), the retransmissions add to the
// load, and every phone is served badly. Instead, when the agent falls behind it
// answers new REGISTERs `503 Service Unavailable` with a Retry-After, which costs
// almost nothing, and keeps serving the registrations already in progress.
//
// Three signals say the agent is behind:
// - event-loop utilization over the last second: the share of time the JavaScript
//   thread was busy. Over UDP this is the one that moves: Node reads at most a few
//   dozen datagrams per turn of the event loop, so a saturated agent keeps timers
//   nearly on time while requests wait in the kernel's socket buffer (measured: at
//   5,000 REGISTER/s offered and ~900/s served, event-loop delay stayed 15-60 ms and
//   pending writes under 160, utilization 1.00; at a rate it kept up with, 0.6-0.9);
// - event-loop delay: how late a timer fires (the worst in the last 250 ms): a
//   process stalled by long GC pauses or starved of CPU;
// - pending store writes: registrations waiting for their SQLite commit (every 200 OK
//   waits for one); a store that cannot keep up shows here.
// Two levels:
// - past a bound: REGISTERs without credentials get 503 (their 401 would start new
//   work): all of them while the store is behind, otherwise a share that grows while
//   the agent stays overloaded (see ADMIT_CUT); REGISTERs with credentials (whose
//   challenge was already paid for, and which finish a registration) are served;
// - past twice the delay or pending-writes bound: every new REGISTER gets 503.
// Retransmissions of a REGISTER whose transaction is live never reach the registrar
// (the transaction layer absorbs them), so they are never shed.

import { monitorEventLoopDelay, performance, type ELDHistogram, type EventLoopUtilization } from 'node:perf_hooks';

export interface OverloadSettings {
  /** Event-loop utilization (0-1, mean over the last second) past which new REGISTERs are shed; 0 = not used. */
  max_utilization: number;
  /** Event-loop delay (ms, worst in the last sampling window) past which REGISTERs are shed; 0 = not used. */
  max_event_loop_lag_ms: number;
  /** Registrations waiting for their store commit past which REGISTERs are shed; 0 = not used. */
  max_pending_writes: number;
  /** Seconds; a 503 says Retry-After between this and twice this (spread, so phones do not come back together). */
  retry_after: number;
}

export type OverloadLevel = 'normal' | 'shed-new' | 'shed-all';

export interface LoadSignals {
  utilization: number;
  lagMs: number;
  pendingWrites: number;
}

/** The shedding level for the current signals (pure: the rule, apart from its measurement). */
export function overloadLevel(signals: LoadSignals, limits: OverloadSettings): OverloadLevel {
  const ratio = Math.max(
    limits.max_event_loop_lag_ms > 0 ? signals.lagMs / limits.max_event_loop_lag_ms : 0,
    limits.max_pending_writes > 0 ? signals.pendingWrites / limits.max_pending_writes : 0,
  );
  if (ratio > 2) return 'shed-all';
  if (ratio > 1) return 'shed-new';
  if (limits.max_utilization > 0 && signals.utilization > limits.max_utilization) return 'shed-new';
  return 'normal';
}

/**
 * A shedding episode, for the two log lines an operator sees: when the agent starts
 * shedding, and when it has been back to normal for a second (the level itself
 * moves with every commit, which is not worth a line each).
 */
export interface EpisodeReport {
  phase: 'started' | 'ended';
  level: OverloadLevel;
  utilization: number;
  lagMs: number;
  pendingWrites: number;
  /** 'ended': REGISTERs answered 503 during the episode, and how long it lasted. */
  shed?: number;
  durationMs?: number;
}

const WINDOW_MS = 250;
/** Utilization is the mean of this many windows (one second). */
const UTILIZATION_WINDOWS = 4;
const CALM_MS = 1000;
/**
 * The share of new REGISTERs let through, adjusted every window: cut by a quarter
 * while overloaded, raised by a tenth of the whole when not (all at once when the
 * loop was busy less than half the bound over the last second). Shedding every new
 * REGISTER until the signals clear would flap (the 503s themselves keep the loop
 * busy); this settles at what the agent can serve. Never below 5 %, so phones are
 * never all turned away.
 */
const ADMIT_CUT = 0.75;
const ADMIT_RAISE = 0.1;
const ADMIT_MIN = 0.05;

export class LoadShedder {
  readonly #limits: OverloadSettings;
  readonly #pendingWrites: () => number;
  readonly #report: (report: EpisodeReport) => void;
  readonly #random: () => number;
  #histogram: ELDHistogram | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lagMs = 0;
  #utilization = 0;
  readonly #windows: number[] = [];
  #eluMark: EventLoopUtilization | undefined;
  #admit = 1;
  /** performance.now() when the episode began; undefined when not shedding. */
  #episodeStart: number | undefined;
  #lastOverloaded = 0;
  #worst: OverloadLevel = 'normal';
  #shedInEpisode = 0;
  #shedTotal = 0;

  constructor(limits: OverloadSettings, pendingWrites: () => number, report: (report: EpisodeReport) => void, random: () => number = Math.random) {
    this.#limits = limits;
    this.#pendingWrites = pendingWrites;
    this.#report = report;
    this.#random = random;
  }

  /** REGISTERs answered 503 since start. */
  get shedTotal(): number {
    return this.#shedTotal;
  }

  /** The share of new REGISTERs currently let through (1 when not overloaded). */
  get admitted(): number {
    return this.#admit;
  }

  get started(): boolean {
    return this.#timer !== undefined;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    if (this.#limits.max_event_loop_lag_ms > 0) {
      this.#histogram = monitorEventLoopDelay({ resolution: 10 });
      this.#histogram.enable();
    }
    this.#eluMark = performance.eventLoopUtilization();
    this.#timer = setInterval(() => this.#tick(), WINDOW_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#histogram?.disable();
    this.#histogram = undefined;
  }

  /**
   * Whether to answer this new REGISTER 503. Pending writes are read now (they move
   * faster than a window); utilization and delay come from the last windows.
   */
  shouldShed(hasCredentials: boolean): boolean {
    const { level, pendingWrites } = this.#observe();
    const storeBehind = this.#limits.max_pending_writes > 0 && pendingWrites > this.#limits.max_pending_writes;
    const shed = level === 'shed-all' || (!hasCredentials && (storeBehind || (this.#admit < 1 && this.#random() >= this.#admit)));
    if (shed) {
      this.#shedInEpisode++;
      this.#shedTotal++;
    }
    return shed;
  }

  /** A Retry-After value in [retry_after, 2 × retry_after). */
  retryAfter(): number {
    const base = this.#limits.retry_after;
    return base + Math.floor(this.#random() * base);
  }

  #tick(): void {
    // The delay of a window is the worst in it: a phone waits behind the worst.
    const h = this.#histogram;
    if (h !== undefined) {
      this.#lagMs = h.count > 0 ? h.max / 1e6 : 0;
      h.reset();
    }
    const now = performance.eventLoopUtilization();
    if (this.#eluMark !== undefined) {
      this.#windows.push(performance.eventLoopUtilization(now, this.#eluMark).utilization);
      if (this.#windows.length > UTILIZATION_WINDOWS) this.#windows.shift();
      // A full second is needed: the first windows may still hold start-up work.
      this.#utilization = this.#windows.length < UTILIZATION_WINDOWS ? 0 : this.#windows.reduce((a, b) => a + b, 0) / this.#windows.length;
    }
    this.#eluMark = now;
    const overloaded = this.#levelNow(this.#pendingWritesNow()) !== 'normal';
    // Busy under half the bound over the last second: plenty of room, let all in.
    const quiet = this.#limits.max_utilization > 0 && this.#windows.length >= UTILIZATION_WINDOWS && this.#utilization < this.#limits.max_utilization / 2;
    if (overloaded) this.#admit = Math.max(ADMIT_MIN, this.#admit * ADMIT_CUT);
    else this.#admit = quiet ? 1 : Math.min(1, this.#admit + ADMIT_RAISE);
    this.#observe();
  }

  #pendingWritesNow(): number {
    return this.#limits.max_pending_writes > 0 ? this.#pendingWrites() : 0;
  }

  #levelNow(pendingWrites: number): OverloadLevel {
    return overloadLevel({ utilization: this.#utilization, lagMs: this.#lagMs, pendingWrites }, this.#limits);
  }

  /** The level now, and the episode bookkeeping that goes with it. */
  #observe(): { level: OverloadLevel; pendingWrites: number } {
    const pendingWrites = this.#pendingWritesNow();
    const level = this.#levelNow(pendingWrites);
    const now = performance.now();
    const signals = { utilization: Math.round(this.#utilization * 100) / 100, lagMs: Math.round(this.#lagMs), pendingWrites };
    if (level !== 'normal' || this.#admit < 1) {
      this.#lastOverloaded = now;
      if (this.#episodeStart === undefined) {
        this.#episodeStart = now;
        this.#worst = level === 'normal' ? 'shed-new' : level;
        this.#shedInEpisode = 0;
        this.#report({ phase: 'started', level: this.#worst, ...signals });
      } else if (level === 'shed-all') this.#worst = level;
    } else if (this.#episodeStart !== undefined && now - this.#lastOverloaded >= CALM_MS) {
      this.#report({ phase: 'ended', level: this.#worst, ...signals, shed: this.#shedInEpisode, durationMs: Math.round(now - this.#episodeStart) });
      this.#episodeStart = undefined;
    }
    return { level, pendingWrites };
  }
}
