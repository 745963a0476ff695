// The call core (docs/calls.md): takes every call-related request from the SIP
// stack, authenticates new INVITEs, admits them under the concurrency limit, asks
// the dial plan where they go and runs one CallSession per call. In-dialog
// requests find their session by dialog id. Every state change of a call is an
// event on the bus; every ended call leaves a CallRecord (on the bus, and in the
// store when one is given).

import type { Logger } from 'pino';
import type { MediaPolicyName } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { MediaEngine } from '../media/index.ts';
import { newTag } from '../sip/branch.ts';
import { DialogError, dialogIdOfRequest, dialogKey } from '../sip/dialog.ts';
import type { IncomingRequest, SipStack } from '../sip/stack.ts';
import type { SipRequest, TransportName } from '../sip/types.ts';
import { formatHostPort } from '../sip/transport.ts';
import { parseUri, unescapeUriPart } from '../sip/uri.ts';
import type { Binding } from '../store/bindings.ts';
import type { CallRecordStore } from '../store/call-records.ts';
import type { CallerAuthenticator } from './caller-auth.ts';
import { Call, type CallChange } from './call.ts';
import { CallSession, type InDialogHandler, type SessionContext, type TargetHandler } from './call-session.ts';
import { AnchoredMediaPath, DirectMediaPath, type MediaPath, type Side } from './media-path.ts';
import type { DialPlan, RouteTarget, RoutingState } from './routing/types.ts';
import { ALLOWED_METHODS, InboundSipLeg, reasonHeader, type ContactFor } from './sip-leg.ts';

/** Takes a dialog's request, or passes it on with `next` (an earlier interceptor, then the call). */
export type DialogInterceptor = (incoming: IncomingRequest, next: (incoming: IncomingRequest) => void) => void;

/**
 * A feature that takes part in every call (features/session-timer.ts,
 * features/reliable-provisionals.ts).
 */
export interface CallFeature {
  /** After authentication, before anything else: answer the INVITE with a final response and return true to stop it (a 422). */
  screen?(incoming: IncomingRequest, toTag: string): boolean;
  /** The call's session exists and is about to be routed. */
  started?(session: CallSession): void;
}

export interface CallCoreOptions {
  siteId: string;
  domain: string;
  stack: SipStack;
  bus: EventBus;
  logger: Logger;
  media: MediaEngine;
  dialPlan: DialPlan;
  auth: CallerAuthenticator;
  bindingsOf: (extension: string) => readonly Binding[];
  /** Name and media policy override of a configured extension. */
  extension: (number: string) => { name?: string; mediaPolicy?: MediaPolicyName } | undefined;
  defaultPolicy: MediaPolicyName;
  maxConcurrent: number;
  retryAfterSec: number;
  /** Durable call records; without it records only go on the bus. */
  records?: CallRecordStore;
  /**
   * Calls from peer sites' agents (agent/calls/peer-trust.ts): the site an INVITE comes
   * from, or undefined. Such a call is admitted without digest, as origin 'peer'.
   */
  peerSiteOf?: (incoming: IncomingRequest) => string | undefined;
}

/**
 * A call that did not start with an INVITE to the core: a line-card channel calling
 * in (agent/calls/channel-call.ts). The core counts it against the call limit and
 * in the routing state, gives it the requests of the dialogs it registers, ends it
 * on stop(), and emits its events and writes its record like any other call.
 */
export interface AdoptedCall {
  readonly call: Call;
  readonly log: Logger;
  /** Extensions the call involves now (RoutingState.activeCalls). */
  parties(): string[];
  /** A request in one of the dialogs it registered. */
  handleInDialog(incoming: IncomingRequest): Promise<void>;
  /** The agent stops: end the call now. */
  shutdown(): Promise<void>;
}

/** What the core gives an adopted call. */
export interface AdoptedCallLink {
  registerDialog(dialogId: string): void;
  unregisterDialog(dialogId: string): void;
  /** The call has ended (after call.end()): events and the record. */
  ended(): void;
}

