// INVITE server transaction, RFC 3261 17.2.1 (figure 7) with the RFC 6026 fix:
//
//   Proceeding --1xx from TU--> send (kept for INVITE retransmissions)
//       | 100 Trying is sent by us when the TU has sent nothing within 200 ms, or at
//       | once when the INVITE is retransmitted first (the client is already waiting)
//       |--2xx from TU--> send, Accepted: absorb INVITE retransmissions for Timer L
//       |                 (64*T1); the TU (Reliable2xx) retransmits the 2xx until ACK
//       |--300-699 from TU--> send, Completed
//   Completed: resend the final on Timer G (T1 doubling, capped at T2; UDP only) and
//       on each INVITE retransmission; ACK -> Confirmed; Timer H (64*T1) -> give up
//   Confirmed: absorb ACK retransmissions for Timer I (T4 on UDP, 0 on TCP)

import { makeResponse, serialize } from '../serialize.ts';
import { isReliable, nextInterval, timerT4OrZero } from '../timers.ts';
import type { Endpoint, SipRequest, SipResponse } from '../types.ts';
import type { TransactionContext } from './context.ts';

export const TRYING_DELAY_MS = 200;

export type InviteServerState = 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated';

export class InviteServerTransaction {
  readonly key: string;
  readonly request: SipRequest;
  readonly source: Endpoint;
  readonly destination: Endpoint;
  private readonly ctx: TransactionContext;
  private readonly onTerminated: (txn: InviteServerTransaction) => void;
  private stateValue: InviteServerState = 'proceeding';
  private lastResponse: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerH: NodeJS.Timeout | undefined;
  private interval = 0;

  constructor(key: string, request: SipRequest, source: Endpoint, destination: Endpoint, ctx: TransactionContext, onTerminated: (txn: InviteServerTransaction) => void) {
    this.key = key;
    this.request = request;
    this.source = source;
    this.destination = destination;
    this.ctx = ctx;
    this.onTerminated = onTerminated;
  }

  get state(): InviteServerState {
    return this.stateValue;
  }

  /** True while the TU may still send a final response. */
  get awaitingFinal(): boolean {
    return this.stateValue === 'proceeding';
  }

  start(): void {
    this.timer = setTimeout(() => this.sendTrying(), TRYING_DELAY_MS);
  }

  receiveRetransmission(): void {
    this.ctx.countAbsorbed();
    switch (this.stateValue) {
      case 'proceeding':
        if (this.lastResponse !== undefined) this.ctx.sendQuietly(this.lastResponse, this.destination);
        else this.sendTrying();
        break;
      case 'completed':
        if (this.lastResponse !== undefined) this.ctx.sendQuietly(this.lastResponse, this.destination);
        break;
      default:
        break; // confirmed, accepted: absorbed
    }
  }

  /** An ACK with this transaction's identity. True when it was absorbed here. */
  receiveAck(): boolean {
    if (this.stateValue === 'completed') {
      this.clearTimers();
      this.stateValue = 'confirmed';
      const wait = timerT4OrZero(this.ctx.timers, this.destination.transport);
      if (wait === 0) this.terminate();
      else this.timer = setTimeout(() => this.terminate(), wait);
      return true;
    }
    if (this.stateValue === 'confirmed') {
      this.ctx.countAbsorbed();
      return true;
    }
    return false; // proceeding (a stray ACK) or accepted (an RFC 2543 ACK for our 2xx): the TU's
  }

  /** Sends a response from the TU; returns the bytes sent, or undefined (nothing sent) once a final was sent. */
  respond(response: SipResponse): Buffer | undefined {
    if (this.stateValue !== 'proceeding') return undefined;
    const bytes = serialize(response);
    this.ctx.sendQuietly(bytes, this.destination);
    const { status } = response;
    if (status < 200) {
      this.lastResponse = bytes;
      clearTimeout(this.timer); // no automatic 100 Trying needed any more
      this.timer = undefined;
      return bytes;
    }
    this.clearTimers();
    const timers = this.ctx.timers;
    if (status < 300) {
      this.lastResponse = undefined;
      this.stateValue = 'accepted';
      this.timer = setTimeout(() => this.terminate(), timers.transactionTimeout); // Timer L
      return bytes;
    }
    this.lastResponse = bytes;
    this.stateValue = 'completed';
    if (!isReliable(this.destination.transport)) {
      this.interval = timers.t1;
      this.timer = setTimeout(() => this.fireG(), this.interval);
    }
    this.timerH = setTimeout(() => {
      this.ctx.log.warn({ callId: this.request.headers['call-id'], status }, 'no ACK for a final response to INVITE (Timer H)');
      this.terminate();
    }, timers.transactionTimeout);
    return bytes;
  }

  /** Ends the transaction now (stack stopping). */
  stop(): void {
    this.clearTimers();
    this.stateValue = 'terminated';
  }

  private sendTrying(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stateValue !== 'proceeding') return;
    const trying = serialize(makeResponse(this.request, 100, 'Trying'));
    this.lastResponse = trying;
    this.ctx.sendQuietly(trying, this.destination);
  }

  private fireG(): void {
    if (this.stateValue !== 'completed' || this.lastResponse === undefined) return;
    this.ctx.sendQuietly(this.lastResponse, this.destination);
    this.interval = nextInterval(this.interval, this.ctx.timers, true);
    this.timer = setTimeout(() => this.fireG(), this.interval);
  }

  private clearTimers(): void {
    clearTimeout(this.timer);
    clearTimeout(this.timerH);
    this.timer = undefined;
    this.timerH = undefined;
  }

  private terminate(): void {
    this.clearTimers();
    if (this.stateValue === 'terminated') return;
    this.stateValue = 'terminated';
    this.lastResponse = undefined;
    this.onTerminated(this);
  }
}
