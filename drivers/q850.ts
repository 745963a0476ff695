// ITU-T Q.850 cause values: the one vocabulary every driver uses to say why a
// channel was released. ISDN (PRI) carries them on the wire; for CAS, analog lines
// and AT modems the driver maps what it observed (busy tone, NO CARRIER, a cable
// pulled) to the nearest cause, so the call core and the trunk policy never need to
// know which kind of line a call used.

export const Q850 = {
  UNALLOCATED_NUMBER: 1,
  NO_ROUTE_TO_DESTINATION: 3,
  NORMAL_CLEARING: 16,
  USER_BUSY: 17,
  NO_USER_RESPONDING: 18,
  NO_ANSWER: 19,
  CALL_REJECTED: 21,
  DESTINATION_OUT_OF_ORDER: 27,
  INVALID_NUMBER_FORMAT: 28,
  NORMAL_UNSPECIFIED: 31,
  NO_CIRCUIT_AVAILABLE: 34,
  NETWORK_OUT_OF_ORDER: 38,
  TEMPORARY_FAILURE: 41,
  SWITCHING_EQUIPMENT_CONGESTION: 42,
  REQUESTED_CHANNEL_NOT_AVAILABLE: 44,
  BEARER_CAPABILITY_NOT_AVAILABLE: 58,
  RECOVERY_ON_TIMER_EXPIRY: 102,
  INTERWORKING_UNSPECIFIED: 127,
} as const;

export type Q850Cause = number;

const TEXT: Readonly<Record<number, string>> = {
  1: 'unallocated number',
  3: 'no route to destination',
  8: 'preemption',
  16: 'normal clearing',
  17: 'user busy',
  18: 'no user responding',
  19: 'no answer',
  20: 'subscriber absent',
  21: 'call rejected',
  27: 'destination out of order',
  28: 'invalid number format',
  31: 'normal, unspecified',
  34: 'no circuit/channel available',
  38: 'network out of order',
  41: 'temporary failure',
  42: 'switching equipment congestion',
  44: 'requested circuit/channel not available',
  58: 'bearer capability not presently available',
  102: 'recovery on timer expiry',
  127: 'interworking, unspecified',
};

/** Human text for logs and call records; unknown values keep their number. */
export function causeText(cause: Q850Cause): string {
  return TEXT[cause] ?? `cause ${cause}`;
}

/** Q.850 values are 1..127; anything else is a caller's mistake. */
export function isQ850Cause(value: unknown): value is Q850Cause {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 127;
}
