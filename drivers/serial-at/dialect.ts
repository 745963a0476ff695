// What differs between the AT devices the serial driver speaks to: the commands for
// setting up, calling, answering and hanging up, and how unsolicited lines read. The
// card (serial-at-card.ts) keeps the channel state and calls these; a dialect tells
// the card what happened on the line through LineHooks.

import { Q850, type Q850Cause } from '../q850.ts';
import type { CallerId } from '../types.ts';
import type { AtChannel } from './at-channel.ts';

export interface LineHooks {
  /** A call is ringing in, with what caller ID the device reported. */
  incoming(callerId: CallerId): void;
  /** Our outbound call rings at the far end. */
  alerting(): void;
  /** Our outbound call was answered (audio running where the device has it). */
  answered(): void;
  /** The call ended from the line's side: the far end, the network, or a timer. */
  ended(cause: Q850Cause, by: 'remote' | 'network'): void;
  frame(frame: Uint8Array): void;
  digits(digits: string): void;
}

export interface DialectTimeouts {
  commandMs: number;
  dialMs: number;
  /** An offered call whose rings stop for this long was abandoned by the caller. */
  ringGapMs: number;
}

export interface Dialect {
  readonly audio: boolean;
  /** Far-end ringing is reported (cellular +CLCC); analog modems cannot tell. */
  readonly reportsAlerting: boolean;
  /** Puts a freshly opened device into the mode the driver needs. */
  init(): Promise<void>;
  unsolicited(line: string): void;
  /** Resolves once the device has the whole number; progress comes through LineHooks. */
  dial(number: string): Promise<void>;
  /** Resolves when the call is connected (and audio runs, where there is audio). */
  answer(): Promise<void>;
  /** Back on hook, whatever state the call was in; never rejects for a call already gone. */
  hangup(): Promise<void>;
  sendDigits(digits: string): Promise<void>;
  writeFrame(frame: Uint8Array): boolean;
  /** The device went away: forget the call and every timer. */
  reset(): void;
}

export type DialectFactory = (at: AtChannel, hooks: LineHooks, timeouts: DialectTimeouts) => Dialect;

/** The Q.850 cause for a call command's failure result (V.250 §5.7.1). */
export function causeForResult(final: string): Q850Cause {
  if (final === 'BUSY') return Q850.USER_BUSY;
  if (final === 'NO ANSWER') return Q850.NO_ANSWER;
  if (final === 'NO CARRIER') return Q850.NO_USER_RESPONDING;
  if (/^NO DIAL ?TONE$/.test(final)) return Q850.NETWORK_OUT_OF_ORDER;
  return Q850.TEMPORARY_FAILURE;
}
