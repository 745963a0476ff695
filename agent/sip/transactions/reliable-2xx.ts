// The UAS core's 2xx retransmission (RFC 3261 13.3.1.4): a 2xx to an INVITE is
// not retransmitted by the transaction (it ends, or with RFC 6026 only absorbs
// INVITE retransmissions) but by the UAS until the ACK arrives: every T1, doubling
// up to T2, for 64*T1. No ACK by then means the dialog must be ended with a BYE.
//
// On TCP the 2xx is not resent (the connection delivers it) but the ACK is still
// awaited for 64*T1, so a lost dialog is still noticed.
//
// The stack starts one of these for every 2xx the TU sends through
// IncomingRequest.respond; the call core can also use it directly (re-INVITEs).

import { isReliable, nextInterval } from '../timers.ts';
import type { Endpoint, SipRequest } from '../types.ts';
import type { TransactionContext } from './context.ts';

export type AckOutcome = SipRequest | undefined;

export class Reliable2xx {
  private readonly bytes: Buffer;
  private readonly destination: Endpoint;
  private readonly ctx: TransactionContext;
  private readonly onDone: (ack: AckOutcome) => void;
  private interval = 0;
  private retransmitTimer: NodeJS.Timeout | undefined;
  private giveUpTimer: NodeJS.Timeout | undefined;
  private done = false;

  /** `onDone` is called once: with the ACK, or with undefined after 64*T1 (or stop). */
  constructor(bytes: Buffer, destination: Endpoint, ctx: TransactionContext, onDone: (ack: AckOutcome) => void) {
    this.bytes = bytes;
    this.destination = destination;
    this.ctx = ctx;
    this.onDone = onDone;
  }

  /** Call after the first copy of the 2xx was sent. */
  start(): void {
    const timers = this.ctx.timers;
    if (!isReliable(this.destination.transport)) {
      this.interval = timers.t1;
      this.retransmitTimer = setTimeout(() => this.retransmit(), this.interval);
    }
    this.giveUpTimer = setTimeout(() => this.finish(undefined), timers.transactionTimeout);
  }

  acknowledge(ack: SipRequest): void {
    this.finish(ack);
  }

  stop(): void {
    this.finish(undefined);
  }

  private retransmit(): void {
    if (this.done) return;
    this.ctx.sendQuietly(this.bytes, this.destination);
    this.interval = nextInterval(this.interval, this.ctx.timers, true);
    this.retransmitTimer = setTimeout(() => this.retransmit(), this.interval);
  }

  private finish(ack: AckOutcome): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.retransmitTimer);
    clearTimeout(this.giveUpTimer);
    this.onDone(ack);
  }
}
