// RFC 3261 17 timer values, derived in one place from T1, T2 and T4 (table 4).
// Tests shorten T1/T2/T4; every derived timer follows, so a test with T1 = 50 ms
// sees Timer F at 3.2 s instead of 32 s.

import type { TransportName } from './types.ts';

export interface TimerSettings {
  /** RTT estimate; first retransmission interval. Default 500 ms. */
  t1?: number;
  /** Cap on the non-INVITE request and INVITE response retransmit interval. Default 4 s. */
  t2?: number;
  /** Maximum time a message stays in the network. Default 5 s. */
  t4?: number;
}

export interface SipTimers {
  readonly t1: number;
  readonly t2: number;
  readonly t4: number;
  /** Timers B, F, H, J (UDP), L, M: 64*T1. */
  readonly transactionTimeout: number;
}

export class TimerSettingsError extends Error {
  readonly code = 'ETIMERS';
  constructor(message: string) {
    super(message);
    this.name = 'TimerSettingsError';
  }
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v <= 0) throw new TimerSettingsError(`timer ${name} must be a positive number of ms, got ${String(value)}`);
  return v;
}

export function resolveTimers(settings: TimerSettings | undefined): SipTimers {
  const t1 = positive('t1', settings?.t1, 500);
  const t2 = positive('t2', settings?.t2, 4000);
  const t4 = positive('t4', settings?.t4, 5000);
  if (t2 < t1) throw new TimerSettingsError(`timer t2 (${t2}) must not be below t1 (${t1})`);
  return { t1, t2, t4, transactionTimeout: 64 * t1 };
}

/** Reliable transports retransmit nothing and wait out nothing (17.1.1.2, 17.2.2 ...). */
export function isReliable(transport: TransportName): boolean {
  return transport !== 'udp';
}

/**
 * Next retransmission interval: doubled, and capped at T2 when `capAtT2`
 * (Timer E and G; Timer A for INVITE requests doubles without a cap).
 */
export function nextInterval(current: number, timers: SipTimers, capAtT2: boolean): number {
  const doubled = current * 2;
  return capAtT2 ? Math.min(doubled, timers.t2) : doubled;
}

/** Timer D (17.1.1.2): at least 32 s on UDP; 64*T1 equals that at the default T1. */
export function timerD(timers: SipTimers, transport: TransportName): number {
  return isReliable(transport) ? 0 : timers.transactionTimeout;
}

/** Timers I and K: T4 on UDP, zero on reliable transports. */
export function timerT4OrZero(timers: SipTimers, transport: TransportName): number {
  return isReliable(transport) ? 0 : timers.t4;
}

/** Timer J: 64*T1 on UDP, zero on reliable transports. */
export function timerJ(timers: SipTimers, transport: TransportName): number {
  return isReliable(transport) ? 0 : timers.transactionTimeout;
}
