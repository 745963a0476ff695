// The call core's route target 'external' carried out on the line cards (docs/calls.md,
// "Calls on the line cards"): the phone's call goes out through TrunkService.dialOut
// (route, a channel from the fair allocator — emergency calls pre-empt — seize and
// dial with failover). While the far end rings the phone gets 183 with the agent's
// SDP and a ringback tone from the media engine's country table (or a plain 180 when
// the line reports no ringing); on answer the phone gets 200 and the channel's frames
// are bridged to the agent's RTP session (channel-media.ts). When no channel can be
// had the phone gets 503 with Retry-After; a far end that refuses gives its RFC 3398
// status (busy 486, unallocated 404...). Either side hanging up ends the other.

import { causeText } from '../../drivers/q850.ts';
import type { ChannelRef, ReleaseEvent } from '../../drivers/types.ts';
import { answerOffer, createOffer, acceptAnswer, SdpNegotiationError, SdpOrigin, type MediaEngine, type RtpSession } from '../media/index.ts';
import { TrunkError } from '../trunks/errors.ts';
import type { ExternalCallRequest } from '../trunks/router.ts';
import type { OutboundTrunkCall } from '../trunks/trunk-service.ts';
import type { CallDisposition } from './call-record.ts';
import type { CallSession, TargetHandler, TargetOutcome } from './call-session.ts';
import { reasonPhrase } from './sip-leg.ts';
import { onChannelEvent } from './channel-events.ts';
import { ChannelMedia } from './channel-media.ts';
import { channelName, codecsFor, lawOf } from './channel-call.ts';

/** What the handler needs of the trunks (TrunkService). */
export interface TrunkDialer {
  dialOut(request: ExternalCallRequest): Promise<OutboundTrunkCall>;
}

export interface ExternalTargetDeps {
  trunks: TrunkDialer;
  media: MediaEngine;
}

function dispositionOf(status: number): CallDisposition {
  if (status === 486 || status === 600) return 'busy';
  if (status === 403 || status === 603) return 'rejected';
  if (status === 480 || status === 404 || status === 410) return 'unavailable';
  if (status === 408) return 'no-answer';
  return 'failed';
}

/** How the line call stands once dialled: answered, or released with a cause. */
type LineProgress = { kind: 'answered' } | { kind: 'released'; cause: number; by: ReleaseEvent['by'] };

export function externalTargetHandler(deps: ExternalTargetDeps): TargetHandler {
  return (session, decision) => {
    const target = decision.target;
    if (target.kind !== 'external') return Promise.resolve('unavailable');
    return new OutboundLineCall(deps, session, target.number, target.emergency || decision.emergency).run();
  };
}

/** One phone's call out on a line, from dialling to the end of the call. */
class OutboundLineCall {
  readonly #deps: ExternalTargetDeps;
  readonly #session: CallSession;
  readonly #number: string;
  readonly #emergency: boolean;
  readonly #abort = new AbortController();
  readonly #origin = new SdpOrigin();
  #callerEnded = false;
  #rtp: RtpSession | undefined;
  #line: OutboundTrunkCall | undefined;
  #lineLegId: string | undefined;
  #lineReleased = false;
  #bridge: ChannelMedia | undefined;
  /** Settles the wait for answer when the line changes or the caller goes. */
  #progress: ((p: LineProgress | { kind: 'caller-gone' }) => void) | undefined;
  readonly #offLine: Array<() => void> = [];

  constructor(deps: ExternalTargetDeps, session: CallSession, number: string, emergency: boolean) {
    this.#deps = deps;
    this.#session = session;
    this.#number = number;
    this.#emergency = emergency;
  }

