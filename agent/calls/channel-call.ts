// A call from the PSTN on a line-card channel (docs/calls.md, "Calls on the line
// cards"). The trunks accepted it for a DID; here it becomes a call of the call
// core whose caller's leg ('a') is the channel: the DID's target goes through the
// dial plan (an extension's forwards, DND and fallbacks, a ring group), the phones
// ring with an offer from the agent's own RTP session, the first to answer wins,
// the channel is answered and its frames are bridged to that session
// (channel-media.ts). Either side hanging up ends the other: the phone gets a BYE
// with the line's Q.850 cause, the line a release with cause 16. When nobody can
// take the call the channel is released with the cause that says why (17 busy,
// 19 no answer, 20 nobody registered, 21 declined; RFC 3398 for a plan's reject).

import type { Logger } from 'pino';
import { causeText } from '../../drivers/q850.ts';
import type { ChannelRef, FrameLaw, LineCard, ReleaseEvent } from '../../drivers/types.ts';
import { acceptAnswer, answerOffer, createOffer, SdpNegotiationError, SdpOrigin, type CodecName, type MediaEngine, type RtpSession } from '../media/index.ts';
import { DialogError } from '../sip/dialog.ts';
import type { IncomingRequest } from '../sip/stack.ts';
import { TrunkError } from '../trunks/errors.ts';
import type { InboundTrunkCall, OutboundTrunkCall } from '../trunks/trunk-service.ts';
import type { Call, LegInfo } from './call.ts';
import type { AdoptedCall, AdoptedCallLink } from './call-core.ts';
import type { CallDisposition } from './call-record.ts';
import { onChannelEvent } from './channel-events.ts';
import { ChannelMedia } from './channel-media.ts';
import { ChannelPair } from './channel-pair.ts';
import { dialTarget, type DialerDeps } from './features/target-dialer.ts';
import { causeForOutcome, causeForSipStatus, q850ReasonHeader, STATUS_FOR_OUTCOME } from './line-causes.ts';
import type { DialPlan, FailureOutcome, RouteDecision, RouteRequest, RoutingState } from './routing/types.ts';
import { ALLOWED_METHODS, reasonHeader, type OutboundSipLeg } from './sip-leg.ts';
import type { TrunkDialer } from './trunk-target.ts';

/** What the bridge needs of an inbound call the trunks accepted: all of it but the channel grant, which the trunks keep. */
export type LineCall = Omit<InboundTrunkCall, 'grant'>;

/** What a line call needs of voicemail (agent/voicemail/voicemail.ts). */
export interface LineVoicemail {
  mailboxConfig(mailbox: string): unknown;
  deposit(session: RtpSession, request: { mailbox: string; reason: 'busy' | 'no-answer' | 'unavailable' | 'direct'; caller: { number: string; name?: string } }): Promise<unknown>;
}

export interface ChannelCallDeps extends Omit<DialerDeps, 'log'> {
  dialPlan: DialPlan;
  routingState: RoutingState;
  media: MediaEngine;
  /** Without it, a voicemail target counts as unavailable. */
  voicemail?: LineVoicemail;
  /** Without it, a forward back out to the PSTN counts as unavailable. */
  trunks?: TrunkDialer;
}

/** The call forwarded back out on another channel. */
interface ForwardedLine {
  call: OutboundTrunkCall;
  legId: string;
  released: boolean;
  pair: ChannelPair | undefined;
  off: Array<() => void>;
}

/** "pstn/1/30": the card and channel, as records and logs name a channel leg. */
export function channelName(card: LineCard, channel: ChannelRef): string {
  return `${card.name}/${channel.span}/${channel.channel}`;
}

/** The law of a channel's span (A-law on E1, µ-law elsewhere). */
export function lawOf(card: LineCard, channel: ChannelRef): FrameLaw {
  return card.spans().find((s) => s.span === channel.span)?.law ?? 'PCMU';
}

/** Our codec preference with the line's law first: a phone that can take it needs no transcoding. */
export function codecsFor(law: FrameLaw, configured: readonly CodecName[]): CodecName[] {
  return configured.includes(law) ? [law, ...configured.filter((c) => c !== law)] : [...configured];
}

interface AnsweredPhone {
  leg: OutboundSipLeg;
  info: LegInfo;
  extension: string;
}

