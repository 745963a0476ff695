// Reliable provisional responses (RFC 3262, "100rel") toward a caller that offers
// them (100rel in its INVITE's Supported or Require): every 180/183 the agent relays
// carries Require: 100rel and an RSeq, is retransmitted from T1 doubling until the
// caller's PRACK acknowledges it (at most 64*T1), and the PRACK gets its 200. Only
// one reliable provisional is unacknowledged at a time (§3): a later one waits for
// the PRACK and only the newest waiting one is sent. A caller that did not offer
// 100rel gets plain provisionals, as before.
//
// PRACKs arrive in the early dialog, which the call core does not route before the
// answer: the feature takes that dialog's requests until the call is answered, and
// passes everything but PRACK on to the call.

import type { Logger } from 'pino';
import type { CallFeature } from '../call-core.ts';
import type { CallSession } from '../call-session.ts';
import type { IncomingRequest, ResponseExtras } from '../../sip/stack.ts';
import { hasOptionTag } from './session-timer.ts';

export interface ProvisionalCore {
  interceptDialog(dialogId: string, handler: (incoming: IncomingRequest) => void): () => void;
}

/** Parses RAck ("RSeq CSeq-number Method", RFC 3262 §7.2). */
export function parseRAck(value: unknown): { rseq: number; cseq: number; method: string } | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^\s*([0-9]{1,10})\s+([0-9]{1,10})\s+([A-Za-z]+)\s*$/.exec(value);
  if (!m) return undefined;
  return { rseq: Number(m[1]), cseq: Number(m[2]), method: (m[3] as string).toUpperCase() };
}

interface Outstanding {
  rseq: number;
  status: number;
  reason: string;
  extras: ResponseExtras;
  timer: NodeJS.Timeout | undefined;
}

/** The reliable provisionals of one call's caller leg. */
class ReliableSender {
  readonly #session: CallSession;
  readonly #t1: number;
  readonly #log: Logger;
  #rseq: number;
  #outstanding: Outstanding | undefined;
  #waiting: { status: number; reason: string; extras: ResponseExtras } | undefined;
  #undoIntercept: (() => void) | undefined;

  constructor(session: CallSession, t1: number, log: Logger) {
    this.#session = session;
    this.#t1 = t1;
    this.#log = log;
    // §3: the first RSeq is random, between 1 and 2^31 - 1.
    this.#rseq = 1 + Math.floor(Math.random() * 0x7ffffff0);
  }

  /** Replaces the leg's provisional sender and takes the early dialog's requests. */
  install(core: ProvisionalCore): void {
    const a = this.#session.a;
    a.provisionalSender = (status, reason, extras) => this.#send(status, reason, extras);
    this.#undoIntercept = core.interceptDialog(a.dialog.id, (incoming) => this.#inDialog(incoming));
  }

  stop(): void {
    clearTimeout(this.#outstanding?.timer);
    this.#outstanding = undefined;
    this.#waiting = undefined;
    this.#undoIntercept?.();
  }

  #ringing(): boolean {
    const state = this.#session.call.state;
    return state === 'routing' || state === 'ringing' || state === 'early';
  }

  #send(status: number, reason: string, extras: ResponseExtras): void {
    if (this.#outstanding !== undefined) {
      this.#waiting = { status, reason, extras };
      return;
    }
    const rseq = this.#rseq++;
    const reliable: ResponseExtras = { ...extras, headers: { ...extras.headers, Require: '100rel', RSeq: String(rseq) } };
    const out: Outstanding = { rseq, status, reason, extras: reliable, timer: undefined };
    this.#outstanding = out;
    const transmit = (interval: number, elapsed: number): void => {
      if (this.#outstanding !== out || !this.#ringing()) return;
      this.#session.a.incoming.respond(status, reason, reliable);
      if (elapsed + interval >= 64 * this.#t1) {
        out.timer = setTimeout(() => {
          if (this.#outstanding !== out) return;
          this.#log.info({ event: 'call.prack_missing', status, rseq }, 'caller never acknowledged a reliable provisional');
          this.#outstanding = undefined;
          this.#flush();
        }, interval);
        return;
      }
      out.timer = setTimeout(() => transmit(interval * 2, elapsed + interval), interval);
    };
    transmit(this.#t1, 0);
  }

  #flush(): void {
    const next = this.#waiting;
    this.#waiting = undefined;
    if (next !== undefined && this.#ringing()) this.#send(next.status, next.reason, next.extras);
  }

  #inDialog(incoming: IncomingRequest): void {
    const req = incoming.request;
    if (req.method !== 'PRACK') {
      if (!this.#ringing()) this.#undoIntercept?.();
      void this.#session.handleInDialog('a', incoming);
      return;
    }
    this.#prack(incoming);
  }

  /** RFC 3262 §3: a PRACK matching the outstanding RSeq, the INVITE's CSeq and method gets 200; anything else 481. */
  #prack(incoming: IncomingRequest): void {
    const rack = parseRAck(incoming.request.headers['rack']);
    const out = this.#outstanding;
    const invite = this.#session.a.incoming.request.headers.cseq;
    if (rack === undefined || out === undefined || rack.rseq !== out.rseq || rack.cseq !== invite.seq || rack.method !== invite.method) {
      incoming.respond(481, 'Call/Transaction Does Not Exist');
      return;
    }
    try {
      this.#session.a.dialog.receiveRequest(incoming.request);
    } catch {
      incoming.respond(500, 'Server Internal Error', { headers: { 'Retry-After': '1' } });
      return;
    }
    clearTimeout(out.timer);
    this.#outstanding = undefined;
    incoming.respond(200, 'OK');
    this.#flush();
  }
}

export class ReliableProvisionals implements CallFeature {
  readonly #core: ProvisionalCore;
  readonly #t1: number;

  constructor(core: ProvisionalCore, t1Ms = 500) {
    this.#core = core;
    this.#t1 = t1Ms;
  }

  started(session: CallSession): void {
    const headers = session.a.incoming.request.headers;
    if (!hasOptionTag(headers['supported'], '100rel') && !hasOptionTag(headers['require'], '100rel')) return;
    const sender = new ReliableSender(session, this.#t1, session.log);
    sender.install(this.#core);
    session.onEnd(() => sender.stop());
  }
}
