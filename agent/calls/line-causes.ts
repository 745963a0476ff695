// What a caller on a line hears when the agent cannot complete its call: the Q.850
// cause the channel is released with. Two sources: the outcome of a ring attempt
// as the call core sees it (busy, no answer, unavailable, declined), and a SIP
// final status (a dial plan reject, a phone's answer), mapped as RFC 3398 §8.2.6.1
// maps SIP responses to ISUP causes. The reverse (a line's cause to a SIP status
// for a phone) is agent/trunks/errors.ts.

import type { FailureOutcome } from './routing/types.ts';

/**
 * busy → 17 user busy; no-answer → 19 no answer from user (alerted);
 * unavailable → 20 subscriber absent (no phone registered, or none reachable);
 * rejected → 21 call rejected.
 */
const CAUSE_FOR_OUTCOME: Readonly<Record<FailureOutcome, number>> = {
  busy: 17,
  'no-answer': 19,
  unavailable: 20,
  rejected: 21,
};

export function causeForOutcome(outcome: FailureOutcome): number {
  return CAUSE_FOR_OUTCOME[outcome];
}

/** RFC 3398 §8.2.6.1 (SIP status → ISUP cause); statuses it does not list get 127 (interworking). */
const CAUSE_FOR_STATUS: Readonly<Record<number, number>> = {
  400: 41,
  401: 21,
  402: 21,
  403: 21,
  404: 1,
  405: 63,
  406: 79,
  407: 21,
  408: 102,
  410: 22,
  413: 127,
  414: 127,
  415: 79,
  416: 127,
  420: 127,
  421: 127,
  423: 127,
  480: 18,
  481: 41,
  482: 25,
  483: 25,
  484: 28,
  485: 1,
  486: 17,
  487: 127,
  488: 127,
  500: 41,
  501: 79,
  502: 38,
  503: 41,
  504: 102,
  505: 127,
  513: 127,
  600: 17,
  603: 21,
  604: 1,
  606: 58,
};

export function causeForSipStatus(status: number): number {
  return CAUSE_FOR_STATUS[status] ?? 127;
}

/** The SIP status a failure outcome gives a phone (the record's finalStatus for line calls too). */
export const STATUS_FOR_OUTCOME: Readonly<Record<FailureOutcome, number>> = {
  busy: 486,
  'no-answer': 408,
  unavailable: 480,
  rejected: 603,
};

/** An RFC 3326 Reason header value carrying a Q.850 cause (in a BYE to a phone when the line hung up). */
export function q850ReasonHeader(cause: number, text: string): string {
  return `Q.850;cause=${cause};text="${text.replace(/["\\\r\n]/g, '')}"`;
}
