// Why the trunks could not carry a call, as one error class with a code. Each code
// maps to what the caller is told: a SIP final response (503 with Retry-After when
// trying later can help) for a phone, a Q.850 cause (heard as busy or congestion
// tone) for a call that came in on a line.

export type TrunkErrorCode =
  /** Waited in the fair queue for the configured maximum without getting a channel. */
  | 'EQUEUE_TIMEOUT'
  /** The tenant already has the configured maximum of calls waiting. */
  | 'EQUEUE_FULL'
  /** The tenant's call-rate throttle has no call left for now. */
  | 'ETHROTTLED'
  /** Every channel the call could use is out of service (span alarm, no line voltage). */
  | 'EOUT_OF_SERVICE'
  /** Every trunk group tried reported congestion or failure when dialling. */
  | 'ECONGESTION'
  /** The caller gave up (hung up) while waiting. */
  | 'ECANCELLED'
  /** No outbound route matches the number (or none this tenant may use). */
  | 'ENO_ROUTE'
  /** The tenant is at its concurrent-channel cap (inbound calls are refused, not queued). */
  | 'ETENANT_CAP'
  /** An inbound call arrived on a channel the policy cannot give it. */
  | 'ECHANNEL_UNAVAILABLE'
  /** The far end refused the call (busy, unallocated number, rejected...): `q850` says how. */
  | 'EREJECTED';

/** Q.850 causes used here; the line-card drivers use the same numbering. */
export const Cause = {
  UNALLOCATED_NUMBER: 1,
  NO_ROUTE_TO_DESTINATION: 3,
  PREEMPTION: 8,
  USER_BUSY: 17,
  NO_CIRCUIT_AVAILABLE: 34,
  NETWORK_OUT_OF_ORDER: 38,
  TEMPORARY_FAILURE: 41,
  SWITCHING_EQUIPMENT_CONGESTION: 42,
  REQUESTED_CHANNEL_NOT_AVAILABLE: 44,
} as const;

const SIP_STATUS: Readonly<Record<TrunkErrorCode, number>> = {
  EQUEUE_TIMEOUT: 503,
  EQUEUE_FULL: 503,
  ETHROTTLED: 503,
  EOUT_OF_SERVICE: 503,
  ECONGESTION: 503,
  ECANCELLED: 487,
  ENO_ROUTE: 404,
  ETENANT_CAP: 486,
  ECHANNEL_UNAVAILABLE: 503,
  EREJECTED: 480,
};

const Q850_CAUSE: Readonly<Record<TrunkErrorCode, number>> = {
  EQUEUE_TIMEOUT: Cause.NO_CIRCUIT_AVAILABLE,
  EQUEUE_FULL: Cause.NO_CIRCUIT_AVAILABLE,
  ETHROTTLED: Cause.SWITCHING_EQUIPMENT_CONGESTION,
  EOUT_OF_SERVICE: Cause.NETWORK_OUT_OF_ORDER,
  ECONGESTION: Cause.SWITCHING_EQUIPMENT_CONGESTION,
  ECANCELLED: 16,
  ENO_ROUTE: Cause.NO_ROUTE_TO_DESTINATION,
  ETENANT_CAP: Cause.USER_BUSY,
  ECHANNEL_UNAVAILABLE: Cause.REQUESTED_CHANNEL_NOT_AVAILABLE,
  EREJECTED: 31,
};

/** The SIP response for a far end's release cause (RFC 3398 §7.2.4.1, abridged). */
const SIP_FOR_CAUSE: Readonly<Record<number, number>> = {
  1: 404,
  2: 404,
  3: 404,
  17: 486,
  18: 408,
  19: 480,
  20: 480,
  21: 403,
  22: 410,
  27: 502,
  28: 484,
  29: 501,
  31: 480,
  34: 503,
  38: 503,
  41: 503,
  42: 503,
  44: 503,
  47: 503,
  58: 503,
  102: 504,
};

/** Causes that say the route, not the callee, failed: the next trunk group may succeed. */
export const FAILOVER_CAUSES: ReadonlySet<number> = new Set([34, 38, 41, 42, 44, 47, 58, 102]);

export class TrunkError extends Error {
  readonly code: TrunkErrorCode;
  /** The SIP final response for a caller on a phone. */
  readonly sipStatus: number;
  /** Seconds after which trying again may succeed (the Retry-After header), when known. */
  readonly retryAfterSec: number | undefined;
  /** The Q.850 cause for a caller on a line. */
  readonly q850: number;
  readonly tenant: string | undefined;

  constructor(code: TrunkErrorCode, message: string, opts: { retryAfterSec?: number; tenant?: string; cause?: unknown; q850?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TrunkError';
    this.code = code;
    this.q850 = opts.q850 ?? Q850_CAUSE[code];
    this.sipStatus = code === 'EREJECTED' ? (SIP_FOR_CAUSE[this.q850] ?? 480) : SIP_STATUS[code];
    this.retryAfterSec = opts.retryAfterSec;
    this.tenant = opts.tenant;
  }
}