export class InboundChannelCall implements AdoptedCall {
  readonly call: Call;
  readonly log: Logger;
  readonly #deps: ChannelCallDeps;
  readonly #link: AdoptedCallLink;
  readonly #line: LineCall;
  readonly #request: RouteRequest;
  readonly #aInfo: LegInfo;
  readonly #law: FrameLaw;
  /** Aborted when the line caller hangs up before answer: the ringing phones are cancelled. */
  readonly #lineGone = new AbortController();
  #lineReleased = false;
  #rtp: RtpSession | undefined;
  /** The application's side of a line call answered by voicemail. */
  #appSession: RtpSession | undefined;
  #origin = new SdpOrigin();
  #bridge: ChannelMedia | undefined;
  #phone: AnsweredPhone | undefined;
  #forwarded: ForwardedLine | undefined;
  #ringing: string[] = [];
  #offerPending = false;
  readonly #offRelease: () => void;

  constructor(deps: ChannelCallDeps, line: LineCall, call: Call, link: AdoptedCallLink, log: Logger) {
    this.#deps = deps;
    this.#line = line;
    this.call = call;
    this.#link = link;
    this.log = log;
    this.#law = lawOf(line.card, line.channel);
    const number = line.callerId.number ?? 'anonymous';
    this.#request = {
      dialed: line.dialled,
      caller: { number, ...(line.callerId.name !== undefined ? { name: line.callerId.name } : {}), origin: 'trunk' },
    };
    this.#aInfo = call.addLeg({ kind: 'channel', direction: 'inbound', party: channelName(line.card, line.channel) });
    this.#offRelease = onChannelEvent(line.card, 'release', line.channel, (e) => this.#released(e));
  }

  parties(): string[] {
    return this.#phone !== undefined ? [this.#phone.extension] : [...this.#ringing];
  }

  /** Routes and rings until answered or failed; never throws. */
  async run(): Promise<void> {
    try {
      this.log.info({ event: 'call.started', caller: this.#request.caller.number, dialed: this.#line.dialled, target: this.#line.target, tenant: this.#line.tenant }, `line call from ${this.#request.caller.number} to ${this.#line.dialled}`);
      await this.#route();
    } catch (err) {
      this.log.error({ err }, 'line call failed unexpectedly');
      await this.#fail(41, 500, 'Internal error', 'failed');
    }
  }

  async shutdown(): Promise<void> {
    if (this.call.state === 'answered') return this.hangup('system', 'Service shutting down');
    this.#lineGone.abort();
    await this.#fail(41, 503, 'Service shutting down', 'failed');
  }

  /** Ends an answered call: BYE to the phone, release of the line, whichever is still up. */
  async hangup(by: 'caller' | 'callee' | 'system', reason: string, cause = 16): Promise<void> {
    if (this.call.state === 'ended') return;
    const phone = this.#phone;
    let bye: Promise<unknown> | undefined;
    if (phone !== undefined && by !== 'callee' && phone.leg.dialog?.state === 'confirmed') {
      const header = by === 'caller' ? q850ReasonHeader(cause, causeText(cause)) : reasonHeader(200, reason);
      bye = phone.leg.send('BYE', { headers: { Reason: header } }).catch(() => undefined);
    }
    phone?.leg.dialog?.terminate();
    const forwarded = this.#forwarded;
    if (forwarded !== undefined && !forwarded.released) {
      forwarded.released = true;
      void forwarded.call.release(16).catch((err: unknown) => this.log.warn({ err }, 'could not release the forwarded line'));
    }
    const endedBy = by === 'caller' ? 'caller' : by === 'callee' ? 'callee' : 'system';
    if (forwarded !== undefined) this.call.legEnded(forwarded.legId, undefined, endedBy);
    this.call.legEnded(this.#aInfo.id, undefined, endedBy);
    if (phone !== undefined) this.call.legEnded(phone.info.id, undefined, endedBy);
    await this.#finish(this.call.answeredAt !== undefined ? 'answered' : 'failed', reason, undefined, by === 'caller' ? undefined : 16);
    await bye;
  }

  /** A request in the answered phone's dialog. */
  async handleInDialog(incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const dialog = this.#phone?.leg.dialog;
    if (dialog === undefined) {
      incoming.respond(481, 'Call/Transaction Does Not Exist');
      return;
    }
    try {
      dialog.receiveRequest(req);
    } catch (err) {
      if (!(err instanceof DialogError)) throw err;
      incoming.respond(err.status, err.status === 500 ? 'Server Internal Error' : 'Call/Transaction Does Not Exist');
      return;
    }
    switch (req.method) {
      case 'ACK':
        return;
      case 'BYE':
        incoming.respond(200, 'OK');
        await this.hangup('callee', 'Callee hung up');
        return;
      case 'OPTIONS':
        incoming.respond(200, 'OK', { headers: { Allow: ALLOWED_METHODS, Accept: 'application/sdp' } });
        return;
      case 'INVITE':
      case 'UPDATE':
        await this.#offerInDialog(incoming);
        return;
      case 'INFO':
        this.#info(incoming);
        return;
      case 'PRACK':
        incoming.respond(481, 'Call/Transaction Does Not Exist');
        return;
      default:
        // REFER (transfer of a line call) and the rest are not carried out for line calls yet.
        incoming.respond(501, 'Not Implemented', { headers: { Allow: ALLOWED_METHODS } });
    }
  }

  // --- routing and ringing ---------------------------------------------------------

  #firstDecision(): RouteDecision {
    const target = this.#line.target;
    const plan = this.#deps.dialPlan;
    const state = this.#deps.routingState;
    switch (target.kind) {
      case 'extension':
        return plan.route({ ...this.#request, dialed: target.extension }, state);
      case 'group':
        return plan.route({ ...this.#request, dialed: target.group }, state);
      case 'voicemail':
        return { target: { kind: 'voicemail', mailbox: target.mailbox, reason: 'direct' }, emergency: false, why: `DID ${this.#line.dialled} → voicemail ${target.mailbox}` };
      case 'app':
        return { target: { kind: 'reject', status: 480, reason: `application ${target.app} is not available for line calls` }, emergency: false, why: `DID ${this.#line.dialled} → app ${target.app}` };
    }
  }

  async #route(): Promise<void> {
    const { dialPlan, routingState } = this.#deps;
    let decision: RouteDecision | undefined = this.#firstDecision();
    let tried: FailureOutcome | undefined;
    for (let attempt = 0; decision !== undefined; attempt++) {
      if (this.#lineReleased || this.call.state === 'ended') return;
      const target = decision.target;
      this.log.info({ event: 'call.routed', target: target.kind, why: decision.why }, `routed: ${decision.why}`);
      let outcome: FailureOutcome | 'answered' | 'gone';
      if (target.kind === 'reject') {
        // The plan's 480 means nobody is registered for the number: subscriber absent (20),
        // which says more to the caller's network than RFC 3398's 18 for any 480.
        const cause = target.status === 480 ? causeForOutcome('unavailable') : causeForSipStatus(target.status);
        await this.#fail(cause, target.status, target.reason, target.status === 486 ? 'busy' : target.status === 480 ? 'unavailable' : 'failed');
        return;
      } else if (target.kind === 'ring') {
        outcome = await this.#ring(target.extensions, target.ringTimeoutSec);
        tried = outcome === 'answered' || outcome === 'gone' ? tried : outcome;
      } else if (target.kind === 'voicemail' && this.#deps.voicemail?.mailboxConfig(target.mailbox) !== undefined) {
        await this.#depositVoicemail(this.#deps.voicemail, target.mailbox, target.reason);
        return;
      } else if (target.kind === 'external' && this.#deps.trunks !== undefined) {
        await this.#forwardOut(this.#deps.trunks, target.number, target.emergency || decision.emergency);
        return;
      } else {
        // Feature codes and voicemail retrieval are carried out for calls from phones;
        // a line caller is told the target is unavailable.
        this.log.info({ target: target.kind }, 'this target is not carried out for line calls; treated as unavailable');
        outcome = 'unavailable';
      }
      if (outcome === 'answered') return;
      if (outcome === 'gone' || this.#lineReleased) {
        await this.#finish('cancelled', 'Caller hung up', 487);
        return;
      }
      const next = dialPlan.next(this.#request, decision, outcome, attempt, routingState);
      if (next === undefined) {
        const final = tried ?? outcome;
        await this.#fail(causeForOutcome(final), STATUS_FOR_OUTCOME[final], final, final);
        return;
      }
      if (this.call.state !== 'routing') this.call.transition('routing', `${outcome}: ${next.why}`);
      decision = next;
    }
  }

  async #session(): Promise<RtpSession> {
    this.#rtp ??= await this.#deps.media.createSession({ logger: this.log });
    return this.#rtp;
  }

  #localMedia(rtp: RtpSession): ReturnType<MediaEngine['localMedia']> {
    const media = this.#deps.media;
    return media.localMedia(rtp, this.#origin, { codecs: codecsFor(this.#law, media.config.codecs ?? ['PCMU', 'PCMA']) });
  }

  async #ring(extensions: readonly string[], ringTimeoutSec: number): Promise<FailureOutcome | 'answered' | 'gone'> {
    const rtp = await this.#session();
    if (this.#lineReleased) return 'gone';
    this.#ringing = [...extensions];
    const caller = this.#request.caller;
    const startedAt = Date.now();
    const result = await dialTarget(
      { ...this.#deps, log: this.log },
      {
        extensions,
        ringTimeoutSec,
        from: { uri: `sip:${caller.number}@${this.#deps.domain}`, ...(caller.name !== undefined ? { name: caller.name } : {}), params: Object.create(null) },
        sdp: createOffer(this.#localMedia(rtp)),
        signal: this.#lineGone.signal,
        onProgress: (status) => {
          if (this.call.state === 'routing') this.call.transition('ringing', `${status} from ${extensions.join(', ')}`);
        },
      },
    );
    this.#ringing = [];
    if (this.call.state === 'ended') {
      // Shut down while ringing; a phone that answered meanwhile is hung up.
      if (result.answered) await result.leg.ack().then(() => result.leg.send('BYE', { headers: { Reason: reasonHeader(503, 'Service shutting down') } })).catch(() => undefined);
      return 'gone';
    }
    if (!result.answered) {
      const info = this.call.addLeg({ kind: 'sip', direction: 'outbound', party: extensions.join(',') });
      this.call.legEnded(info.id, result.status, result.status === 487 ? 'cancel' : 'callee');
      if (result.status === 487 || this.#lineReleased) return 'gone';
      this.log.info({ status: result.status, extensions }, `${extensions.join(', ')}: ${result.status} ${result.reason}`);
      return result.status === 486 ? 'busy' : result.status === 408 ? 'no-answer' : result.status === 603 ? 'rejected' : 'unavailable';
    }
    const { leg, response, extension } = result;
    const info = this.call.addLeg({ kind: 'sip', direction: 'outbound', party: extension, callId: leg.callId });
    if (this.#lineReleased) {
      // The line caller hung up as the phone answered.
      this.call.legEnded(info.id, 200, 'system');
      await leg.ack().catch(() => undefined);
      await leg.send('BYE', { headers: { Reason: reasonHeader(487, 'Caller hung up') } }).catch(() => undefined);
      return 'gone';
    }
    try {
      rtp.applyNegotiation(acceptAnswer(response.content, this.#localMedia(rtp)));
    } catch (err) {
      this.log.warn({ err: (err as Error).message, extension }, 'the phone answered with unusable SDP');
      await leg.ack().catch(() => undefined);
      await leg.send('BYE', { headers: { Reason: reasonHeader(488, 'Unusable SDP answer') } }).catch(() => undefined);
      this.call.legEnded(info.id, 488, 'system');
      return 'unavailable';
    }
    this.#phone = { leg, info, extension };
    await leg.ack().catch((err: unknown) => this.log.warn({ err }, 'could not send ACK to the phone'));
    const dialog = leg.dialog;
    if (dialog !== undefined) this.#link.registerDialog(dialog.id);
    try {
      await this.#line.answer();
    } catch (err) {
      this.log.info({ err: (err as Error).message }, 'the line call ended before it could be answered');
      await this.hangup('caller', 'Caller hung up');
      return 'answered';
    }
    this.#bridge = new ChannelMedia({ card: this.#line.card, channel: this.#line.channel, law: this.#law, session: rtp, log: this.log });
    this.#bridge.start();
    // Silence from the phone counts from now (media.media_timeout).
    rtp.setDirection(rtp.direction);
    rtp.on('timeout', () => void this.hangup('system', 'Media timeout'));
    this.call.legAnswered(this.#aInfo.id);
    this.call.legAnswered(info.id);
    this.call.answeredBy = extension;
    this.call.transition('answered', `answered by ${extension}`);
    this.log.info({ event: 'call.answered', by: extension, codec: rtp.codec, law: this.#law, ringMs: Date.now() - startedAt }, `${extension} answered the line call`);
    return 'answered';
  }

  /**
   * Voicemail answers: the line is answered and bridged to an RTP session of the
   * agent that sends to a second one on loopback, which voicemail drives exactly as
   * it drives a phone's (prompts, recording, RFC 4733 digits from the line's keys).
   */
  async #depositVoicemail(voicemail: LineVoicemail, mailbox: string, reason: 'busy' | 'no-answer' | 'unavailable' | 'direct'): Promise<void> {
    const media = this.#deps.media;
    const lineSide = await this.#session();
    const appSide = await media.createSession({ logger: this.log });
    this.#appSession = appSide;
    const loopback = media.config.bindAddress === '0.0.0.0' || media.config.bindAddress === '::' ? '127.0.0.1' : media.config.bindAddress;
    for (const [from, to] of [
      [lineSide, appSide],
      [appSide, lineSide],
    ] as const) {
      from.setCodec(this.#law, 101);
      from.setRemote({ address: loopback, port: to.localPort });
    }
    if (this.#lineReleased || this.call.state === 'ended') {
      await this.#finish('cancelled', 'Caller hung up', 487);
      return;
    }
    try {
      await this.#line.answer();
    } catch (err) {
      this.log.info({ err: (err as Error).message }, 'the line call ended before voicemail answered');
      await this.#finish('cancelled', 'Caller hung up', 487);
      return;
    }
    this.#bridge = new ChannelMedia({ card: this.#line.card, channel: this.#line.channel, law: this.#law, session: lineSide, log: this.log });
    this.#bridge.start();
    const app = this.call.addLeg({ kind: 'application', direction: 'outbound', party: `voicemail ${mailbox}` });
    this.call.legAnswered(this.#aInfo.id);
    this.call.legAnswered(app.id);
    this.call.answeredBy = `voicemail ${mailbox}`;
    this.call.setMode('application');
    this.call.transition('answered', `answered by voicemail ${mailbox}`);
    this.log.info({ event: 'call.answered', by: `voicemail ${mailbox}`, reason }, `voicemail ${mailbox} answered the line call`);
    const caller = this.#request.caller;
    try {
      await voicemail.deposit(appSide, { mailbox, reason, caller: { number: caller.number, ...(caller.name !== undefined ? { name: caller.name } : {}) } });
    } catch (err) {
      this.log.error({ err }, `voicemail deposit failed: ${(err as Error).message}`);
    }
    this.call.legEnded(app.id, undefined, 'system');
    await this.hangup('system', 'voicemail deposit done');
  }

  /**
   * A forward that leads back out (an extension forwarded to a mobile): the call goes
   * out on another channel through the trunks, with the line caller's ID and the
   * DID's tenant; when the far end answers, the inbound line is answered and the two
   * channels are joined frame by frame (channel-pair.ts). The far end's refusal
   * reaches the caller as its own cause (busy 17...).
   */
  async #forwardOut(trunks: TrunkDialer, number: string, emergency: boolean): Promise<void> {
    const callerId = this.#line.callerId;
    let out: OutboundTrunkCall;
    try {
      out = await trunks.dialOut({
        number,
        emergency,
        tenant: this.#line.tenant,
        callerId: { ...(callerId.number !== undefined ? { number: callerId.number } : {}), ...(callerId.name !== undefined ? { name: callerId.name } : {}), presentation: callerId.presentation },
        callRef: this.call.id,
        signal: this.#lineGone.signal,
      });
    } catch (err) {
      if (this.#lineReleased || this.call.state === 'ended') {
        await this.#finish('cancelled', 'Caller hung up', 487);
        return;
      }
      if (!(err instanceof TrunkError)) throw err;
      await this.#fail(err.q850, err.sipStatus, `forward to ${number}: ${err.message}`, err.sipStatus === 486 ? 'busy' : 'failed');
      return;
    }
    const name = channelName(out.card, out.channel);
    const forwarded: ForwardedLine = { call: out, legId: this.call.addLeg({ kind: 'channel', direction: 'outbound', party: name }).id, released: false, pair: undefined, off: [] };
    this.#forwarded = forwarded;
    this.log.info({ event: 'line.forwarded', channel: name, dialled: out.dialled }, `forwarded out to ${out.dialled} on ${name}`);
    const progress = await new Promise<'answered' | 'gone' | { cause: number }>((resolve) => {
      const done = (p: 'answered' | 'gone' | { cause: number }): void => {
        for (const off of offs) off();
        this.#lineGone.signal.removeEventListener('abort', gone);
        resolve(p);
      };
      const gone = (): void => done('gone');
      const offs = [
        onChannelEvent(out.card, 'answer', out.channel, () => done('answered')),
        onChannelEvent(out.card, 'release', out.channel, (e) => done({ cause: e.cause })),
        onChannelEvent(out.card, 'alerting', out.channel, () => {
          if (this.call.state === 'routing') this.call.transition('ringing', `ringing on ${name}`);
        }),
      ];
      this.#lineGone.signal.addEventListener('abort', gone, { once: true });
      const state = out.card.channelState(out.channel);
      if (this.#lineReleased) done('gone');
      else if (state === 'connected') done('answered');
      else if (state === 'idle' || state === 'releasing' || state === 'out-of-service') done({ cause: 41 });
      else if (state === 'alerting' && this.call.state === 'routing') this.call.transition('ringing', `ringing on ${name}`);
    });
    if (progress === 'gone') {
      forwarded.released = true;
      this.call.legEnded(forwarded.legId, 487, 'cancel');
      await out.release(16).catch(() => undefined);
      await this.#finish('cancelled', 'Caller hung up', 487);
      return;
    }
    if (progress !== 'answered') {
      forwarded.released = true;
      const status = new TrunkError('EREJECTED', 'released', { q850: progress.cause }).sipStatus;
      this.call.legEnded(forwarded.legId, status, 'callee');
      await this.#fail(progress.cause, status, `forward to ${number}: ${causeText(progress.cause)}`, status === 486 ? 'busy' : 'unavailable');
      return;
    }
    try {
      await this.#line.answer();
    } catch (err) {
      this.log.info({ err: (err as Error).message }, 'the line call ended before the forward was answered');
      forwarded.released = true;
      await out.release(16).catch(() => undefined);
      await this.#finish('cancelled', 'Caller hung up', 487);
      return;
    }
    forwarded.pair = new ChannelPair({ card: this.#line.card, channel: this.#line.channel, law: this.#law }, { card: out.card, channel: out.channel, law: lawOf(out.card, out.channel) }, this.log);
    forwarded.pair.start();
    forwarded.off.push(
      onChannelEvent(out.card, 'release', out.channel, (e) => {
        forwarded.released = true;
        void this.hangup('callee', e.by === 'network' ? `Forwarded line failure: ${causeText(e.cause)}` : 'Forwarded party hung up');
      }),
    );
    this.call.legAnswered(this.#aInfo.id);
    this.call.legAnswered(forwarded.legId);
    this.call.answeredBy = out.dialled;
    this.call.transition('answered', `answered by ${out.dialled}`);
    this.log.info({ event: 'call.answered', by: out.dialled, channel: name }, `${out.dialled} answered the forwarded line call`);
  }

  // --- in the dialog -----------------------------------------------------------------

  /** Hold, resume, codec change from the phone: answered by the agent's session; the line notices nothing. */
  async #offerInDialog(incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const rtp = this.#rtp;
    const dialog = this.#phone?.leg.dialog;
    if (this.call.state !== 'answered' || rtp === undefined || dialog === undefined || this.#offerPending) {
      incoming.respond(491, 'Request Pending', { headers: { 'Retry-After': '1' } });
      return;
    }
    this.#origin.bump();
    const headers = { Contact: `<${dialog.localContact}>`, 'Content-Type': 'application/sdp' };
    if (req.content === '') {
      incoming.respond(200, 'OK', { headers, content: createOffer(this.#localMedia(rtp)) });
      if (req.method !== 'INVITE') return;
      this.#offerPending = true;
      const ack = await incoming.waitForAck();
      this.#offerPending = false;
      if (ack !== undefined && ack.content !== '') {
        try {
          rtp.applyNegotiation(acceptAnswer(ack.content, this.#localMedia(rtp)));
        } catch (err) {
          this.log.info({ err: (err as Error).message }, 'unusable SDP in the ACK; media unchanged');
        }
      }
      return;
    }
    try {
      const answer = answerOffer(req.content, this.#localMedia(rtp));
      rtp.applyNegotiation(answer.media);
      incoming.respond(200, 'OK', { headers, content: answer.sdp });
    } catch (err) {
      if (!(err instanceof SdpNegotiationError)) throw err;
      incoming.respond(488, 'Not Acceptable Here', { headers: { Warning: `${err.warning} ${this.#deps.domain} "${err.message.replace(/"/g, "'")}"` } });
    }
  }

  /** SIP INFO digits (application/dtmf-relay, application/dtmf) go to the line like RFC 4733 ones. */
  #info(incoming: IncomingRequest): void {
    const req = incoming.request;
    const type = typeof req.headers['content-type'] === 'string' ? req.headers['content-type'].toLowerCase() : '';
    const digit = type.startsWith('application/dtmf-relay')
      ? /Signal\s*=\s*([0-9*#A-Da-d])/.exec(req.content)?.[1]
      : type.startsWith('application/dtmf')
        ? /^\s*([0-9*#A-Da-d])\s*$/.exec(req.content)?.[1]
        : undefined;
    if (digit === undefined) {
      incoming.respond(type === '' ? 200 : 415, type === '' ? 'OK' : 'Unsupported Media Type', type === '' ? undefined : { headers: { Accept: 'application/dtmf-relay, application/dtmf' } });
      return;
    }
    incoming.respond(200, 'OK');
    this.#line.card.sendDigits(this.#line.channel, digit.toUpperCase()).catch((err: unknown) => this.log.info({ err: (err as Error).message }, 'INFO digit not sent to the line'));
  }

  // --- endings -----------------------------------------------------------------------

  /** The line released the channel: the far end hung up, or an alarm took the span. */
  #released(e: ReleaseEvent): void {
    if (this.#lineReleased) return;
    this.#lineReleased = true;
    // Our own releases come after #finish stopped listening: a 'local' one here is the
    // trunks taking the channel (an emergency call pre-empting this one, cause 8).
    this.log.info({ event: 'line.released', cause: e.cause, by: e.by }, `line released: cause ${e.cause} (${causeText(e.cause)}) by ${e.by}`);
    if (this.call.state === 'answered') {
      const why = e.by === 'network' ? `Line failure: ${causeText(e.cause)}` : e.by === 'local' ? `Line taken: ${causeText(e.cause)}` : 'Caller hung up';
      void this.hangup('caller', why, e.cause);
      return;
    }
    this.call.legEnded(this.#aInfo.id, 487, 'cancel');
    this.#lineGone.abort();
  }

  /** Releases the line with `cause` (unanswered call) and ends the call. */
  async #fail(cause: number, status: number, reasonText: string, disposition: CallDisposition): Promise<void> {
    if (this.call.state === 'ended') return;
    this.log.info({ event: 'call.failed', cause, status, reason: reasonText }, `line call failed: cause ${cause} (${causeText(cause)})`);
    this.call.legEnded(this.#aInfo.id, status, 'system');
    await this.#finish(disposition, `${reasonText} (Q.850 cause ${cause})`, status, cause);
  }

  async #finish(disposition: CallDisposition, reason: string, finalStatus: number | undefined, releaseCause?: number): Promise<void> {
    if (this.call.state === 'ended') return;
    this.call.end(disposition, reason, finalStatus);
    this.#offRelease();
    this.#bridge?.stop();
    this.#forwarded?.pair?.stop();
    for (const off of this.#forwarded?.off.splice(0) ?? []) off();
    const phone = this.#phone;
    if (phone?.leg.dialog !== undefined) this.#link.unregisterDialog(phone.leg.dialog.id);
    this.#link.ended();
    const release = !this.#lineReleased && releaseCause !== undefined ? this.#line.release(releaseCause) : Promise.resolve();
    this.#lineReleased = true;
    await Promise.all([
      release.catch((err: unknown) => this.log.warn({ err }, 'could not release the line')),
      this.#rtp?.stop().catch((err: unknown) => this.log.warn({ err }, 'media did not stop cleanly')),
      this.#appSession?.stop().catch((err: unknown) => this.log.warn({ err }, 'media did not stop cleanly')),
    ]);
  }
}
