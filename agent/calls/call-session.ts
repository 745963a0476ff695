// One call from its INVITE to its end, as a B2BUA: the caller's leg (a), the dial
// plan's decision, the callee legs it forks to (one per registered contact, in
// parallel), the winner bridged to the caller, and everything that happens in the
// two dialogs afterwards. All state changes go through the Call's state machine.
//
// Failure paths always end in a final response with an RFC 3326 Reason:
//   no contact / all failed → 480, busy → 486, declined → 603, ring timeout → 408,
//   caller's CANCEL → 487 (sent by the transaction layer), bad SDP → 488,
//   a dial plan reject → its own status, anything unexpected → 500.

import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { MediaPolicyName } from '../config/types.ts';
import { describeAudio, SdpNegotiationError } from '../media/index.ts';
import { contactUriOf, DialogError } from '../sip/dialog.ts';
import { bareHost } from '../sip/transport.ts';
import { parseUri } from '../sip/uri.ts';
import type { IncomingRequest, SipStack } from '../sip/stack.ts';
import type { Endpoint, NameAddr, SipRequest, SipResponse } from '../sip/types.ts';
import type { Binding } from '../store/bindings.ts';
import type { Dialog } from '../sip/dialog.ts';
import type { Call, LegInfo } from './call.ts';
import type { CallDisposition } from './call-record.ts';
import type { MediaPath, Side } from './media-path.ts';
import type { DialPlan, FailureOutcome, RouteDecision, RouteRequest, RouteTarget, RoutingState } from './routing/types.ts';
import { SITE_HEADER } from './peer-trust.ts';
import { ALLOWED_METHODS, InboundSipLeg, OutboundSipLeg, reasonHeader, reasonPhrase, type ContactFor } from './sip-leg.ts';

/** What a session needs from the core; the core owns the tables and the stack. */
export interface SessionContext {
  stack: SipStack;
  domain: string;
  dialPlan: DialPlan;
  routingState: RoutingState;
  contactFor: ContactFor;
  bindingsOf(extension: string): readonly Binding[];
  /** The effective media policy of an extension (its override or the site default). */
  policyOf(extension: string | undefined): MediaPolicyName;
  createMediaPath(policy: MediaPolicyName, log: Logger): MediaPath;
  /** A dialog of this session can now receive requests (or no longer can). */
  registerDialog(id: string, session: CallSession, side: Side): void;
  unregisterDialog(id: string): void;
  /** Handlers features plug in (REFER, PRACK); absent: answered as unsupported. */
  inDialogHandler(method: string): InDialogHandler | undefined;
  /** Who carries out route targets other than 'ring' and 'reject' (voicemail, feature codes, trunks). */
  targetHandler(kind: RouteTarget['kind']): TargetHandler | undefined;
  ended(session: CallSession): void;
}

/** A feature's handler for an in-dialog method the core does not carry out itself. */
export type InDialogHandler = (session: CallSession, side: Side, incoming: IncomingRequest) => void | Promise<void>;

/**
 * How a target handler's attempt ended: 'answered' (it answered the caller with
 * answerLocally() and now runs the call in application mode), 'done' (it sent the
 * caller a final response itself via reject()), or a failure for the dial plan.
 */
export type TargetOutcome = 'answered' | 'done' | FailureOutcome;
/** Carries out a route target (voicemail, a feature code, a trunk) on a call that is still ringing. */
export type TargetHandler = (session: CallSession, decision: RouteDecision) => Promise<TargetOutcome>;

/** 'done': the call was already answered with a final response (a 488 for its SDP). */
type RingOutcome = 'answered' | FailureOutcome | 'cancelled' | 'done';

const FAILURE_RESPONSE: Record<FailureOutcome, { status: number; phrase: string; text: string; disposition: CallDisposition }> = {
  busy: { status: 486, phrase: 'Busy Here', text: 'Busy', disposition: 'busy' },
  'no-answer': { status: 408, phrase: 'Request Timeout', text: 'No answer', disposition: 'no-answer' },
  unavailable: { status: 480, phrase: 'Temporarily Unavailable', text: 'Unavailable', disposition: 'unavailable' },
  rejected: { status: 603, phrase: 'Decline', text: 'Declined', disposition: 'rejected' },
};

const COMPLETED_ELSEWHERE = reasonHeader(200, 'Call completed elsewhere');

/** "udp:1.2.3.4:5060" or "tcp:[2001:db8::1]:5060" (Binding.source) as an Endpoint. */
export function endpointOfSource(source: string): Endpoint | undefined {
  const m = /^(udp|tcp):(?:\[([^\]]+)\]|([^:]+)):([0-9]+)$/.exec(source);
  if (!m) return undefined;
  return { transport: m[1] as 'udp' | 'tcp', address: (m[2] ?? m[3]) as string, port: Number(m[4]) };
}

