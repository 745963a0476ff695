// What a transaction needs from the stack: timer values, a way to send, a log,
// and counters. Kept narrow so each state machine can be read on its own.

import type { Logger } from 'pino';
import type { SipTimers } from '../timers.ts';
import type { Endpoint } from '../types.ts';

export interface TransactionContext {
  readonly timers: SipTimers;
  readonly log: Logger;
  /** Sends; rejects with SipTransportError. */
  send(bytes: Buffer, destination: Endpoint): Promise<void>;
  /** Sends and logs a failure (rate-limited): for retransmissions and responses nobody awaits. */
  sendQuietly(bytes: Buffer, destination: Endpoint): void;
  /** A retransmitted request or response was absorbed or answered from transaction state. */
  countAbsorbed(): void;
}
