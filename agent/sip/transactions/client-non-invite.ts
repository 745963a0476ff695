// Non-INVITE client transaction, RFC 3261 17.1.2 (figure 6):
//
//   Trying: retransmit on Timer E (T1, doubling, capped at T2; UDP only)
//   Proceeding (after a 1xx): retransmit every T2 (UDP only)
//   Timer F (64*T1) in either: time out (a 408 to the TU)
//   final response: hand to the TU, Completed: absorb retransmitted finals for
//   Timer K (T4 on UDP, 0 on TCP)

import { isReliable, nextInterval, timerT4OrZero } from '../timers.ts';
import type { Endpoint, SipResponse } from '../types.ts';
import type { TransactionContext } from './context.ts';
import { SipStackStoppedError, SipTimeoutError } from './errors.ts';

export interface ClientCallbacks {
  onProvisional: ((response: SipResponse) => void) | undefined;
  resolve(response: SipResponse): void;
  reject(error: Error): void;
  /** The transaction is over; forget it. */
  onTerminated(): void;
}

/**
 * The callbacks a transaction keeps once its final response is in: only the one that
 * forgets it. It waits out Timer K (or D, or M) for retransmissions, and must not
 * hold the TU's closures (the whole call) that long.
 */
export function releasedCallbacks(onTerminated: () => void): ClientCallbacks {
  return { onProvisional: undefined, resolve: () => undefined, reject: () => undefined, onTerminated };
}

export class NonInviteClientTransaction {
  readonly key: string;
  readonly method: string;
  private readonly bytes: Buffer;
  private readonly destination: Endpoint;
  private readonly ctx: TransactionContext;
  private callbacks: ClientCallbacks;
  private state: 'trying' | 'proceeding' | 'completed' | 'terminated' = 'trying';
  private interval = 0;
  private timerE: NodeJS.Timeout | undefined;
  private timerF: NodeJS.Timeout | undefined;
  private timerK: NodeJS.Timeout | undefined;

  constructor(key: string, method: string, bytes: Buffer, destination: Endpoint, ctx: TransactionContext, callbacks: ClientCallbacks) {
    this.key = key;
    this.method = method;
    this.bytes = bytes;
    this.destination = destination;
    this.ctx = ctx;
    this.callbacks = callbacks;
  }

  start(): void {
    const timers = this.ctx.timers;
    this.timerF = setTimeout(() => this.fail(new SipTimeoutError(this.method, timers.transactionTimeout)), timers.transactionTimeout);
    if (!isReliable(this.destination.transport)) {
      this.interval = timers.t1;
      this.timerE = setTimeout(() => this.retransmit(), this.interval);
    }
    this.ctx.send(this.bytes, this.destination).catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
  }

  receiveResponse(response: SipResponse): void {
    if (this.state === 'completed') {
      this.ctx.countAbsorbed();
      return;
    }
    if (this.state === 'terminated') return;
    if (response.status < 200) {
      this.state = 'proceeding';
      this.invoke(this.callbacks.onProvisional, response);
      return;
    }
    this.clearTimers();
    this.state = 'completed';
    this.callbacks.resolve(response);
    this.callbacks = releasedCallbacks(this.callbacks.onTerminated);
    const wait = timerT4OrZero(this.ctx.timers, this.destination.transport);
    if (wait === 0) this.terminate();
    else this.timerK = setTimeout(() => this.terminate(), wait);
  }

  stop(): void {
    this.fail(new SipStackStoppedError());
  }

  private retransmit(): void {
    if (this.state !== 'trying' && this.state !== 'proceeding') return;
    this.ctx.send(this.bytes, this.destination).catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
    const timers = this.ctx.timers;
    this.interval = this.state === 'proceeding' ? timers.t2 : nextInterval(this.interval, timers, true);
    this.timerE = setTimeout(() => this.retransmit(), this.interval);
  }

  private fail(error: Error): void {
    if (this.state === 'terminated') return;
    const pending = this.state !== 'completed';
    this.clearTimers();
    this.terminate();
    if (!pending) return;
    if (error instanceof SipTimeoutError) this.ctx.log.info({ method: this.method, destination: this.destination }, 'client transaction timed out (Timer F)');
    this.callbacks.reject(error);
  }

  private invoke(fn: ((r: SipResponse) => void) | undefined, response: SipResponse): void {
    if (fn === undefined) return;
    try {
      fn(response);
    } catch (err) {
      this.ctx.log.error({ err, method: this.method }, 'provisional response handler failed');
    }
  }

  private clearTimers(): void {
    clearTimeout(this.timerE);
    clearTimeout(this.timerF);
    clearTimeout(this.timerK);
    this.timerE = undefined;
    this.timerF = undefined;
    this.timerK = undefined;
  }

  private terminate(): void {
    if (this.state === 'terminated') return;
    this.clearTimers();
    this.state = 'terminated';
    this.callbacks.onTerminated();
  }
}
