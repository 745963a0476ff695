// A call leg carried by a SIP dialog: the caller's (we are its UAS) or a callee's
// (we are its UAC). Each has its own Call-ID, tags and CSeq: the two sides of the
// B2BUA share nothing on the wire. Requests go to the peer's flow (the address its
// INVITE or REGISTER came from), which is what reaches a phone behind NAT.

import type { Logger } from 'pino';
import { newCallId, newTag } from '../sip/branch.ts';
import { Dialog, type InDialogOptions } from '../sip/dialog.ts';
import type { IncomingRequest, ResponseExtras, SipStack } from '../sip/stack.ts';
import type { Endpoint, NameAddr, Params, SipRequest, SipResponse, TransportName } from '../sip/types.ts';

/** Methods we accept in a dialog, announced in Allow. */
export const ALLOWED_METHODS = 'INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, REFER, NOTIFY';
export const USER_AGENT = 'Branchline';

/** RFC 3326 Reason header value for a SIP status. */
export function reasonHeader(status: number, text: string): string {
  return `SIP;cause=${status};text="${text.replace(/["\\\r\n]/g, '')}"`;
}

/** RFC 3261 reason phrases of the final responses the call core gives. */
const REASON_PHRASES: Readonly<Record<number, string>> = {
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  410: 'Gone',
  480: 'Temporarily Unavailable',
  484: 'Address Incomplete',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  603: 'Decline',
};

export function reasonPhrase(status: number): string | undefined {
  return REASON_PHRASES[status];
}

/** Builds our Contact URI for a transport (set by the core from the stack's addresses). */
export type ContactFor = (transport: TransportName, user: string) => string;

function emptyParams(): Params {
  return Object.create(null) as Params;
}

function sdpHeaders(body: string, headers: Record<string, string | string[]> = {}): Record<string, string | string[]> {
  return body === '' ? headers : { ...headers, 'Content-Type': 'application/sdp' };
}

/** The caller's leg: the INVITE we received, answered through its server transaction. */
export class InboundSipLeg {
  readonly incoming: IncomingRequest;
  /** Replaced when a transfer gives the caller's place to someone else (CallSession.replaceParty). */
  dialog: Dialog;
  readonly #stack: SipStack;
  readonly #contact: string;

  /** `tag` is the To tag every response of ours carries (also the one a 407 carried). */
  constructor(incoming: IncomingRequest, stack: SipStack, contactFor: ContactFor, user: string, tag: string) {
    this.incoming = incoming;
    this.#stack = stack;
    this.#contact = contactFor(incoming.source.transport, user);
    // Throws DialogError (400) for an INVITE without Contact or From tag.
    this.dialog = Dialog.asUas(incoming.request, tag, this.#contact);
    this.dialog.flow = { ...incoming.source };
  }

  get callId(): string {
    return this.incoming.request.headers['call-id'];
  }

  /** A 1xx (180/183), with SDP for early media. */
  provisional(status: number, reason: string, sdp = ''): void {
    this.provisionalSender(status, reason, { toTag: this.dialog.localTag, headers: sdpHeaders(sdp, { Contact: `<${this.#contact}>` }), content: sdp });
  }

  /** How a 1xx goes out; features/reliable-provisionals.ts replaces it when the caller offers 100rel. */
  provisionalSender: (status: number, reason: string, extras: ResponseExtras) => void = (status, reason, extras) => this.incoming.respond(status, reason, extras);

  /** Headers a feature adds to the 2xx (Session-Expires, Require: timer). */
  answerHeaders: Record<string, string> = {};

  /** The 2xx with our SDP; resolves with the caller's ACK, or undefined when none came within 64*T1. */
  answer(sdp: string): Promise<SipRequest | undefined> {
    this.incoming.respond(200, 'OK', {
      toTag: this.dialog.localTag,
      headers: sdpHeaders(sdp, { ...this.answerHeaders, Contact: `<${this.#contact}>`, Allow: ALLOWED_METHODS, 'User-Agent': USER_AGENT }),
      content: sdp,
    });
    this.dialog.confirm();
    return this.incoming.waitForAck();
  }

  /** A final failure response with an RFC 3326 Reason (and any extra headers). */
  reject(status: number, reason: string, headers: Record<string, string | string[]> = {}): void {
    this.incoming.respond(status, reason, { toTag: this.dialog.localTag, headers: { Reason: reasonHeader(status, reason), ...headers } });
    this.dialog.terminate();
  }

  /** A request in the confirmed dialog (BYE, re-INVITE, UPDATE, INFO...). */
  send(method: string, options: InDialogOptions = {}): Promise<SipResponse> {
    return sendInDialog(this.#stack, this.dialog, method, options);
  }

  ack(inviteSeq: number, body = ''): Promise<void> {
    return this.#stack.sendStateless(this.dialog.ack(inviteSeq, { body }), this.dialog.nextHop());
  }
}

export interface OutboundLegInit {
  stack: SipStack;
  log: Logger;
  /** Where to send: the registered contact's flow. */
  destination: Endpoint;
  requestUri: string;
  from: NameAddr;
  to: NameAddr;
  contact: string;
  /** Route set for the INVITE (the binding's Path). */
  route: string[];
  sdp: string;
  /** Extra headers on the INVITE (X-Branchline-Site to a peer site). */
  headers?: Record<string, string>;
}

/** A callee's leg: an INVITE we send to one registered contact. */
export class OutboundSipLeg {
  readonly invite: SipRequest;
  readonly destination: Endpoint;
  dialog: Dialog | undefined;
  #finalReceived = false;
  #ack: SipRequest | undefined;
  readonly #stack: SipStack;
  readonly #log: Logger;
  readonly #contact: string;

  constructor(init: OutboundLegInit) {
    this.#stack = init.stack;
    this.#log = init.log;
    this.destination = init.destination;
    this.#contact = init.contact;
    const from: NameAddr = { ...init.from, params: emptyParams() };
    from.params['tag'] = newTag();
    const headers: SipRequest['headers'] = {
      via: [],
      from,
      to: { ...init.to, params: emptyParams() },
      'call-id': newCallId(),
      cseq: { seq: 1, method: 'INVITE' },
      'max-forwards': '70',
      contact: [{ uri: init.contact, params: emptyParams() }],
      allow: ALLOWED_METHODS,
      'user-agent': USER_AGENT,
    };
    if (init.route.length > 0) headers.route = init.route.map((r) => ({ uri: r.replace(/^<|>$/g, ''), params: emptyParams() }));
    if (init.sdp !== '') headers['content-type'] = 'application/sdp';
    for (const [name, value] of Object.entries(init.headers ?? {})) headers[name.toLowerCase()] = value;
    this.invite = { kind: 'request', method: 'INVITE', uri: init.requestUri, version: 'SIP/2.0', headers, content: init.sdp };
  }

  get callId(): string {
    return this.invite.headers['call-id'];
  }

  /**
   * Sends the INVITE. onProvisional gets each 1xx (after the early dialog is made
   * from it); the promise resolves with the final response, or rejects on timeout
   * (SipTimeoutError) or a transport failure. 2xx retransmissions are ACKed again; a
   * 2xx from another fork is ACKed and hung up with `strayReason` (handled here, not
   * by the caller: the INVITE transaction keeps this handler for 32 s after the
   * answer, and it must not keep the call alive with it).
   */
  start(onProvisional: (response: SipResponse) => void, strayReason: string): Promise<SipResponse> {
    const provisional = (res: SipResponse): void => {
      if (res.status > 100 && this.dialog === undefined && typeof res.headers.to.params['tag'] === 'string') {
        this.dialog = this.#makeDialog(res);
      }
      onProvisional(res);
    };
    const additional = (res: SipResponse): void => {
      // Our ACK was lost (the same 2xx again), or a fork further on answered too.
      const dialog = this.dialog;
      if (this.#ack !== undefined && dialog !== undefined && res.headers.to.params['tag'] === dialog.remoteTag) {
        this.#stack.sendStateless(this.#ack, dialog.nextHop()).catch((err: unknown) => this.#log.debug({ err }, 'could not resend ACK'));
      } else void this.refuse2xx(res, strayReason);
    };
    return this.#stack.request(this.invite, this.destination, provisional, { onAdditional2xx: additional }).then((res) => {
      this.#finalReceived = true;
      if (res.status >= 200 && res.status < 300) {
        if (this.dialog === undefined || this.dialog.remoteTag !== res.headers.to.params['tag']) this.dialog = this.#makeDialog(res);
        this.dialog.confirm(res);
      } else this.dialog?.terminate();
      return res;
    });
  }