export interface AdoptedCallInit {
  caller: string;
  callerName?: string;
  dialed: string;
  mediaPolicy: MediaPolicyName;
  /** Fields for every log line of the call (the channel, the DID). */
  logContext?: Record<string, unknown>;
}

/** Requests that are meaningless outside a dialog (RFC 3261 §12.2.2: 481 there). */
const IN_DIALOG_ONLY = new Set(['BYE', 'UPDATE', 'INFO', 'PRACK', 'NOTIFY']);

/** Visual separators people type in numbers ("+1 (555) 010-2000"). */
const SEPARATORS = /[\s().-]/g;

export class CallCore {
  readonly #opts: CallCoreOptions;
  readonly #log: Logger;
  readonly #sessions = new Set<CallSession>();
  readonly #byInvite = new Map<IncomingRequest, CallSession>();
  readonly #byDialog = new Map<string, { session: CallSession; side: Side }>();
  readonly #handlers = new Map<string, InDialogHandler>();
  readonly #targets = new Map<RouteTarget['kind'], TargetHandler>();
  /** Dialogs a feature answers for instead of their call (a transfer's let-go referrer). */
  readonly #intercepted = new Map<string, DialogInterceptor[]>();
  readonly #features: CallFeature[] = [];
  readonly #pendingRecords = new Set<Promise<void>>();
  readonly #adopted = new Set<AdoptedCall>();
  readonly #adoptedDialogs = new Map<string, AdoptedCall>();
  readonly #routingState: RoutingState;
  readonly #ctx: SessionContext;
  #running = false;

