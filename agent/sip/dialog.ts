// A SIP dialog (RFC 3261 §12) as either side holds it: its id (Call-ID + local and
// remote tags), the CSeq numbers both ways, the route set, the remote target, and
// the in-dialog requests built from them (BYE, re-INVITE, UPDATE, INFO, the ACK
// for a 2xx). Nothing here sends: the owner (a call leg, voicemail, MWI) passes
// the requests to SipStack and feeds back what arrives. Generic on purpose, so any
// feature that needs a dialog uses this one.
//
// Where an in-dialog request goes: when the owner knows the flow the peer uses
// (the source of its INVITE or REGISTER: the NAT-safe address), `flow` wins, as
// RFC 5626 and every PBX behind NAT does; otherwise the first Route (loose
// routing) or the remote target, which must then name an IP address (the agent
// does no DNS for in-dialog targets).

import { isIP } from 'node:net';
import { newTag } from './branch.ts';
import { bareHost } from './transport.ts';
import type { Endpoint, NameAddr, Params, SipRequest, SipResponse, TransportName } from './types.ts';
import { parseUri } from './uri.ts';

export type DialogState = 'early' | 'confirmed' | 'terminated';
export type DialogRole = 'uac' | 'uas';

/** A request the dialog cannot build or accept; `status` is the response to give when it is incoming. */
export class DialogError extends Error {
  readonly code: 'EDIALOG';
  readonly status: number;
  constructor(message: string, status = 500) {
    super(message);
    this.name = 'DialogError';
    this.code = 'EDIALOG';
    this.status = status;
  }
}

export interface InDialogOptions {
  /** Body as a latin1 string; give its type in contentType. */
  body?: string;
  contentType?: string;
  /** Extra headers by name (Reason, Event, Session-Expires...). */
  headers?: Record<string, string | string[]>;
}

function copyParams(params: Params): Params {
  const copy: Params = Object.create(null);
  for (const name in params) copy[name] = params[name] ?? null;
  return copy;
}

function copyNameAddr(na: NameAddr): NameAddr {
  const out: NameAddr = { uri: na.uri, params: copyParams(na.params) };
  if (na.name !== undefined) out.name = na.name;
  return out;
}

function withTag(na: NameAddr, tag: string): NameAddr {
  const out = copyNameAddr(na);
  out.params['tag'] = tag;
  return out;
}

function tagOf(na: NameAddr): string | undefined {
  const tag = na.params['tag'];
  return typeof tag === 'string' && tag !== '' ? tag : undefined;
}

/** The Contact URI of a message (the first one), or undefined. */
export function contactUriOf(msg: SipRequest | SipResponse): string | undefined {
  const contact = msg.headers.contact;
  if (contact === undefined || contact === '*') return undefined;
  return contact[0]?.uri;
}

/** The dialog id as the receiving side computes it from a request: Call-ID, To tag (ours), From tag. */
export function dialogIdOfRequest(req: SipRequest): string | undefined {
  const local = tagOf(req.headers.to);
  const remote = tagOf(req.headers.from);
  if (local === undefined || remote === undefined) return undefined;
  return dialogKey(req.headers['call-id'], local, remote);
}