/**
 * A phone is behind NAT when it writes an IP address into its Contact that is not
 * the one its packets come from. A host name proves nothing either way.
 */
function behindNat(contact: string | undefined, sourceAddress: string | undefined): boolean {
  if (contact === undefined || sourceAddress === undefined) return false;
  const host = parseUri(contact)?.host;
  if (host === undefined) return false;
  const bare = bareHost(host);
  return isIP(bare) !== 0 && bare !== sourceAddress.toLowerCase();
}

function outcomeOfStatuses(statuses: readonly number[]): FailureOutcome {
  if (statuses.some((s) => s === 486 || s === 600)) return 'busy';
  if (statuses.some((s) => s === 603)) return 'rejected';
  return 'unavailable';
}

function contentType(req: SipRequest | SipResponse): string | undefined {
  const value = req.headers['content-type'];
  return typeof value === 'string' ? value : undefined;
}

/** Where a callee leg's INVITE goes: a registered phone's binding, or a peer site's agent. */
type CalleeTarget = Pick<Binding, 'source' | 'contact' | 'path'>;

/** A call to a peer site: how long it may stay silent, its domain, the headers naming us. */
interface PeerLegOptions {
  noResponseMs: number;
  domain: string;
  headers: Record<string, string>;
}

/** The peer's own plan ends an unanswered call (ring timeout, voicemail); this only guards against one that never does. */
const PEER_RING_BACKSTOP_SEC = 600;

interface CalleeLeg {
  sip: OutboundSipLeg;
  info: LegInfo;
  extension: string;
  done: boolean;
}

export class CallSession {
  readonly call: Call;
  readonly a: InboundSipLeg;
  readonly request: RouteRequest;
  readonly log: Logger;
  /** The callee leg that answered. */
  b: CalleeLeg | undefined;
  readonly #ctx: SessionContext;
  /** The caller's leg in the record; a new one when a transfer replaces the caller. */
  #aInfo: LegInfo;
  #media: MediaPath | undefined;
  #ringing: { legs: CalleeLeg[]; settle: (outcome: RingOutcome) => void } | undefined;
  #cancelled = false;
  #offerPending = false;
  #earlySdpFrom: CalleeLeg | undefined;
  #ringingExtensions: string[] = [];
  readonly #endListeners: Array<() => void> = [];

  constructor(ctx: SessionContext, call: Call, a: InboundSipLeg, request: RouteRequest, log: Logger) {
    this.#ctx = ctx;
    this.call = call;
    this.a = a;
    this.request = request;
    this.log = log;
    this.#aInfo = call.addLeg({ kind: 'sip', direction: 'inbound', party: request.caller.extension ?? request.caller.number, callId: a.callId });
  }

