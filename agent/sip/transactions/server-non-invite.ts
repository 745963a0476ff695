// Non-INVITE server transaction, RFC 3261 17.2.2 (figure 8), while it is alive:
// Trying (request with the TU) and Proceeding (a provisional was sent). When the
// final response goes out the object is dropped; what remains of the Completed
// state (key + response bytes until Timer J) lives in the CompletedResponseStore,
// which the ServerTransactionTable owns.

import { serialize } from '../serialize.ts';
import type { Endpoint, SipRequest, SipResponse } from '../types.ts';
import type { TransactionContext } from './context.ts';

export type FinalHandler = (txn: NonInviteServerTransaction, finalBytes: Buffer, final: SipResponse) => void;

export class NonInviteServerTransaction {
  readonly key: string;
  readonly request: SipRequest;
  readonly source: Endpoint;
  /** Where responses go (18.2.2), fixed when the request arrived. */
  readonly destination: Endpoint;
  readonly createdAt: number;
  private readonly ctx: TransactionContext;
  private readonly onFinal: FinalHandler;
  private state: 'trying' | 'proceeding' | 'completed' = 'trying';
  private lastProvisional: Buffer | undefined;

  constructor(key: string, request: SipRequest, source: Endpoint, destination: Endpoint, createdAt: number, ctx: TransactionContext, onFinal: FinalHandler) {
    this.key = key;
    this.request = request;
    this.source = source;
    this.destination = destination;
    this.createdAt = createdAt;
    this.ctx = ctx;
    this.onFinal = onFinal;
  }

  get isFinal(): boolean {
    return this.state === 'completed';
  }

  /** The same request again: absorbed in Trying, answered with the last provisional in Proceeding. */
  receiveRetransmission(): void {
    this.ctx.countAbsorbed();
    if (this.state === 'proceeding' && this.lastProvisional !== undefined) this.ctx.sendQuietly(this.lastProvisional, this.destination);
  }

  /** Sends a response from the TU. Returns false (and sends nothing) after the final one. */
  respond(response: SipResponse): boolean {
    if (this.state === 'completed') return false;
    const bytes = serialize(response);
    this.ctx.sendQuietly(bytes, this.destination);
    if (response.status < 200) {
      this.state = 'proceeding';
      this.lastProvisional = bytes;
    } else {
      this.state = 'completed';
      this.lastProvisional = undefined;
      this.onFinal(this, bytes, response);
    }
    return true;
  }
}