export function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}\n${localTag}\n${remoteTag}`;
}

/** Where a SIP URI points: its transport parameter, IP host and port. Undefined for a host name. */
export function endpointOfUri(uriText: string, fallback: TransportName = 'udp'): Endpoint | undefined {
  const uri = parseUri(uriText);
  if (uri === undefined || (uri.scheme !== 'sip' && uri.scheme !== 'sips')) return undefined;
  const host = bareHost(uri.host);
  if (isIP(host) === 0) return undefined;
  const param = uri.params['transport'];
  const transport: TransportName = typeof param === 'string' ? (param.toLowerCase() === 'tcp' ? 'tcp' : 'udp') : fallback;
  return { transport, address: host, port: uri.port ?? 5060 };
}

export interface DialogInit {
  role: DialogRole;
  callId: string;
  localTag: string;
  remoteTag: string;
  /** Our address (From for a UAC, To for a UAS) without the tag. */
  localUri: NameAddr;
  remoteUri: NameAddr;
  localSeq: number;
  remoteSeq: number | undefined;
  remoteTarget: string;
  routeSet: NameAddr[];
  /** Our Contact URI, sent in every request that needs one. */
  localContact: string;
  state: DialogState;
}

export class Dialog {
  readonly role: DialogRole;
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  readonly localUri: NameAddr;
  readonly remoteUri: NameAddr;
  readonly localContact: string;
  /** The fixed next hop for requests we send (the peer's flow); overrides route set and target. */
  flow: Endpoint | undefined;
  #state: DialogState;
  #localSeq: number;
  #remoteSeq: number | undefined;
  #remoteTarget: string;
  #routeSet: NameAddr[];

  constructor(init: DialogInit) {
    this.role = init.role;
    this.callId = init.callId;
    this.localTag = init.localTag;
    this.remoteTag = init.remoteTag;
    this.localUri = init.localUri;
    this.remoteUri = init.remoteUri;
    this.localContact = init.localContact;
    this.#state = init.state;
    this.#localSeq = init.localSeq;
    this.#remoteSeq = init.remoteSeq;
    this.#remoteTarget = init.remoteTarget;
    this.#routeSet = init.routeSet;
  }

  /**
   * The dialog as it stands, in the shape it is built from: a transfer copies it to
   * take it over, MWI stores it so a subscription outlives a restart.
   */
  snapshot(): DialogInit {
    return {
      role: this.role,
      callId: this.callId,
      localTag: this.localTag,
      remoteTag: this.remoteTag,
      localUri: this.localUri,
      remoteUri: this.remoteUri,
      localSeq: this.#localSeq,
      remoteSeq: this.#remoteSeq,
      remoteTarget: this.#remoteTarget,
      routeSet: [...this.#routeSet],
      localContact: this.localContact,
      state: this.#state,
    };
  }

  /**
   * The UAS side (§12.1.1), from the request that creates the dialog and the To tag
   * of our response. Early until confirm() (our 2xx).
   */
  static asUas(request: SipRequest, localTag: string, localContact: string, state: DialogState = 'early'): Dialog {
    const target = contactUriOf(request);
    if (target === undefined) throw new DialogError('a dialog-creating request needs a Contact', 400);
    const remoteTag = tagOf(request.headers.from);
    if (remoteTag === undefined) throw new DialogError('a dialog-creating request needs a From tag', 400);
    return new Dialog({
      role: 'uas',
      callId: request.headers['call-id'],
      localTag,
      remoteTag,
      localUri: stripTag(request.headers.to),
      remoteUri: copyNameAddr(request.headers.from),
      localSeq: 0,
      remoteSeq: request.headers.cseq.seq,
      remoteTarget: target,
      // §12.1.1: the Record-Route of the request, in order.
      routeSet: (request.headers['record-route'] ?? []).map(copyNameAddr),
      localContact,
      state,
    });
  }

  /**
   * The UAC side (§12.1.2), from the request we sent and a response that carries a
   * To tag: a 1xx makes an early dialog, a 2xx a confirmed one.
   */
  static asUac(request: SipRequest, response: SipResponse, localContact: string): Dialog {
    const remoteTag = tagOf(response.headers.to);
    if (remoteTag === undefined) throw new DialogError('a response without a To tag creates no dialog');
    const localTag = tagOf(request.headers.from);
    if (localTag === undefined) throw new DialogError('our request has no From tag');
    const target = contactUriOf(response);
    // §12.1.2: the route set is the Record-Route of the response, reversed.
    const routeSet = [...(response.headers['record-route'] ?? [])].reverse().map(copyNameAddr);
    return new Dialog({
      role: 'uac',
      callId: request.headers['call-id'],
      localTag,
      remoteTag,
      localUri: stripTag(request.headers.from),
      remoteUri: stripTag(response.headers.to),
      localSeq: request.headers.cseq.seq,
      remoteSeq: undefined,
      // A 1xx may lack a Contact; the Request-URI stays the target until one comes.
      remoteTarget: target ?? request.uri,
      routeSet,
      localContact,
      state: response.status >= 200 ? 'confirmed' : 'early',
    });
  }

  get id(): string {
    return dialogKey(this.callId, this.localTag, this.remoteTag);
  }

  get state(): DialogState {
    return this.#state;
  }

  get localSeq(): number {
    return this.#localSeq;
  }

  get remoteSeq(): number | undefined {
    return this.#remoteSeq;
  }

  get remoteTarget(): string {
    return this.#remoteTarget;
  }

  get routeSet(): readonly NameAddr[] {
    return this.#routeSet;
  }

  /** A 2xx confirmed the dialog; on the UAC side its Contact and Record-Route are final (§12.1.2, §13.2.2.4). */
  confirm(response?: SipResponse): void {
    if (this.#state === 'terminated') return;
    if (response !== undefined && this.role === 'uac' && this.#state === 'early') {
      this.#routeSet = [...(response.headers['record-route'] ?? [])].reverse().map(copyNameAddr);
    }
    if (response !== undefined) this.refreshTarget(response);
    this.#state = 'confirmed';
  }

  terminate(): void {
    this.#state = 'terminated';
  }

  /**
   * Target refresh (§12.2.1.2, §12.2.2, RFC 3311): a re-INVITE, UPDATE or their 2xx
   * with a Contact replaces the remote target.
   */
  refreshTarget(msg: SipRequest | SipResponse): void {
    const target = contactUriOf(msg);
    if (target !== undefined) this.#remoteTarget = target;
  }

  /**
   * Checks an incoming in-dialog request (§12.2.2): a CSeq lower than the last one
   * is out of order (500); ACK and CANCEL reuse their INVITE's number and are not
   * counted. Target-refresh requests update the remote target. Throws DialogError.
   */
  receiveRequest(req: SipRequest): void {
    if (this.#state === 'terminated') throw new DialogError('the dialog has ended', 481);
    if (req.method === 'ACK' || req.method === 'CANCEL') return;
    const seq = req.headers.cseq.seq;
    if (this.#remoteSeq !== undefined && seq <= this.#remoteSeq) {
      throw new DialogError(`CSeq ${seq} is not above ${this.#remoteSeq}`, 500);
    }
    this.#remoteSeq = seq;
    if (req.method === 'INVITE' || req.method === 'UPDATE') this.refreshTarget(req);
  }

  /** Whether a request belongs to this dialog (Call-ID and both tags, from the receiver's side). */
  matches(req: SipRequest): boolean {
    return dialogIdOfRequest(req) === this.id;
  }

  /**
   * A new in-dialog request (§12.2.1.1) with the next local CSeq. ACK is built with
   * ack(), CANCEL by the transaction layer: both reuse the INVITE's number.
   */
  createRequest(method: string, options: InDialogOptions = {}): SipRequest {
    if (method === 'ACK' || method === 'CANCEL') throw new DialogError(`${method} is not built with createRequest`);
    if (this.#state === 'terminated') throw new DialogError(`cannot send ${method}: the dialog has ended`);
    this.#localSeq++;
    return this.#build(method, this.#localSeq, options);
  }

  /** The ACK for a 2xx to the INVITE with CSeq `inviteSeq` (§13.2.2.4); carries the answer in a late-offer exchange. */
  ack(inviteSeq: number, options: InDialogOptions = {}): SipRequest {
    return this.#build('ACK', inviteSeq, options);
  }

  /** Where a request we send in this dialog goes. Throws DialogError when the target is a host name and no flow is known. */
  nextHop(): Endpoint {
    if (this.flow !== undefined) return { ...this.flow };
    const first = this.#routeSet[0];
    const uri = first !== undefined ? first.uri : this.#remoteTarget;
    const endpoint = endpointOfUri(uri);
    if (endpoint === undefined) throw new DialogError(`cannot reach ${uri}: not a SIP URI with an IP address`);
    return endpoint;
  }

  #build(method: string, seq: number, options: InDialogOptions): SipRequest {
    // §12.2.1.1: loose routing only (every route with ;lr). A strict router first in
    // the set would need the target moved to the end; none of our peers do that.
    const headers: SipRequest['headers'] = {
      via: [],
      to: withTag(this.remoteUri, this.remoteTag),
      from: withTag(this.localUri, this.localTag),
      'call-id': this.callId,
      cseq: { seq, method },
      'max-forwards': '70',
    };
    if (this.#routeSet.length > 0) headers.route = this.#routeSet.map(copyNameAddr);
    if (method !== 'BYE' && method !== 'ACK' && method !== 'CANCEL' && method !== 'INFO') {
      headers.contact = [{ uri: this.localContact, params: Object.create(null) as Params }];
    }
    for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
    if (options.body !== undefined && options.body !== '') headers['content-type'] = options.contentType ?? 'application/sdp';
    return { kind: 'request', method, uri: this.#remoteTarget, version: 'SIP/2.0', headers, content: options.body ?? '' };
  }
}

function stripTag(na: NameAddr): NameAddr {
  const out = copyNameAddr(na);
  delete out.params['tag'];
  return out;
}

/** A fresh local tag for a new dialog. */
export function newDialogTag(): string {
  return newTag();
}