  /** Extensions this call involves now (for RoutingState.activeCalls). */
  parties(): string[] {
    const out = this.request.caller.extension !== undefined ? [this.request.caller.extension] : [];
    if (this.b !== undefined) out.push(this.b.extension);
    else out.push(...this.#ringingExtensions);
    return out;
  }

  /** Routes and rings until the call is answered or has failed; never throws. */
  async run(): Promise<void> {
    try {
      // A malformed offer is refused before anything rings, whatever the route.
      const offer = this.a.incoming.request.content;
      if (offer !== '') {
        try {
          describeAudio(offer);
        } catch (err) {
          if (!(err instanceof SdpNegotiationError)) throw err;
          await this.#refuseSdp(err);
          return;
        }
      }
      await this.#route();
    } catch (err) {
      this.log.error({ err }, 'call failed unexpectedly');
      await this.#fail(500, 'Server Internal Error', 'Internal error', 'failed');
    }
  }

  /** The caller's CANCEL: the transaction layer already answered 487. */
  cancelledByCaller(cancel: SipRequest): void {
    if (this.call.state === 'ended' || this.call.state === 'answered') return;
    this.#cancelled = true;
    this.log.info({ event: 'call.cancelled' }, 'caller cancelled before answer');
    const reason = typeof cancel.headers['reason'] === 'string' ? cancel.headers['reason'] : undefined;
    this.call.legEnded(this.#aInfo.id, 487, 'cancel');
    const ringing = this.#ringing;
    if (ringing === undefined) {
      void this.#finish('cancelled', 'Caller cancelled', 487);
      return;
    }
    ringing.settle('cancelled');
    for (const leg of ringing.legs) if (!leg.done) this.#cancelLeg(leg, 'cancel', reason);
  }

  /** A request inside one of this call's dialogs. */
  async handleInDialog(side: Side, incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const dialog = side === 'a' ? this.a.dialog : this.b?.sip.dialog;
    if (dialog === undefined) {
      incoming.respond(481, 'Call/Transaction Does Not Exist');
      return;
    }
    try {
      dialog.receiveRequest(req);
    } catch (err) {
      if (!(err instanceof DialogError)) throw err;
      incoming.respond(err.status, err.status === 500 ? 'Server Internal Error' : 'Call/Transaction Does Not Exist', err.status === 500 ? { headers: { 'Retry-After': '1' } } : undefined);
      return;
    }
    switch (req.method) {
      case 'ACK':
        return; // ACKs for our 2xx are taken by waitForAck; a late copy needs nothing.
      case 'BYE':
        incoming.respond(200, 'OK');
        await this.hangup(side === 'a' ? 'caller' : 'callee', side === 'a' ? 'Caller hung up' : 'Callee hung up');
        return;
      case 'OPTIONS':
        incoming.respond(200, 'OK', { headers: { Allow: ALLOWED_METHODS, Accept: 'application/sdp' } });
        return;
      case 'INVITE':
      case 'UPDATE':
        await this.#offerInDialog(side, incoming);
        return;
      default: {
        const handler = this.#ctx.inDialogHandler(req.method);
        if (handler !== undefined) {
          await handler(this, side, incoming);
          return;
        }
        if (req.method === 'PRACK') {
          // We never send reliable provisionals (no 100rel), so there is nothing to acknowledge.
          incoming.respond(481, 'Call/Transaction Does Not Exist');
          return;
        }
        if (req.method === 'REFER') {
          incoming.respond(501, 'Not Implemented', { headers: { Allow: ALLOWED_METHODS } });
          return;
        }
        await this.#relay(side, incoming);
      }
    }
  }

  // --- for target handlers (voicemail, feature codes): the application mode ---------

  /** The caller's SDP offer ('' when its INVITE had none). */
  get callerOffer(): string {
    return this.a.incoming.request.content;
  }

  /**
   * Answers the caller with the application's own SDP (voicemail, a feature code's
   * confirmation tone): the call is answered in application mode. Resolves with the
   * caller's ACK, or undefined when none came (the call is then hung up).
   */
  async answerLocally(sdp: string, by: string): Promise<SipRequest | undefined> {
    if (this.#cancelled || this.call.state === 'ended' || this.call.state === 'answered') return undefined;
    // The application terminates the caller's media itself: a path made for ringing goes.
    const ringingMedia = this.#media;
    this.#media = undefined;
    await ringingMedia?.stop().catch((err: unknown) => this.log.warn({ err }, 'media did not stop cleanly'));
    // Still unanswered (a handler may have sent ringing or early media first, a trunk call).
    if (this.#cancelled || (this.call.state !== 'routing' && this.call.state !== 'ringing' && this.call.state !== 'early')) return undefined;
    this.call.setMode('application');
    this.#ctx.registerDialog(this.a.dialog.id, this, 'a');
    this.call.legAnswered(this.#aInfo.id);
    this.call.answeredBy = by;
    const ack = this.a.answer(sdp);
    this.call.transition('answered', `answered by ${by}`);
    const received = await ack;
    if (received === undefined) await this.hangup('system', 'No ACK from caller');
    return received;
  }

  /** A final response to the caller from a target handler (e.g. 200-less feature code: 403; a trunk's 503 with Retry-After). */
  async reject(status: number, phrase: string, reasonText: string, disposition: CallDisposition, headers: Record<string, string> = {}): Promise<void> {
    await this.#fail(status, phrase, reasonText, disposition, headers);
  }

  /** The call's media path (transfer renegotiates through it); undefined before routing. */
  get media(): MediaPath | undefined {
    return this.#media;
  }

  /**
   * Transfer (features/transfer.ts): the party on `side` is from now on reached
   * through `dialog`, a confirmed dialog with the transfer target whose media the
   * feature has already negotiated. The old dialog's requests are no longer this
   * call's; its leg ends in the record and the target's leg starts, answered.
   */
  replaceParty(side: Side, dialog: Dialog, party: { extension: string; direction: 'inbound' | 'outbound'; callId: string }): void {
    const b = this.b;
    const old = side === 'a' ? this.a.dialog : b?.sip.dialog;
    if (b === undefined || old === undefined || this.call.state !== 'answered') throw new Error(`no answered ${side} leg to replace`);
    this.#ctx.unregisterDialog(old.id);
    this.call.legEnded(side === 'a' ? this.#aInfo.id : b.info.id, undefined, side === 'a' ? 'caller' : 'callee');
    const info = this.call.addLeg({ kind: 'sip', direction: party.direction, party: party.extension, callId: party.callId });
    this.call.legAnswered(info.id);
    if (side === 'a') {
      this.a.dialog = dialog;
      this.#aInfo = info;
    } else {
      b.sip.dialog = dialog;
      this.b = { ...b, info, extension: party.extension };
    }
    this.#ctx.registerDialog(dialog.id, this, side);
  }

  /** Called once when the call ends, whoever ends it (the caller's BYE, a hang-up, shutdown). */
  onEnd(listener: () => void): void {
    this.#endListeners.push(listener);
  }

  /** Ends an answered call: BYE to every leg still up except the one that ended it. */
  async hangup(by: 'caller' | 'callee' | 'system', reason: string): Promise<void> {
    if (this.call.state === 'ended') return;
    const byes: Promise<unknown>[] = [];
    if (by !== 'caller' && this.a.dialog.state === 'confirmed') byes.push(this.a.send('BYE', { headers: { Reason: reasonHeader(200, reason) } }).catch(() => undefined));
    // Not answered yet (an error on the way to the 200): the caller still gets a final response.
    if (this.a.dialog.state === 'early') this.a.reject(500, 'Server Internal Error', { Reason: reasonHeader(500, reason) });
    const b = this.b;
    if (b !== undefined && by !== 'callee' && b.sip.dialog?.state === 'confirmed') byes.push(b.sip.send('BYE', { headers: { Reason: reasonHeader(200, reason) } }).catch(() => undefined));
    this.call.legEnded(this.#aInfo.id, undefined, by === 'caller' ? 'caller' : by === 'callee' ? 'callee' : 'system');
    if (b !== undefined) this.call.legEnded(b.info.id, undefined, by === 'caller' ? 'caller' : by === 'callee' ? 'callee' : 'system');
    this.a.dialog.terminate();
    b?.sip.dialog?.terminate();
    const disposition: CallDisposition = this.call.answeredAt !== undefined ? 'answered' : 'failed';
    await this.#finish(disposition, reason);
    await Promise.all(byes);
  }

  /** The agent stops: every call ends now. */
  async shutdown(): Promise<void> {
    if (this.call.state === 'answered') return this.hangup('system', 'Service shutting down');
    if (this.call.state !== 'ended') {
      const ringing = this.#ringing;
      ringing?.settle('cancelled');
      for (const leg of ringing?.legs ?? []) if (!leg.done) this.#cancelLeg(leg, 'system');
      await this.#fail(503, 'Service Unavailable', 'Service shutting down', 'failed');
    }
  }

  // --- routing and ringing ----------------------------------------------------

  async #route(): Promise<void> {
    const { dialPlan, routingState } = this.#ctx;
    let decision: RouteDecision | undefined = dialPlan.route(this.request, routingState);
    // The outcome the caller hears when the plan runs out: the last target that was
    // really tried (a voicemail nobody carries out does not turn a 408 into a 480).
    let tried: FailureOutcome | undefined;
    for (let attempt = 0; decision !== undefined; attempt++) {
      this.call.emergency ||= decision.emergency;
      this.log.info({ event: 'call.routed', target: decision.target.kind, why: decision.why }, `routed: ${decision.why}`);
      const target = decision.target;
      let outcome: RingOutcome;
      if (target.kind === 'reject') {
        await this.#fail(target.status, phraseOf(target.status), target.reason, dispositionOf(target.status));
        return;
      } else if (target.kind === 'ring') {
        outcome = await this.#ring(target.extensions, target.ringTimeoutSec);
      } else if (target.kind === 'peer') {
        outcome = await this.#ringPeer(target);
      } else {
        // voicemail, feature codes, trunks: carried out by the module that registered for them.
        const handler = this.#ctx.targetHandler(target.kind);
        if (handler === undefined) {
          this.log.warn({ target: target.kind }, 'nothing carries out this route target in this build; treated as unavailable');
          outcome = tried ?? 'unavailable';
        } else {
          outcome = await handler(this, decision);
        }
      }
      if (outcome === 'answered' || outcome === 'done') return;
      if (outcome === 'cancelled' || this.#cancelled) {
        await this.#finish('cancelled', 'Caller cancelled', 487);
        return;
      }
      if (target.kind === 'ring' || target.kind === 'peer' || this.#ctx.targetHandler(target.kind) !== undefined) tried = outcome;
      const next = dialPlan.next(this.request, decision, outcome, attempt, routingState);
      if (next === undefined) {
        const f = FAILURE_RESPONSE[tried ?? outcome];
        await this.#fail(f.status, f.phrase, f.text, f.disposition);
        return;
      }
      if (this.call.state !== 'routing') this.call.transition('routing', `${outcome}: ${next.why}`);
      decision = next;
    }
  }

  async #mediaFor(extensions: readonly string[], contacts: ReadonlyArray<{ binding: CalleeTarget }>): Promise<{ media: MediaPath; offer: string } | undefined> {
    if (this.#media === undefined) {
      const callerSdp = this.a.incoming.request.content;
      const wanted = [this.request.caller.extension, ...extensions].map((e) => this.#ctx.policyOf(e));
      // Anchored when any party needs it. An INVITE without an offer is always
      // anchored (direct media would have to carry the answer in the ACK), and so is
      // a call with a phone behind NAT: its SDP names an address nobody can reach.
      const callerNat = behindNat(contactUriOf(this.a.incoming.request), this.a.incoming.source.address);
      const calleeNat = contacts.some((c) => behindNat(c.binding.contact, endpointOfSource(c.binding.source)?.address));
      if ((callerNat || calleeNat) && !wanted.includes('anchored')) this.log.info({ callerNat, calleeNat }, 'a phone is behind NAT: media anchored');
      const policy: MediaPolicyName = callerSdp === '' || callerNat || calleeNat || wanted.includes('anchored') ? 'anchored' : 'direct';
      this.call.mediaPolicy = policy;
      this.#media = this.#ctx.createMediaPath(policy, this.log);
      this.#media.onTimeout(() => {
        this.log.warn({ event: 'call.media_timeout' }, 'no RTP from a leg: hanging up');
        void this.hangup('system', 'Media timeout');
      });
    }
    try {
      const offer = await this.#media.offerToCallees(this.a.incoming.request.content);
      return { media: this.#media, offer };
    } catch (err) {
      if (!(err instanceof SdpNegotiationError)) throw err;
      await this.#refuseSdp(err);
      return undefined;
    }
  }

  async #refuseSdp(err: SdpNegotiationError): Promise<void> {
    this.log.info({ event: 'call.bad_sdp', code: err.code, detail: err.message }, 'caller SDP refused');
    await this.#fail(488, 'Not Acceptable Here', err.message, 'failed', { Warning: `${err.warning} ${this.#ctx.domain} "${err.message.replace(/"/g, "'")}"` });
  }

  #ring(extensions: readonly string[], ringTimeoutSec: number): Promise<RingOutcome> {
    const contacts = extensions.flatMap((extension) => this.#ctx.bindingsOf(extension).map((binding) => ({ extension, binding })));
    if (contacts.length === 0) return Promise.resolve('unavailable');
    return this.#mediaFor(extensions, contacts).then((prepared) => {
      if (prepared === undefined) return 'done' as const;
      if (this.#cancelled) return 'cancelled' as const;
      return this.#fork(contacts, prepared.media, prepared.offer, ringTimeoutSec);
    });
  }

  /**
   * A peer site's agent (docs/sync.md#calls-between-sites): one INVITE to its address,
   * bridged like a phone. Its own plan rings, forwards and takes voicemail there, so
   * the only limit here is a generous backstop; an INVITE nothing answers within
   * `noResponseMs` (not even 100 Trying) is given up as 'unavailable', so a dead WAN
   * sends the call to its fallbacks at once instead of after a SIP timeout.
   */
  #ringPeer(target: Extract<RouteTarget, { kind: 'peer' }>): Promise<RingOutcome> {
    const tcp = target.transport === 'tcp';
    const binding: CalleeTarget = { source: `${target.transport}:${target.address}`, contact: `sip:${target.number}@${target.address}${tcp ? ';transport=tcp' : ''}`, path: [] };
    const contacts = [{ extension: target.number, binding }];
    return this.#mediaFor([], contacts).then((prepared) => {
      if (prepared === undefined) return 'done' as const;
      if (this.#cancelled) return 'cancelled' as const;
      return this.#fork(contacts, prepared.media, prepared.offer, PEER_RING_BACKSTOP_SEC, { noResponseMs: target.noResponseMs, domain: target.domain, headers: { [SITE_HEADER]: this.call.siteId } });
    });
  }

  #fork(contacts: Array<{ extension: string; binding: CalleeTarget }>, media: MediaPath, offer: string, ringTimeoutSec: number, peer?: PeerLegOptions): Promise<RingOutcome> {
    this.#ringingExtensions = [...new Set(contacts.map((c) => c.extension))];
    return new Promise<RingOutcome>((resolve) => {
      const legs: CalleeLeg[] = [];
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        this.log.info({ event: 'call.ring_timeout', seconds: ringTimeoutSec }, 'nobody answered in time');
        settle('no-answer');
        for (const leg of legs) if (!leg.done) this.#cancelLeg(leg, 'system', reasonHeader(480, 'No answer'));
      }, ringTimeoutSec * 1000);
      const settle = (outcome: RingOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#ringing = undefined;
        this.#ringingExtensions = [];
        resolve(outcome);
      };
      this.#ringing = { legs, settle };

      const finished = (): void => {
        if (settled || !legs.every((l) => l.done)) return;
        const statuses = legs.map((l) => l.info.status ?? 480);
        // Every phone refused the caller's media (direct media passes the offer on):
        // no forward helps with that, the caller must hear 488 and change its offer.
        if (statuses.every((st) => st === 488 || st === 606)) {
          settled = true;
          clearTimeout(timer);
          this.#ringing = undefined;
          this.#ringingExtensions = [];
          void this.#fail(488, 'Not Acceptable Here', 'No phone accepts the offered media', 'failed').then(() => resolve('done'));
          return;
        }
        settle(outcomeOfStatuses(statuses));
      };

      for (const { extension, binding } of contacts) {
        const destination = endpointOfSource(binding.source);
        if (destination === undefined) {
          this.log.warn({ source: binding.source }, 'binding has an unusable source address; skipped');
          continue;
        }
        const callerUser = this.request.caller.extension ?? this.request.caller.number;
        const from: NameAddr = { uri: `sip:${callerUser}@${this.#ctx.domain}`, params: Object.create(null) };
        if (this.request.caller.name !== undefined) from.name = this.request.caller.name;
        const sip = new OutboundSipLeg({
          stack: this.#ctx.stack,
          log: this.log,
          destination,
          requestUri: binding.contact,
          from,
          to: { uri: `sip:${extension}@${peer?.domain ?? this.#ctx.domain}`, params: Object.create(null) },
          contact: this.#ctx.contactFor(destination.transport, callerUser),
          route: binding.path,
          sdp: offer,
          ...(peer === undefined ? {} : { headers: peer.headers }),
        });
        const info = this.call.addLeg({ kind: 'sip', direction: 'outbound', party: extension, callId: sip.callId });
        const leg: CalleeLeg = { sip, info, extension, done: false };
        legs.push(leg);
        // A peer that says nothing at all in time is unreachable: the leg is given up
        // (a late 2xx is still ACKed and hung up below) and the plan moves on.
        let abandoned = false;
        const silence =
          peer === undefined
            ? undefined
            : setTimeout(() => {
                if (leg.done || settled) return;
                abandoned = true;
                leg.done = true;
                this.log.info({ event: 'call.peer_silent', leg: info.id, ms: peer.noResponseMs }, `no answer at all from the peer at ${binding.source} in ${peer.noResponseMs} ms: unreachable`);
                this.call.legEnded(info.id, 408, 'system');
                finished();
              }, peer.noResponseMs);
        sip
          .start(
            (res) => {
              clearTimeout(silence);
              if (!abandoned) this.#provisional(leg, res, media, settled);
            },
            COMPLETED_ELSEWHERE,
          )
          .then(
            (res) => {
              clearTimeout(silence);
              if (abandoned) {
                if (res.status < 300) void sip.refuse2xx(res, COMPLETED_ELSEWHERE);
                return;
              }
              leg.done = true;
              if (res.status >= 300) {
                this.call.legEnded(info.id, res.status, settled ? 'cancel' : 'callee');
                this.log.info({ leg: info.id, status: res.status }, `${extension} answered ${res.status}`);
                finished();
                return;
              }
              if (settled || this.#cancelled) {
                // Answered after the call was decided (a CANCEL crossed the 200): hang it up.
                this.call.legEnded(info.id, res.status, 'system');
                void sip.refuse2xx(res, COMPLETED_ELSEWHERE);
                return;
              }
              settle('answered');
              for (const other of legs) if (other !== leg && !other.done) this.#cancelLeg(other, 'cancel', COMPLETED_ELSEWHERE);
              this.#answered(leg, res, media).catch((err: unknown) => {
                this.log.error({ err }, 'bridging the answered call failed');
                void this.hangup('system', 'Internal error');
              });
            },
            (err: unknown) => {
              clearTimeout(silence);
              if (abandoned) return;
              leg.done = true;
              const status = (err as { code?: string }).code === 'ETIMEDOUT' ? 408 : 503;
              this.log.info({ leg: info.id, err: (err as Error).message }, `no answer from ${extension}'s contact (${status})`);
              this.call.legEnded(info.id, status, 'system');
              finished();
            },
          );
      }
      if (legs.length === 0) settle('unavailable');
    });
  }

  /** CANCELs a ringing callee leg; it ends with the 487 that CANCEL brings. */
  #cancelLeg(leg: CalleeLeg, by: 'cancel' | 'system', reason?: string): void {
    this.call.legEnded(leg.info.id, 487, by);
    void leg.sip.cancel(reason);
  }

  #provisional(leg: CalleeLeg, res: SipResponse, media: MediaPath, settled: boolean): void {
    if (settled || this.#cancelled || res.status === 100 || this.call.state === 'ended' || this.call.state === 'answered') return;
    if (this.#ringing === undefined) return;
    let sdp = '';
    if (res.content !== '' && (this.#earlySdpFrom === undefined || this.#earlySdpFrom === leg)) {
      try {
        sdp = media.toCaller(res.content, true);
        this.#earlySdpFrom = leg;
      } catch (err) {
        this.log.info({ err: (err as Error).message, leg: leg.info.id }, 'early SDP unusable; relayed as plain ringing');
      }
    }
    const status = res.status === 183 && sdp === '' ? 180 : res.status;
    this.a.provisional(status, status === 180 ? 'Ringing' : res.reason, sdp);
    if (this.call.state === 'routing' || this.call.state === 'ringing' || this.call.state === 'early') {
      this.call.transition(sdp !== '' ? 'early' : 'ringing', `${res.status} from ${leg.extension}`);
    }
  }

  async #answered(leg: CalleeLeg, res: SipResponse, media: MediaPath): Promise<void> {
    this.b = leg;
    let sdp: string;
    try {
      sdp = media.toCaller(res.content);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'callee answered with unusable SDP');
      await leg.sip.ack();
      await leg.sip.send('BYE', { headers: { Reason: reasonHeader(488, 'Unusable SDP answer') } }).catch(() => undefined);
      this.call.legEnded(leg.info.id, 488, 'system');
      this.b = undefined;
      await this.#fail(488, 'Not Acceptable Here', 'Callee SDP unusable', 'failed');
      return;
    }
    // Everything up to the caller's 200 happens in this tick: a CANCEL from the caller
    // can then only arrive after its INVITE was answered (and is answered 200 only).
    const bDialog = leg.sip.dialog;
    if (bDialog !== undefined) this.#ctx.registerDialog(bDialog.id, this, 'b');
    this.#ctx.registerDialog(this.a.dialog.id, this, 'a');
    this.call.legAnswered(leg.info.id);
    this.call.legAnswered(this.#aInfo.id);
    this.call.answeredBy = leg.extension;
    const ackPromise = this.a.answer(sdp);
    this.call.transition('answered', `answered by ${leg.extension}`);
    this.log.info({ event: 'call.answered', by: leg.extension, policy: media.policy }, `${leg.extension} answered`);
    media.armTimeout();
    await leg.sip.ack().catch((err: unknown) => this.log.warn({ err }, 'could not send ACK to the callee'));
    const ack = await ackPromise;
    if (ack === undefined) {
      if (this.call.state === 'ended') return;
      this.log.warn({ event: 'call.no_ack' }, 'caller never acknowledged the answer: hanging up');
      await this.hangup('system', 'No ACK from caller');
      return;
    }
    try {
      media.callerAck(ack.content);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, "caller's answer in the ACK is unusable: hanging up");
      await this.hangup('system', 'Unusable SDP in ACK');
    }
  }

  // --- in the dialogs ------------------------------------------------------------

  /** re-INVITE or UPDATE: answered here (anchored) or relayed to the other leg (direct). */
  async #offerInDialog(side: Side, incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const media = this.#media;
    const leg = side === 'a' ? this.a : this.b?.sip;
    if (this.call.state !== 'answered' || media === undefined || leg === undefined) {
      incoming.respond(req.method === 'INVITE' ? 491 : 500, req.method === 'INVITE' ? 'Request Pending' : 'Server Internal Error', { headers: { 'Retry-After': '1' } });
      return;
    }
    if (this.#offerPending) {
      incoming.respond(491, 'Request Pending');
      return;
    }
    const contact = { Contact: `<${leg.dialog?.localContact ?? ''}>` };
    let answer;
    try {
      answer = media.midCallOffer(side, req.content);
    } catch (err) {
      if (!(err instanceof SdpNegotiationError)) throw err;
      incoming.respond(488, 'Not Acceptable Here', { headers: { Warning: `${err.warning} ${this.#ctx.domain} "${err.message.replace(/"/g, "'")}"` } });
      return;
    }
    if (answer.kind === 'local') {
      incoming.respond(200, 'OK', { headers: { ...contact, 'Content-Type': 'application/sdp' }, content: answer.sdp });
      if (req.method === 'INVITE' && req.content === '') {
        const ack = await incoming.waitForAck();
        if (ack !== undefined) media.midCallAck(side, ack.content);
      }
      return;
    }
    // Direct media: the other phone answers.
    const other = side === 'a' ? this.b?.sip : this.a;
    if (other === undefined) {
      incoming.respond(481, 'Call/Transaction Does Not Exist');
      return;
    }
    this.#offerPending = true;
    try {
      const body = req.content;
      const type = contentType(req);
      const res = await other.send(req.method, body === '' ? {} : { body, ...(type === undefined ? {} : { contentType: type }) });
      const extras = res.content === '' ? { headers: contact } : { headers: { ...contact, 'Content-Type': contentType(res) ?? 'application/sdp' }, content: res.content };
      if (res.status >= 200 && res.status < 300 && req.method === 'INVITE') {
        const inviteSeq = res.headers.cseq.seq;
        const ackOther = (ackBody: string): Promise<void> => (other instanceof InboundSipLeg ? other.ack(inviteSeq, ackBody) : other.ackReinvite(inviteSeq, ackBody));
        other.dialog?.refreshTarget(res);
        if (body !== '') await ackOther('').catch(() => undefined);
        incoming.respond(200, 'OK', extras);
        if (body === '') {
          // Offerless re-INVITE: the answer comes in this side's ACK and goes on in ours.
          const ack = await incoming.waitForAck();
          await ackOther(ack?.content ?? '').catch(() => undefined);
        }
      } else {
        incoming.respond(res.status, res.reason, extras);
      }
    } catch (err) {
      this.log.info({ err: (err as Error).message, method: req.method }, 'relayed offer got no answer');
      incoming.respond(500, 'Server Internal Error', { headers: { 'Retry-After': '1' } });
    } finally {
      this.#offerPending = false;
    }
  }

  /** INFO, NOTIFY, MESSAGE...: passed to the other leg; its answer comes back. */
  async #relay(side: Side, incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const other = side === 'a' ? this.b?.sip : this.a;
    if (this.call.state !== 'answered' || other === undefined) {
      incoming.respond(481, 'Call/Transaction Does Not Exist');
      return;
    }
    const headers: Record<string, string> = {};
    for (const name of ['event', 'subscription-state', 'info-package', 'content-disposition']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const type = contentType(req);
    try {
      const res = await other.send(req.method, { headers, ...(req.content === '' ? {} : { body: req.content, ...(type === undefined ? {} : { contentType: type }) }) });
      const resType = contentType(res);
      incoming.respond(res.status, res.reason, res.content === '' ? undefined : { headers: { 'Content-Type': resType ?? 'application/octet-stream' }, content: res.content });
    } catch (err) {
      this.log.info({ err: (err as Error).message, method: req.method }, 'relayed request got no answer');
      incoming.respond(408, 'Request Timeout');
    }
  }

  // --- endings ---------------------------------------------------------------------

  async #fail(status: number, phrase: string, reasonText: string, disposition: CallDisposition, headers: Record<string, string> = {}): Promise<void> {
    if (this.call.state === 'ended') return;
    if (this.call.state !== 'answered') {
      this.a.reject(status, phrase, { ...headers, Reason: reasonHeader(status, reasonText) });
      this.call.legEnded(this.#aInfo.id, status, 'system');
    }
    this.log.info({ event: 'call.failed', status, reason: reasonText }, `call failed: ${status} ${reasonText}`);
    await this.#finish(disposition, reasonText, status);
  }

  async #finish(disposition: CallDisposition, reason: string, finalStatus?: number): Promise<void> {
    if (!this.call.end(disposition, reason, finalStatus)) return;
    this.#ctx.unregisterDialog(this.a.dialog.id);
    const bDialog = this.b?.sip.dialog;
    if (bDialog !== undefined) this.#ctx.unregisterDialog(bDialog.id);
    this.#ctx.ended(this);
    for (const listener of this.#endListeners.splice(0)) {
      try {
        listener();
      } catch (err) {
        this.log.error({ err }, 'call end listener failed');
      }
    }
    await this.#media?.stop().catch((err: unknown) => this.log.warn({ err }, 'media did not stop cleanly'));
  }
}

function phraseOf(status: number): string {
  return reasonPhrase(status) ?? (status >= 500 ? 'Server Error' : 'Request Failed');
}

function dispositionOf(status: number): CallDisposition {
  if (status === 486 || status === 600) return 'busy';
  if (status === 603) return 'rejected';
  if (status === 480) return 'unavailable';
  return status === 403 ? 'rejected' : 'failed';
}