  async run(): Promise<TargetOutcome> {
    const session = this.#session;
    session.onEnd(() => this.#callerGone());
    const rtp = await this.#deps.media.createSession({ logger: session.log });
    this.#rtp = rtp;
    if (this.#callerEnded) return this.#cleanUp('done');
    let trunkCall: OutboundTrunkCall;
    try {
      const caller = session.request.caller;
      trunkCall = await this.#deps.trunks.dialOut({
        number: this.#number,
        emergency: this.#emergency,
        ...(caller.extension !== undefined ? { callerExtension: caller.extension } : {}),
        callerId: { number: caller.number, ...(caller.name !== undefined ? { name: caller.name } : {}), presentation: 'allowed' },
        callRef: session.call.id,
        signal: this.#abort.signal,
      });
    } catch (err) {
      if (this.#callerEnded) return this.#cleanUp('done');
      if (!(err instanceof TrunkError)) throw err;
      session.log.info({ event: 'trunk.refused', code: err.code, status: err.sipStatus, retryAfter: err.retryAfterSec, q850: err.q850 }, `outbound call not carried: ${err.message}`);
      await this.#cleanUp('done');
      const headers: Record<string, string> = err.retryAfterSec !== undefined ? { 'Retry-After': String(err.retryAfterSec) } : {};
      await session.reject(err.sipStatus, reasonPhrase(err.sipStatus) ?? 'Service Unavailable', this.#reasonFor(err), dispositionOf(err.sipStatus), headers);
      return 'done';
    }
    this.#line = trunkCall;
    const name = channelName(trunkCall.card, trunkCall.channel);
    this.#lineLegId = session.call.addLeg({ kind: 'channel', direction: 'outbound', party: name }).id;
    session.log.info({ event: 'trunk.dialled', channel: name, dialled: trunkCall.dialled, state: trunkCall.state, emergency: this.#emergency, failedOver: trunkCall.failedOver }, `dialled ${trunkCall.dialled} on ${name}`);
    const progress = this.#follow(trunkCall);
    if (this.#callerEnded) return this.#cleanUp('done');

    // The caller's media: our session answers its offer (or offers, when it made none).
    const local = this.#deps.media.localMedia(rtp, this.#origin, { codecs: codecsFor(lawOf(trunkCall.card, trunkCall.channel), this.#deps.media.config.codecs ?? ['PCMU', 'PCMA']) });
    let sdp: string;
    try {
      if (session.callerOffer === '') sdp = createOffer(local);
      else {
        const answer = answerOffer(session.callerOffer, local);
        rtp.applyNegotiation(answer.media);
        sdp = answer.sdp;
      }
    } catch (err) {
      if (!(err instanceof SdpNegotiationError)) throw err;
      await this.#cleanUp('done');
      await session.reject(488, 'Not Acceptable Here', err.message, 'failed', { Warning: `${err.warning} branchline "${err.message.replace(/"/g, "'")}"` });
      return 'done';
    }

    const outcome = await progress(sdp);
    if (outcome.kind === 'caller-gone') return this.#cleanUp('done');
    if (outcome.kind === 'released') {
      const status = new TrunkError('EREJECTED', 'released', { q850: outcome.cause }).sipStatus;
      session.log.info({ event: 'trunk.released', cause: outcome.cause, by: outcome.by }, `${this.#number}: line released before answer, cause ${outcome.cause} (${causeText(outcome.cause)})`);
      session.call.legEnded(this.#lineLegId, status, 'callee');
      await this.#cleanUp('done');
      await session.reject(status, reasonPhrase(status) ?? 'Temporarily Unavailable', `Q.850 cause ${outcome.cause}: ${causeText(outcome.cause)}`, dispositionOf(status));
      return 'done';
    }

    // Answered: the tone stops, the frames flow, the phone gets its 200.
    rtp.stopPlayback();
    this.#bridge = new ChannelMedia({ card: trunkCall.card, channel: trunkCall.channel, law: lawOf(trunkCall.card, trunkCall.channel), session: rtp, log: session.log });
    this.#bridge.start();
    session.call.legAnswered(this.#lineLegId);
    const ack = await session.answerLocally(sdp, trunkCall.dialled);
    if (ack === undefined) return 'answered'; // no ACK: answerLocally hung up; #callerGone cleans up
    session.call.setMode('bridged'); // answerLocally means an application; this is two parties talking
    if (session.callerOffer === '' && ack.content !== '') {
      try {
        rtp.applyNegotiation(acceptAnswer(ack.content, local));
      } catch (err) {
        session.log.warn({ err: (err as Error).message }, "the caller's answer in the ACK is unusable: hanging up");
        await session.hangup('system', 'Unusable SDP in ACK');
        return 'answered';
      }
    }
    rtp.setDirection(rtp.direction); // silence from the phone counts from the answer
    rtp.on('timeout', () => void session.hangup('system', 'Media timeout'));
    if (this.#lineReleased) await session.hangup('callee', 'Line hung up');
    return 'answered';
  }

  /**
   * Follows the line from the dial: returns a function that, given the SDP for early
   * media, relays progress to the caller and resolves at answer, release, or when
   * the caller goes. Listeners stay until clean-up (a release after answer hangs up).
   */
  #follow(trunkCall: OutboundTrunkCall): (sdp: string) => Promise<LineProgress | { kind: 'caller-gone' }> {
    const { card, channel } = trunkCall;
    const session = this.#session;
    let early: string | undefined;
    let pending: LineProgress | undefined;
    const settle = (p: LineProgress): void => {
      if (this.#progress !== undefined) this.#progress(p);
      else pending ??= p;
    };
    const ringing = (): void => {
      if (early === undefined || session.call.state !== 'routing') return;
      if (session.callerOffer === '') {
        // Our SDP would be an offer, which a 183 cannot carry reliably: the phone rings locally.
        session.a.provisional(180, 'Ringing');
        session.call.transition('ringing', `ringing on ${channelName(card, channel)}`);
        return;
      }
      // Far-end ringing: early media with our own ringback tone, as the exchange would play it.
      session.a.provisional(183, 'Session Progress', early);
      session.call.transition('early', `ringing on ${channelName(card, channel)}`);
      if (this.#rtp !== undefined) void this.#rtp.play(this.#deps.media.tone('ringback'));
    };
    const onRelease = (e: ReleaseEvent): void => {
      this.#lineReleased = true;
      if (this.#lineLegId !== undefined) session.call.legEnded(this.#lineLegId, undefined, e.by === 'local' ? 'system' : 'callee');
      if (session.call.state === 'answered') {
        void session.hangup('callee', e.by === 'network' ? `Line failure: ${causeText(e.cause)}` : 'Line hung up');
        return;
      }
      settle({ kind: 'released', cause: e.cause, by: e.by });
    };
    this.#offLine.push(
      onChannelEvent(card, 'alerting', channel, () => ringing()),
      onChannelEvent(card, 'answer', channel, () => settle({ kind: 'answered' })),
      onChannelEvent(card, 'release', channel, onRelease),
    );
    return (sdp) => {
      early = sdp;
      if (pending !== undefined) return Promise.resolve(pending);
      const state = card.channelState(channel);
      if (state === 'connected') return Promise.resolve({ kind: 'answered' });
      if (state === 'idle' || state === 'releasing' || state === 'out-of-service') return Promise.resolve({ kind: 'released', cause: 41, by: 'network' });
      if (state === 'alerting') ringing();
      // A line that reports no ringing (CAS, some analog lines): the phone rings locally.
      else if (session.call.state === 'routing') {
        session.a.provisional(180, 'Ringing');
        session.call.transition('ringing', `dialled on ${channelName(card, channel)}`);
      }
      return new Promise((resolve) => {
        this.#progress = (p) => {
          this.#progress = undefined;
          resolve(p);
        };
      });
    };
  }

  /** The phone's side ended (CANCEL, BYE, shutdown): the line goes too. */
  #callerGone(): void {
    this.#callerEnded = true;
    this.#abort.abort();
    this.#progress?.({ kind: 'caller-gone' });
    void this.#cleanUp('done');
  }

  /** Stops the bridge and the session, releases the line if it is still up. */
  async #cleanUp(outcome: TargetOutcome): Promise<TargetOutcome> {
    this.#bridge?.stop();
    const line = this.#line;
    const release = line !== undefined && !this.#lineReleased ? line.release(16) : undefined;
    this.#lineReleased = true;
    if (this.#lineLegId !== undefined) this.#session.call.legEnded(this.#lineLegId, undefined, 'caller');
    for (const off of this.#offLine.splice(0)) off();
    await Promise.all([release?.catch(() => undefined), this.#rtp?.stop().catch(() => undefined)]);
    return outcome;
  }

  #reasonFor(err: TrunkError): string {
    switch (err.code) {
      case 'EQUEUE_TIMEOUT':
      case 'EQUEUE_FULL':
        return 'All lines busy';
      case 'ETHROTTLED':
        return 'Call rate limit';
      case 'ENO_ROUTE':
        return 'No route';
      case 'EREJECTED':
        return `Q.850 cause ${err.q850}: ${causeText(err.q850)}`;
      default:
        return err.message;
    }
  }
}