  constructor(opts: CallCoreOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    this.#routingState = {
      registeredContacts: (extension) => opts.bindingsOf(extension).length,
      activeCalls: (extension) => [...this.#sessions, ...this.#adopted].filter((s) => s.call.state !== 'ended' && s.parties().includes(extension)).length,
    };
    this.#ctx = {
      stack: opts.stack,
      domain: opts.domain,
      dialPlan: opts.dialPlan,
      routingState: this.#routingState,
      contactFor: (transport, user) => this.#contactFor(transport, user),
      bindingsOf: opts.bindingsOf,
      policyOf: (extension) => (extension === undefined ? undefined : opts.extension(extension)?.mediaPolicy) ?? opts.defaultPolicy,
      createMediaPath: (policy, log): MediaPath => (policy === 'anchored' ? new AnchoredMediaPath(opts.media, log) : new DirectMediaPath()),
      registerDialog: (id, session, side) => this.#byDialog.set(id, { session, side }),
      unregisterDialog: (id) => this.#byDialog.delete(id),
      inDialogHandler: (method) => this.#handlers.get(method),
      targetHandler: (kind) => this.#targets.get(kind),
      ended: (session) => this.#ended(session),
    };
  }

  start(): void {
    this.#running = true;
  }

  /** Ends every call (BYE / 503) and waits for their records. */
  async stop(): Promise<void> {
    this.#running = false;
    // BYEs to phones that are gone would wait 32 s for an answer: shutdown waits 2 s at most.
    const ended = Promise.all([...this.#sessions, ...this.#adopted].map((s) => s.shutdown()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)))]);
    clearTimeout(timer);
    await Promise.all([...this.#pendingRecords]);
  }

  /** Calls in progress (not ended). */
  get activeCalls(): number {
    return this.#sessions.size + this.#adopted.size;
  }

  /**
   * Takes on a call that started outside SIP (a line-card channel calling in):
   * `build` makes it around a Call wired to the core's events. Refused when the core
   * is not running or at calls.max_concurrent.
   */
  adopt<T extends AdoptedCall>(init: AdoptedCallInit, build: (call: Call, link: AdoptedCallLink, log: Logger) => T): T | 'stopped' | 'overloaded' {
    if (!this.#running) return 'stopped';
    if (this.activeCalls >= this.#opts.maxConcurrent) {
      this.#log.warn({ event: 'call.overload', active: this.activeCalls, max: this.#opts.maxConcurrent, ...init.logContext }, 'call refused: concurrent call limit reached');
      return 'overloaded';
    }
    const call = new Call({
      siteId: this.#opts.siteId,
      caller: init.caller,
      ...(init.callerName === undefined ? {} : { callerName: init.callerName }),
      dialed: init.dialed,
      mediaPolicy: init.mediaPolicy,
      onChange: (change) => this.#changed(change),
    });
    const log = this.#log.child({ call: call.id, ...init.logContext });
    const dialogs = new Set<string>();
    let adopted: T | undefined;
    const link: AdoptedCallLink = {
      registerDialog: (id) => {
        if (adopted === undefined) return;
        dialogs.add(id);
        this.#adoptedDialogs.set(id, adopted);
      },
      unregisterDialog: (id) => {
        dialogs.delete(id);
        this.#adoptedDialogs.delete(id);
      },
      ended: () => {
        if (adopted === undefined || !this.#adopted.delete(adopted)) return;
        for (const id of dialogs) this.#adoptedDialogs.delete(id);
        this.#record(call, log);
      },
    };
    adopted = build(call, link, log);
    this.#adopted.add(adopted);
    this.#opts.bus.emit('call.state', { id: call.id, state: 'routing', reason: 'line call', at: call.startedAt, caller: call.caller, dialed: call.dialed });
    return adopted;
  }

  /**
   * Plugs a feature into an in-dialog method the core does not carry out itself
   * (REFER for transfer, PRACK, NOTIFY...). The handler answers the request.
   */
  setInDialogHandler(method: string, handler: InDialogHandler): void {
    this.#handlers.set(method.toUpperCase(), handler);
  }

  /**
   * Plugs in the module that carries out a route target: 'voicemail' and
   * 'voicemail-retrieval' (agent/voicemail), 'feature' (feature codes), 'external'
   * (trunks). Without one, such a target fails as 'unavailable'.
   */
  setTargetHandler(kind: Exclude<RouteTarget['kind'], 'ring' | 'reject'>, handler: TargetHandler): void {
    this.#targets.set(kind, handler);
  }

  /** What a feature needs to place calls the way the core does (transfer). */
  get placement(): { stack: SipStack; domain: string; dialPlan: DialPlan; bindingsOf: (extension: string) => readonly Binding[]; contactFor: ContactFor } {
    const opts = this.#opts;
    return { stack: opts.stack, domain: opts.domain, dialPlan: opts.dialPlan, bindingsOf: opts.bindingsOf, contactFor: (t, u) => this.#contactFor(t, u) };
  }

  /** The call and side holding a dialog (attended transfer's Replaces), tags as we see them. */
  findDialog(callId: string, localTag: string, remoteTag: string): { session: CallSession; side: Side } | undefined {
    return this.#byDialog.get(dialogKey(callId, localTag, remoteTag));
  }

  /**
   * Routes one dialog's requests to `handler` before its call. Interceptions stack:
   * the newest gets each request first and passes what it does not take to `next`
   * (the one before it, and finally the call); its undo takes it out of the chain.
   */
  interceptDialog(dialogId: string, handler: DialogInterceptor): () => void {
    const handlers = this.#intercepted.get(dialogId) ?? [];
    handlers.push(handler);
    this.#intercepted.set(dialogId, handlers);
    return () => {
      const left = (this.#intercepted.get(dialogId) ?? []).filter((h) => h !== handler);
      if (left.length === 0) this.#intercepted.delete(dialogId);
      else this.#intercepted.set(dialogId, left);
    };
  }

  /** A feature that takes part in every call (session timers, reliable provisionals). */
  addFeature(feature: CallFeature): void {
    this.#features.push(feature);
  }

  /** The routing state the dial plan is shown (registrations, calls per extension). */
  get routingState(): RoutingState {
    return this.#routingState;
  }

  /** INVITE, ACK, BYE, UPDATE, INFO, PRACK, REFER, NOTIFY, in-dialog OPTIONS. */
  handle(incoming: IncomingRequest): void {
    const req = incoming.request;
    const dialogId = dialogIdOfRequest(req);
    if (dialogId !== undefined) {
      this.#inDialog(dialogId, incoming);
      return;
    }
    if (req.method === 'ACK') return; // for a final response we no longer track
    if (req.method !== 'INVITE') {
      // Methods that only live in a dialog: there is none. Others (an out-of-dialog
      // MESSAGE or REFER) are not something the agent serves outside a call.
      if (IN_DIALOG_ONLY.has(req.method)) incoming.respond(481, 'Call/Transaction Does Not Exist');
      else incoming.respond(405, 'Method Not Allowed', { headers: { Allow: `${ALLOWED_METHODS}, REGISTER` } });
      return;
    }
    this.#newCall(incoming).catch((err: unknown) => {
      this.#log.error({ err, callId: req.headers['call-id'] }, 'new call failed');
      incoming.respond(500, 'Server Internal Error');
    });
  }

  /** The stack answered a CANCEL (200, and 487 to the INVITE). */
  handleCancel(invite: IncomingRequest, cancel: SipRequest): void {
    this.#byInvite.get(invite)?.cancelledByCaller(cancel);
  }

  #inDialog(dialogId: string, incoming: IncomingRequest): void {
    const chain = this.#intercepted.get(dialogId);
    if (chain !== undefined && chain.length > 0) {
      const through = [...chain];
      const step = (i: number) => (req: IncomingRequest): void => {
        const handler = through[i];
        if (handler === undefined) this.#toCall(dialogId, req);
        else handler(req, step(i - 1));
      };
      step(through.length - 1)(incoming);
      return;
    }
    this.#toCall(dialogId, incoming);
  }

  /** An in-dialog request past any interception: to the call (or line call) holding the dialog. */
  #toCall(dialogId: string, incoming: IncomingRequest): void {
    const adopted = this.#adoptedDialogs.get(dialogId);
    if (adopted !== undefined) {
      adopted.handleInDialog(incoming).catch((err: unknown) => {
        adopted.log.error({ err, method: incoming.request.method }, 'in-dialog request failed');
        incoming.respond(500, 'Server Internal Error');
      });
      return;
    }
    const found = this.#byDialog.get(dialogId);
    if (found === undefined) {
      if (incoming.request.method !== 'ACK') incoming.respond(481, 'Call/Transaction Does Not Exist');
      return;
    }
    found.session.handleInDialog(found.side, incoming).catch((err: unknown) => {
      found.session.log.error({ err, method: incoming.request.method }, 'in-dialog request failed');
      incoming.respond(500, 'Server Internal Error');
    });
  }

  async #newCall(incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const opts = this.#opts;
    const tag = newTag();
    if (!this.#running) {
      incoming.respond(503, 'Service Unavailable', { toTag: tag, headers: { 'Retry-After': String(opts.retryAfterSec), Reason: reasonHeader(503, 'Starting or stopping') } });
      return;
    }
    if (this.activeCalls >= opts.maxConcurrent) {
      this.#log.warn({ event: 'call.overload', active: this.activeCalls, max: opts.maxConcurrent }, 'call refused: concurrent call limit reached');
      incoming.respond(503, 'Service Unavailable', { toTag: tag, headers: { 'Retry-After': String(opts.retryAfterSec), Reason: reasonHeader(503, 'Too many calls') } });
      return;
    }
    // A peer site's agent does not authenticate as an extension (peer-trust.ts says why).
    const peerSite = req.headers['proxy-authorization'] === undefined ? opts.peerSiteOf?.(incoming) : undefined;
    const auth = peerSite === undefined ? opts.auth.check(incoming, tag) : undefined;
    if (auth !== undefined && !auth.ok) return;
    if (this.#features.some((f) => f.screen?.(incoming, tag) === true)) return;
    incoming.respond(100, 'Trying');

    const uri = parseUri(req.uri);
    const dialed = uri?.user !== undefined ? unescapeUriPart(uri.user).replace(SEPARATORS, '') : '';
    const callerExtension = auth?.extension;
    const fromUser = parseUri(req.headers.from.uri)?.user;
    const callerNumber = callerExtension ?? (fromUser !== undefined && fromUser !== '' ? unescapeUriPart(fromUser) : 'anonymous');
    const display = req.headers.from.name;
    const name = (callerExtension !== undefined ? opts.extension(callerExtension)?.name : undefined) ?? (display !== undefined && display !== '' ? display : undefined);

    let a: InboundSipLeg;
    try {
      a = new InboundSipLeg(incoming, opts.stack, (t, u) => this.#contactFor(t, u), dialed || 'branchline', tag);
    } catch (err) {
      if (!(err instanceof DialogError)) throw err;
      incoming.respond(err.status, `Bad Request (${err.message})`, { toTag: tag });
      return;
    }
    const call = new Call({
      siteId: opts.siteId,
      caller: callerNumber,
      ...(name === undefined ? {} : { callerName: name }),
      dialed: dialed || req.uri,
      mediaPolicy: opts.defaultPolicy,
      onChange: (change) => this.#changed(change),
    });
    const log = this.#log.child({ call: call.id, callId: req.headers['call-id'] });
    const session = new CallSession(
      this.#ctx,
      call,
      a,
      {
        dialed,
        caller: {
          ...(callerExtension === undefined ? {} : { extension: callerExtension }),
          number: callerNumber,
          ...(name === undefined ? {} : { name }),
          origin: peerSite === undefined ? 'phone' : 'peer',
        },
      },
      log,
    );
    this.#sessions.add(session);
    this.#byInvite.set(incoming, session);
    log.info(
      { event: 'call.started', caller: callerNumber, dialed, source: formatHostPort(incoming.source.address, incoming.source.port), ...(peerSite === undefined ? {} : { peer: peerSite }) },
      `call from ${callerNumber}${peerSite === undefined ? '' : ` at ${peerSite}`} to ${dialed}`,
    );
    this.#opts.bus.emit('call.state', { id: call.id, state: 'routing', reason: 'INVITE', at: call.startedAt, caller: call.caller, dialed: call.dialed });
    for (const feature of this.#features) feature.started?.(session);
    // An empty dialled number (no user part) goes to the dial plan too: it answers 404.
    await session.run();
  }

  #changed(change: CallChange): void {
    const { call } = change;
    this.#log.info({ event: 'call.state', call: call.id, state: change.state, previous: change.previous, reason: change.reason }, `call ${change.previous} → ${change.state}`);
    const payload = { id: call.id, state: change.state, previous: change.previous, reason: change.reason, at: Date.now(), caller: call.caller, dialed: call.dialed };
    this.#opts.bus.emit('call.state', call.answeredBy === undefined ? payload : { ...payload, answeredBy: call.answeredBy });
  }

  #ended(session: CallSession): void {
    this.#sessions.delete(session);
    this.#byInvite.delete(session.a.incoming);
    this.#record(session.call, session.log);
  }

  /** Logs the end of a call, emits call.ended and writes its record. */
  #record(call: Call, log: Logger): void {
    const record = call.toRecord();
    log.info({ event: 'call.ended', disposition: record.disposition, status: record.finalStatus, reason: record.reason, durationMs: record.endedAt - record.startedAt }, `call ended: ${record.disposition}`);
    this.#opts.bus.emit('call.ended', { record });
    const store = this.#opts.records;
    if (store === undefined) return;
    const write = store
      .write(record)
      .catch((err: unknown) => log.error({ err, event: 'call.record_failed' }, 'could not store the call record'))
      .finally(() => this.#pendingRecords.delete(write));
    this.#pendingRecords.add(write);
  }

  #contactFor(transport: TransportName, user: string): string {
    const stack = this.#opts.stack;
    const local = stack.addresses[transport] ?? stack.addresses.udp ?? stack.addresses.tcp;
    const host = stack.advertisedHost(transport) ?? local?.address ?? '127.0.0.1';
    const safeUser = /^[A-Za-z0-9*#+_.!~-]+$/.test(user) ? user : 'branchline';
    return `sip:${safeUser}@${host}:${local?.port ?? 5060}${transport === 'tcp' ? ';transport=tcp' : ''}`;
  }
}
