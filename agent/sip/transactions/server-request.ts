// What the TU gets for each new request: the request, where it really came from,
// and the ways to answer it through its server transaction.

import { newTag } from '../branch.ts';
import { makeResponse, serialize } from '../serialize.ts';
import type { ResponseExtras } from '../serialize.ts';
import type { Endpoint, SipRequest } from '../types.ts';
import type { TransactionContext } from './context.ts';
import { ackKeyOfResponse } from './keys.ts';
import { Reliable2xx } from './reliable-2xx.ts';
import { InviteServerTransaction } from './server-invite.ts';
import { NonInviteServerTransaction } from './server-non-invite.ts';
import type { ServerTransactionTable } from './server-table.ts';

export interface IncomingRequest {
  readonly request: SipRequest;
  /** Real source address/port/transport (for rport/received and NAT); TCP: with connectionId. */
  readonly source: Endpoint;
  /**
   * Sends a response through the server transaction: provisional any number of
   * times, then one final; later calls are ignored. A non-100 response gets a To
   * tag when the request had none: extras.toTag, or one made per transaction. A
   * 2xx to an INVITE is retransmitted until its ACK arrives (see waitForAck).
   * Calls for an ACK do nothing (ACK is never answered).
   */
  respond(status: number, reason: string, extras?: ResponseExtras): void;
  /**
   * Answers without keeping transaction state (RFC 3261 8.2.7), e.g. a digest
   * challenge: a retransmission of the request reaches the TU again. An INVITE is
   * still answered through its transaction, because its non-2xx final must be
   * retransmitted and its ACK absorbed.
   */
  respondStateless(status: number, reason: string, extras?: ResponseExtras): void;
  /**
   * INVITE: resolves with the ACK once a 2xx sent with respond() is acknowledged,
   * or undefined when no ACK came within 64*T1 (end the dialog with a BYE, 13.3.1.4),
   * when the final was not a 2xx, or when the stack stopped. Other methods: undefined.
   */
  waitForAck(): Promise<SipRequest | undefined>;
}

export interface ServerRequestDeps {
  readonly ctx: TransactionContext;
  readonly table: ServerTransactionTable;
  /** 2xx responses awaiting their ACK, by ackKey. */
  readonly pending2xx: Map<string, Reliable2xx>;
}

type Txn = NonInviteServerTransaction | InviteServerTransaction | undefined;

export class ServerRequest implements IncomingRequest {
  readonly request: SipRequest;
  readonly source: Endpoint;
  private readonly txn: Txn;
  private readonly deps: ServerRequestDeps;
  private tag: string | undefined;
  private answeredStatelessly = false;
  private ackResult: { settled: boolean; value: SipRequest | undefined } = { settled: false, value: undefined };
  private ackWaiters: Array<(ack: SipRequest | undefined) => void> = [];

  constructor(request: SipRequest, source: Endpoint, txn: Txn, deps: ServerRequestDeps) {
    this.request = request;
    this.source = source;
    this.txn = txn;
    this.deps = deps;
  }

  /** True until a final response was sent (or the request is an ACK). */
  get awaitingFinal(): boolean {
    if (this.answeredStatelessly || this.txn === undefined) return false;
    return this.txn instanceof InviteServerTransaction ? this.txn.awaitingFinal : !this.txn.isFinal;
  }

  /** The To tag this transaction's responses carry (made on first use). */
  get toTag(): string {
    this.tag ??= newTag();
    return this.tag;
  }

  respond(status: number, reason: string, extras?: ResponseExtras): void {
    const txn = this.txn;
    if (txn === undefined || this.answeredStatelessly) return;
    if (!Number.isInteger(status) || status < 100 || status > 699) {
      this.deps.ctx.log.error({ status, method: this.request.method }, 'TU tried to send an invalid status code; ignored');
      return;
    }
    const response = makeResponse(this.request, status, reason, this.withTag(status, extras));
    if (txn instanceof NonInviteServerTransaction) {
      if (!txn.respond(response)) this.ignored(status);
      return;
    }
    const bytes = txn.respond(response);
    if (bytes === undefined) {
      this.ignored(status);
      return;
    }
    if (status >= 300) this.settleAck(undefined);
    else if (status >= 200) {
      const key = ackKeyOfResponse(response);
      const pending = this.deps.pending2xx;
      const retransmitter = new Reliable2xx(bytes, txn.destination, this.deps.ctx, (ack) => {
        if (pending.get(key) === retransmitter) pending.delete(key);
        if (ack === undefined) this.deps.ctx.log.warn({ callId: this.request.headers['call-id'] }, 'no ACK for a 2xx to INVITE within 64*T1');
        this.settleAck(ack);
      });
      pending.get(key)?.stop();
      pending.set(key, retransmitter);
      retransmitter.start();
    }
  }

  respondStateless(status: number, reason: string, extras?: ResponseExtras): void {
    const txn = this.txn;
    if (txn === undefined || this.answeredStatelessly) return;
    if (txn instanceof InviteServerTransaction || txn.isFinal) {
      this.respond(status, reason, extras);
      return;
    }
    this.answeredStatelessly = true;
    this.deps.table.discard(txn);
    const response = makeResponse(this.request, status, reason, this.withTag(status, extras));
    this.deps.ctx.sendQuietly(serialize(response), txn.destination);
  }

  waitForAck(): Promise<SipRequest | undefined> {
    if (!(this.txn instanceof InviteServerTransaction)) return Promise.resolve(undefined);
    if (this.ackResult.settled) return Promise.resolve(this.ackResult.value);
    return new Promise((resolve) => this.ackWaiters.push(resolve));
  }

  /** The stack is stopping or the INVITE was cancelled: nobody will ACK. */
  settleAck(ack: SipRequest | undefined): void {
    if (this.ackResult.settled) return;
    this.ackResult = { settled: true, value: ack };
    const waiters = this.ackWaiters;
    this.ackWaiters = [];
    for (const w of waiters) w(ack);
  }

  private withTag(status: number, extras: ResponseExtras | undefined): ResponseExtras | undefined {
    if (status === 100) return extras; // 8.2.6.2: no tag on 100 Trying
    if (extras?.toTag !== undefined) {
      this.tag ??= extras.toTag;
      return extras;
    }
    return { ...extras, toTag: this.toTag };
  }

  private ignored(status: number): void {
    this.deps.ctx.log.debug({ status, method: this.request.method, callId: this.request.headers['call-id'] }, 'response after the final one ignored');
  }
}
