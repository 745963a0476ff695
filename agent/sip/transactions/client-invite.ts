// INVITE client transaction, RFC 3261 17.1.1 (figure 5) with the RFC 6026 fix:
//
//   Calling: retransmit on Timer A (T1, doubling without cap; UDP only);
//            Timer B (64*T1): time out (a 408 to the TU)
//   1xx -> Proceeding: no more retransmissions, no Timer B (ringing may last)
//   300-699 -> hand to the TU, send the ACK ourselves (same branch and Route set
//            as the INVITE, 17.1.1.3), Completed: resend that ACK for each
//            retransmitted final until Timer D (64*T1 on UDP, 0 on TCP)
//   2xx -> hand to the TU, Accepted for Timer M (64*T1): later 2xx (retransmissions,
//            forks) go to onAdditional2xx so the dialog layer can ACK them; the
//            ACK for a 2xx is the TU's (13.2.2.4), never ours

import { serialize } from '../serialize.ts';
import { isReliable, timerD } from '../timers.ts';
import type { Endpoint, SipRequest, SipResponse } from '../types.ts';
import { releasedCallbacks, type ClientCallbacks } from './client-non-invite.ts';
import type { TransactionContext } from './context.ts';
import { SipStackStoppedError, SipTimeoutError } from './errors.ts';
import { buildAckForNon2xx } from './requests.ts';

export interface InviteClientCallbacks extends ClientCallbacks {
  onAdditional2xx: ((response: SipResponse) => void) | undefined;
}

export type InviteClientState = 'calling' | 'proceeding' | 'completed' | 'accepted' | 'terminated';

export class InviteClientTransaction {
  readonly key: string;
  readonly request: SipRequest;
  private readonly bytes: Buffer;
  private readonly destination: Endpoint;
  private readonly ctx: TransactionContext;
  private callbacks: InviteClientCallbacks;
  private stateValue: InviteClientState = 'calling';
  private interval = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerB: NodeJS.Timeout | undefined;
  private ack: Buffer | undefined;
  private provisionalWaiters: Array<(proceeding: boolean) => void> = [];

  constructor(key: string, request: SipRequest, bytes: Buffer, destination: Endpoint, ctx: TransactionContext, callbacks: InviteClientCallbacks) {
    this.key = key;
    this.request = request;
    this.bytes = bytes;
    this.destination = destination;
    this.ctx = ctx;
    this.callbacks = callbacks;
  }

  get state(): InviteClientState {
    return this.stateValue;
  }

  start(): void {
    const timers = this.ctx.timers;
    this.timerB = setTimeout(() => this.fail(new SipTimeoutError('INVITE', timers.transactionTimeout)), timers.transactionTimeout);
    if (!isReliable(this.destination.transport)) {
      this.interval = timers.t1;
      this.timer = setTimeout(() => this.retransmit(), this.interval);
    }
    this.ctx.send(this.bytes, this.destination).catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
  }

  /**
   * Resolves true once a provisional response has arrived (CANCEL may be sent,
   * 9.1), false if the transaction ended without one.
   */
  waitForProvisional(): Promise<boolean> {
    if (this.stateValue === 'proceeding') return Promise.resolve(true);
    if (this.stateValue !== 'calling') return Promise.resolve(false);
    return new Promise((resolve) => this.provisionalWaiters.push(resolve));
  }

  receiveResponse(response: SipResponse): void {
    const { status } = response;
    switch (this.stateValue) {
      case 'calling':
      case 'proceeding':
        if (status < 200) {
          if (this.stateValue === 'calling') {
            this.clearTimers();
            this.stateValue = 'proceeding';
            this.wake(true);
          }
          this.invoke(this.callbacks.onProvisional, response);
        } else if (status < 300) {
          this.clearTimers();
          this.stateValue = 'accepted';
          this.wake(false);
          this.callbacks.resolve(response);
          this.releaseTu(true);
          this.timer = setTimeout(() => this.terminate(), this.ctx.timers.transactionTimeout); // Timer M
        } else {
          this.clearTimers();
          this.stateValue = 'completed';
          this.wake(false);
          this.ack = serialize(buildAckForNon2xx(this.request, response));
          this.ctx.sendQuietly(this.ack, this.destination);
          this.callbacks.resolve(response);
          this.releaseTu(false);
          const wait = timerD(this.ctx.timers, this.destination.transport);
          if (wait === 0) this.terminate();
          else this.timer = setTimeout(() => this.terminate(), wait);
        }
        return;
      case 'accepted':
        if (status >= 200 && status < 300) {
          if (this.callbacks.onAdditional2xx === undefined) this.ctx.countAbsorbed();
          else this.invoke(this.callbacks.onAdditional2xx, response);
        }
        return;
      case 'completed':
        if (status >= 300 && this.ack !== undefined) {
          this.ctx.countAbsorbed();
          this.ctx.sendQuietly(this.ack, this.destination);
        }
        return;
      default:
        return;
    }
  }

  stop(): void {
    this.fail(new SipStackStoppedError());
  }

  private retransmit(): void {
    if (this.stateValue !== 'calling') return;
    this.ctx.send(this.bytes, this.destination).catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
    this.interval *= 2; // Timer A doubles without a cap (17.1.1.2)
    this.timer = setTimeout(() => this.retransmit(), this.interval);
  }

  private fail(error: Error): void {
    if (this.stateValue === 'terminated') return;
    const pending = this.stateValue === 'calling' || this.stateValue === 'proceeding';
    this.terminate();
    if (!pending) return;
    if (error instanceof SipTimeoutError) this.ctx.log.info({ destination: this.destination }, 'INVITE client transaction timed out (Timer B)');
    this.callbacks.reject(error);
  }

  private wake(proceeding: boolean): void {
    const waiters = this.provisionalWaiters;
    this.provisionalWaiters = [];
    for (const w of waiters) w(proceeding);
  }

  private invoke(fn: ((r: SipResponse) => void) | undefined, response: SipResponse): void {
    if (fn === undefined) return;
    try {
      fn(response);
    } catch (err) {
      this.ctx.log.error({ err }, 'INVITE response handler failed');
    }
  }

  private clearTimers(): void {
    clearTimeout(this.timer);
    clearTimeout(this.timerB);
    this.timer = undefined;
    this.timerB = undefined;
  }

  /**
   * After the final response the transaction lives on for Timer M (32 s) or D to
   * absorb retransmissions, and must not keep the TU's closures alive that long: they
   * hold the whole call (measured: at 400 calls/s, ~6,000 ended calls on the heap,
   * 60-300 ms collection pauses, then retransmission storms). Only what a late 2xx
   * needs stays.
   */
  private releaseTu(keepAdditional2xx: boolean): void {
    this.callbacks = { ...releasedCallbacks(this.callbacks.onTerminated), onAdditional2xx: keepAdditional2xx ? this.callbacks.onAdditional2xx : undefined };
  }

  private terminate(): void {
    if (this.stateValue === 'terminated') return;
    this.clearTimers();
    this.stateValue = 'terminated';
    this.ack = undefined;
    this.wake(false);
    this.callbacks.onTerminated();
  }
}