  /** CANCEL before a final response (sent once a provisional came, RFC 3261 9.1). */
  async cancel(reason?: string): Promise<void> {
    if (this.#finalReceived) return;
    await this.#stack.cancel(this.invite, this.destination, reason === undefined ? undefined : { Reason: reason }).catch((err: unknown) => {
      this.#log.debug({ err, callId: this.callId }, 'CANCEL failed');
    });
  }

  /** ACKs the 2xx; kept so a retransmitted 2xx is ACKed again. */
  ack(body = ''): Promise<void> {
    const dialog = this.dialog;
    if (dialog === undefined) return Promise.resolve();
    this.#ack = dialog.ack(this.invite.headers.cseq.seq, { body });
    return this.#stack.sendStateless(structuredClone(this.#ack), dialog.nextHop());
  }

  /** ACK then BYE a 2xx we do not want (a fork that answered after another won). */
  async refuse2xx(response: SipResponse, reason: string): Promise<void> {
    const dialog = Dialog.asUac(this.invite, response, this.#contact);
    dialog.flow = { ...this.destination };
    dialog.confirm(response);
    await this.#stack.sendStateless(dialog.ack(this.invite.headers.cseq.seq), dialog.nextHop()).catch(() => undefined);
    await sendInDialog(this.#stack, dialog, 'BYE', { headers: { Reason: reason } }).catch(() => undefined);
  }

  send(method: string, options: InDialogOptions = {}): Promise<SipResponse> {
    if (this.dialog === undefined) return Promise.reject(new Error(`no dialog to send ${method} in`));
    return sendInDialog(this.#stack, this.dialog, method, options);
  }

  ackReinvite(inviteSeq: number, body = ''): Promise<void> {
    if (this.dialog === undefined) return Promise.resolve();
    return this.#stack.sendStateless(this.dialog.ack(inviteSeq, { body }), this.dialog.nextHop());
  }

  #makeDialog(res: SipResponse): Dialog {
    const dialog = Dialog.asUac(this.invite, res, this.#contact);
    // The phone's registered flow, not its Contact: the only address that crosses its NAT.
    dialog.flow = { ...this.destination };
    return dialog;
  }
}

function sendInDialog(stack: SipStack, dialog: Dialog, method: string, options: InDialogOptions): Promise<SipResponse> {
  let request: SipRequest;
  let hop: Endpoint;
  try {
    request = dialog.createRequest(method, options);
    hop = dialog.nextHop();
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  return stack.request(request, hop);
}

export type SipLeg = InboundSipLeg | OutboundSipLeg;
