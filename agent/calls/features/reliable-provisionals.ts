// Reliable provisional responses (RFC 3262, "100rel") toward a caller that offers
// them (100rel in its INVITE's Supported or Require): every 180/183 the agent relays
// carries Require: 100rel and an RSeq, is retransmitted from T1 doubling until the
// caller's PRACK acknowledges it (at most 64*T1), and the PRACK gets its 200. Only
// one reliable provisional is unacknowledged at a time (§3): a later one waits for
// the PRACK and only the newest waiting one is sent. The 2xx waits for the PRACK of
// a reliable provisional that carried SDP (§3). A caller that did not offer 100rel
// gets plain provisionals, as before.
//
// PRACKs arrive in the early dialog, which the call core does not route before the
// answer: the feature intercepts that dialog for the whole call, takes the PRACKs
// and passes everything else on.

import type { Logger } from 'pino';
import type { CallFeature, DialogInterceptor } from '../call-core.ts';
import type { CallSession } from '../call-session.ts';
import type { IncomingRequest, ResponseExtras } from '../../sip/stack.ts';
import { hasOptionTag } from './session-timer.ts';

export interface ProvisionalCore {
  interceptDialog(dialogId: string, handler: DialogInterceptor): () => void;
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
  /** It carried SDP: the 2xx must wait for its PRACK (§3). */
  hasSdp: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Called when it is acknowledged or given up on. */
  settled: Array<() => void>;
}

/** The reliable provisionals of one call's caller leg. */
class ReliableSender {
  readonly #session: CallSession;
  readonly #t1: number;
  readonly #log: Logger;
  #rseq: number;
  #outstanding: Outstanding | undefined;
  #waiting: { status: number; reason: string; extras: ResponseExtras } | undefined;
  #finalSent = false;
  #undoIntercept: (() => void) | undefined;

  constructor(session: CallSession, t1: number, log: Logger) {
    this.#session = session;
    this.#t1 = t1;
    this.#log = log;
    // §3: the first RSeq is random, between 1 and 2^31 - 1.
    this.#rseq = 1 + Math.floor(Math.random() * 0x7ffffff0);
  }

  /**
   * Replaces the leg's provisional sender, holds its 2xx back while a reliable
   * provisional with SDP awaits its PRACK (§3), and takes the dialog's PRACKs.
   */
  install(core: ProvisionalCore): void {
    const a = this.#session.a;
    a.provisionalSender = (status, reason, extras) => this.#send(status, reason, extras);
    const answer = a.answer.bind(a);
    a.answer = async (sdp: string) => {
      await this.#sdpAcknowledged();
      this.#finalSent = true;
      this.#waiting = undefined;
      return answer(sdp);
    };
    this.#undoIntercept = core.interceptDialog(a.dialog.id, (incoming, next) => {
      if (incoming.request.method === 'PRACK') this.#prack(incoming);
      else next(incoming);
    });
  }

  stop(): void {
    this.#settle();
    this.#waiting = undefined;
    this.#undoIntercept?.();
  }

  /** Provisionals still go out: no final response yet, the call not over. */
  #open(): boolean {
    return !this.#finalSent && this.#session.call.state !== 'ended';
  }

  /** Resolves once no reliable provisional with SDP is unacknowledged. */
  #sdpAcknowledged(): Promise<void> {
    const out = this.#outstanding;
    if (out === undefined || !out.hasSdp) return Promise.resolve();
    return new Promise((resolve) => out.settled.push(resolve));
  }

  /** The outstanding provisional is done with (PRACKed, given up on, or the call ended). */
  #settle(): void {
    const out = this.#outstanding;
    if (out === undefined) return;
    clearTimeout(out.timer);
    this.#outstanding = undefined;
    for (const resolve of out.settled.splice(0)) resolve();
  }

  #send(status: number, reason: string, extras: ResponseExtras): void {
    if (!this.#open()) return;
    if (this.#outstanding !== undefined) {
      this.#waiting = { status, reason, extras };
      return;
    }
    const rseq = this.#rseq++;
    const reliable: ResponseExtras = { ...extras, headers: { ...extras.headers, Require: '100rel', RSeq: String(rseq) } };
    const out: Outstanding = { rseq, hasSdp: (extras.content ?? '') !== '', timer: undefined, settled: [] };
    this.#outstanding = out;
    const transmit = (interval: number, elapsed: number): void => {
      if (this.#outstanding !== out) return;
      if (!this.#open()) {
        this.#settle();
        return;
      }
      this.#session.a.incoming.respond(status, reason, reliable);
      if (elapsed + interval >= 64 * this.#t1) {
        out.timer = setTimeout(() => {
          if (this.#outstanding !== out) return;
          this.#log.info({ event: 'call.prack_missing', status, rseq }, 'caller never acknowledged a reliable provisional');
          this.#settle();
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
    if (next !== undefined) this.#send(next.status, next.reason, next.extras);
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
    incoming.respond(200, 'OK');
    this.#settle();
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
