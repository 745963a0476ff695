// The WAN/controller state machine behind survivable mode. Pure: it is fed signals
// and a clock and says which mode the site is in; timers live in the monitor.
//
//   normal ──(any signal bad for enter_after)──▶ survivable
//   survivable ──(every signal good for return_after, unbroken)──▶ normal
//
// Entering is quick (seconds) so that no new call waits on a dead WAN; returning is
// slow (120 s by default) so that a flapping WAN does not flip routes back and forth.
import type { HealthMode } from '../sync/protocol.ts';

export interface WanSignals {
  link: 'up' | 'down';
  controller: 'online' | 'offline' | 'unknown';
  /** Active probes: `unknown` until the first round, or when none are configured. */
  probes: 'ok' | 'failed' | 'unknown';
}

export interface WanTransition {
  mode: HealthMode;
  reason: string;
  since: number;
}

export interface WanTimings {
  enterAfterMs: number;
  returnAfterMs: number;
}

/** Why the WAN counts as bad now, or undefined when it is good. */
export function wanTrouble(s: WanSignals): string | undefined {
  if (s.link === 'down') return 'MQTT link down';
  if (s.probes === 'failed') return 'WAN probes failing';
  if (s.controller === 'offline') return 'controller offline';
  if (s.controller === 'unknown') return 'controller state unknown';
  return undefined;
}

export class WanStateMachine {
  readonly #t: WanTimings;
  #mode: HealthMode;
  #since: number;
  #signals: WanSignals = { link: 'down', controller: 'unknown', probes: 'unknown' };
  /** When the current run of bad (in normal) or good (in survivable) signals began. */
  #runStart: number | undefined;

  constructor(timings: WanTimings, initial: { mode: HealthMode; now: number }) {
    this.#t = timings;
    this.#mode = initial.mode;
    this.#since = initial.now;
    this.#runStart = initial.now;
  }

  get mode(): HealthMode {
    return this.#mode;
  }

  get since(): number {
    return this.#since;
  }

  get signals(): WanSignals {
    return { ...this.#signals };
  }

  /** True while every signal is good right now (before any hysteresis). */
  get wanUp(): boolean {
    return wanTrouble(this.#signals) === undefined;
  }

  /** Updates signals; returns a transition if the mode changed. */
  update(change: Partial<WanSignals>, now: number): WanTransition | undefined {
    const wasGood = this.wanUp;
    this.#signals = { ...this.#signals, ...change };
    const good = this.wanUp;
    if (good !== wasGood) this.#runStart = now;
    return this.tick(now);
  }

  /** Re-evaluates the timers; returns a transition if the mode changed. */
  tick(now: number): WanTransition | undefined {
    const trouble = wanTrouble(this.#signals);
    const runFor = now - (this.#runStart ?? now);
    if (this.#mode === 'normal' && trouble !== undefined && runFor >= this.#t.enterAfterMs) {
      return this.#go('survivable', trouble, now);
    }
    if (this.#mode === 'survivable' && trouble === undefined && runFor >= this.#t.returnAfterMs) {
      return this.#go('normal', `WAN stable for ${Math.round(runFor / 1000)} s`, now);
    }
    return undefined;
  }

  /** ms until tick() could change the mode with the current signals; undefined: never. */
  nextDeadline(now: number): number | undefined {
    const good = this.wanUp;
    const start = this.#runStart ?? now;
    if (this.#mode === 'normal' && !good) return Math.max(0, start + this.#t.enterAfterMs - now);
    if (this.#mode === 'survivable' && good) return Math.max(0, start + this.#t.returnAfterMs - now);
    return undefined;
  }

  #go(mode: HealthMode, reason: string, now: number): WanTransition {
    this.#mode = mode;
    this.#since = now;
    this.#runStart = now;
    return { mode, reason, since: now };
  }
}
