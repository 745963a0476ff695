// All server transactions, matched by key (keys.ts): live non-INVITE ones (the TU
// has the request), completed non-INVITE ones (bytes only, CompletedResponseStore)
// and INVITE ones. One sweep, run by the stack on an interval, expires completed
// entries and gives up on requests the TU never answered.

import { responseDestination } from '../transport.ts';
import { timerJ } from '../timers.ts';
import type { Endpoint, SipRequest, SipResponse } from '../types.ts';
import { compactResponse, expandResponse } from './compact-response.ts';
import { CompletedResponseStore } from './completed-store.ts';
import type { TransactionContext } from './context.ts';
import { InviteServerTransaction } from './server-invite.ts';
import { NonInviteServerTransaction } from './server-non-invite.ts';

export class ServerTransactionTable {
  private readonly ctx: TransactionContext;
  private readonly now: () => number;
  private readonly live = new Map<string, NonInviteServerTransaction>();
  private readonly invites = new Map<string, InviteServerTransaction>();
  private readonly completed: CompletedResponseStore;

  constructor(ctx: TransactionContext, now: () => number, completed = new CompletedResponseStore()) {
    this.ctx = ctx;
    this.now = now;
    this.completed = completed;
  }

  get size(): number {
    return this.live.size + this.invites.size + this.completed.size;
  }

  get completedCount(): number {
    return this.completed.size;
  }

  /**
   * If `req` (whose top Via is already stamped) belongs to an existing transaction,
   * lets that transaction handle it and returns true.
   */
  absorbRetransmission(key: string, req: SipRequest, source: Endpoint): boolean {
    if (req.method === 'INVITE') {
      const txn = this.invites.get(key);
      if (txn === undefined) return false;
      txn.receiveRetransmission();
      return true;
    }
    const txn = this.live.get(key);
    if (txn !== undefined) {
      txn.receiveRetransmission();
      return true;
    }
    const kept = this.completed.lookup(key, this.now());
    if (kept === undefined) return false;
    this.ctx.countAbsorbed();
    const bytes = expandResponse(kept, req);
    const via = req.headers.via[0];
    if (via !== undefined && bytes !== undefined) this.ctx.sendQuietly(bytes, responseDestination(via, source));
    return true;
  }

  findInvite(key: string): InviteServerTransaction | undefined {
    return this.invites.get(key);
  }

  createNonInvite(key: string, req: SipRequest, source: Endpoint, destination: Endpoint): NonInviteServerTransaction {
    const txn = new NonInviteServerTransaction(key, req, source, destination, this.now(), this.ctx, (t, bytes, final) => this.completeNonInvite(t, bytes, final));
    this.live.set(key, txn);
    return txn;
  }

  createInvite(key: string, req: SipRequest, source: Endpoint, destination: Endpoint): InviteServerTransaction {
    const txn = new InviteServerTransaction(key, req, source, destination, this.ctx, (t) => {
      if (this.invites.get(t.key) === t) this.invites.delete(t.key);
    });
    this.invites.set(key, txn);
    txn.start();
    return txn;
  }

  /** Forgets a live non-INVITE transaction without completing it (a stateless answer was sent). */
  discard(txn: NonInviteServerTransaction): void {
    if (this.live.get(txn.key) === txn) this.live.delete(txn.key);
  }

  /**
   * Expires completed entries; drops non-INVITE requests the TU has not answered
   * within 64*T1 (the client gave up at Timer F long ago).
   */
  sweep(): void {
    const now = this.now();
    this.completed.sweep(now);
    const limit = now - this.ctx.timers.transactionTimeout;
    for (const txn of this.live.values()) {
      if (txn.createdAt > limit) break; // insertion order is creation order
      this.live.delete(txn.key);
      this.ctx.log.warn({ method: txn.request.method, callId: txn.request.headers['call-id'] }, 'dropped a server transaction the TU never answered');
    }
  }

  stop(): void {
    for (const txn of this.invites.values()) txn.stop();
    this.invites.clear();
    this.live.clear();
    this.completed.clear();
  }

  private completeNonInvite(txn: NonInviteServerTransaction, bytes: Buffer, final: SipResponse): void {
    if (this.live.get(txn.key) === txn) this.live.delete(txn.key);
    const wait = timerJ(this.ctx.timers, txn.destination.transport);
    if (wait === 0) return;
    // Without the lines a retransmission of the request gives back (compact-response.ts).
    if (!this.completed.add(txn.key, compactResponse(txn.request, final, bytes), this.now() + wait)) {
      this.ctx.log.debug({ method: txn.request.method, bytes: bytes.length }, 'response too large to keep for retransmissions');
    }
  }
}
