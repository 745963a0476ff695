// How a call's audio flows, by media policy (docs/calls.md, docs/media.md):
//   direct   — the phones' SDP passes through untouched; RTP goes phone to phone.
//              The agent only checks that the caller's offer is SDP with audio, so
//              a malformed offer is a 488 here rather than at the callee.
//   anchored — the agent terminates RTP on both legs (one RtpSession each),
//              answers the caller with its own address, offers the callees its own
//              address, and relays between the two sessions. Latching makes this
//              work for phones behind NAT. Mid-call offers (hold, resume, codec
//              change) are answered locally on the leg that sent them; the other
//              leg keeps its session and never notices.
// The call controller asks the same questions of both; only the answers differ.

import type { Logger } from 'pino';
import type { MediaPolicyName } from '../config/types.ts';
import {
  acceptAnswer,
  answerOffer,
  createOffer,
  describeAudio,
  SdpOrigin,
  type MediaEngine,
  type MediaRelay,
  type RtpSession,
} from '../media/index.ts';

export type Side = 'a' | 'b';

/** A mid-call offer either answered by the agent or passed on to the other leg. */
export type MidCallAnswer = { kind: 'local'; sdp: string } | { kind: 'relay' };

export interface MediaPath {
  readonly policy: MediaPolicyName;
  /**
   * The SDP to offer the callees, from the caller's INVITE body ('' when the caller
   * made no offer). Throws SdpNegotiationError (a 488 for the caller).
   */
  offerToCallees(callerSdp: string): Promise<string>;
  /**
   * The SDP for the caller in a 18x (`provisional`) or 2xx, from what a callee sent
   * ('' for none). Throws SdpNegotiationError when a callee's answer is unusable.
   */
  toCaller(calleeSdp: string, provisional?: boolean): string;
  /** The caller's ACK carried the answer to an offer we made in the 2xx (late offer). */
  callerAck(sdp: string): void;
  /** An offer inside the dialog (re-INVITE, UPDATE) from one side; '' for an offerless re-INVITE. */
  midCallOffer(side: Side, sdp: string): MidCallAnswer;
  /** The ACK answering an offer we made in a 2xx to an offerless re-INVITE. */
  midCallAck(side: Side, sdp: string): void;
  /** Anchored: called when a leg sent no RTP for media.media_timeout, once armed. */
  onTimeout(listener: () => void): void;
  /** The call was answered: silence from now on counts (phones may send nothing while ringing). */
  armTimeout(): void;
  stop(): Promise<void>;
}

/** Direct media: the agent is out of the audio path. */
export class DirectMediaPath implements MediaPath {
  readonly policy = 'direct' as const;

  async offerToCallees(callerSdp: string): Promise<string> {
    // describeAudio throws SdpNegotiationError (488) for garbage or audio-less offers.
    if (callerSdp !== '') describeAudio(callerSdp);
    return callerSdp;
  }

  toCaller(calleeSdp: string): string {
    return calleeSdp;
  }

  callerAck(): void {}

  midCallOffer(): MidCallAnswer {
    return { kind: 'relay' };
  }

  midCallAck(): void {}

  onTimeout(): void {}

  armTimeout(): void {}

  stop(): Promise<void> {
    return Promise.resolve();
  }
}

interface AnchoredLeg {
  session: RtpSession;
  origin: SdpOrigin;
}

/** Anchored media: two RTP sessions in the agent and a relay between them. */
export class AnchoredMediaPath implements MediaPath {
  readonly policy = 'anchored' as const;
  readonly #engine: MediaEngine;
  readonly #log: Logger;
  #a: AnchoredLeg | undefined;
  #b: AnchoredLeg | undefined;
  #relay: MediaRelay | undefined;
  /** What the caller gets in every 18x/2xx: our answer to its offer, or our offer (late offer). */
  #callerSdp = '';
  #lateOffer = false;
  #timeoutListener: (() => void) | undefined;
  #timeoutArmed = false;
  #stopped = false;

  constructor(engine: MediaEngine, log: Logger) {
    this.#engine = engine;
    this.#log = log;
  }

  async offerToCallees(callerSdp: string): Promise<string> {
    if (this.#a === undefined) {
      const a = await this.#leg();
      this.#a = a;
      if (callerSdp === '') {
        this.#lateOffer = true;
        this.#callerSdp = createOffer(this.#engine.localMedia(a.session, a.origin));
      } else {
        let answer;
        try {
          answer = answerOffer(callerSdp, this.#engine.localMedia(a.session, a.origin));
        } catch (err) {
          await this.stop();
          throw err;
        }
        a.session.applyNegotiation(answer.media);
        if (answer.media.telephoneEventPt === undefined) a.session.setInbandDtmf(true);
        this.#callerSdp = answer.sdp;
      }
    }
    this.#b ??= await this.#leg();
    return createOffer(this.#engine.localMedia(this.#b.session, this.#b.origin));
  }

  toCaller(calleeSdp: string, provisional = false): string {
    const b = this.#b;
    if (b === undefined) return '';
    if (calleeSdp === '') return '';
    b.session.applyNegotiation(acceptAnswer(calleeSdp, this.#engine.localMedia(b.session, b.origin)));
    this.#startRelay();
    // Late offer: our SDP for the caller is an offer, which an unreliable 18x must
    // not carry (RFC 3261 §13.2.1); it goes in the 2xx. The callee's early media
    // still reaches us, so the relay runs from now.
    if (this.#lateOffer && provisional) return '';
    return this.#callerSdp;
  }

  callerAck(sdp: string): void {
    const a = this.#a;
    if (!this.#lateOffer || a === undefined || sdp === '') return;
    this.#lateOffer = false;
    a.session.applyNegotiation(acceptAnswer(sdp, this.#engine.localMedia(a.session, a.origin)));
  }

  midCallOffer(side: Side, sdp: string): MidCallAnswer {
    const leg = side === 'a' ? this.#a : this.#b;
    if (leg === undefined) return { kind: 'relay' };
    leg.origin.bump();
    const local = this.#engine.localMedia(leg.session, leg.origin);
    if (sdp === '') return { kind: 'local', sdp: createOffer(local) };
    // Throws SdpNegotiationError: the re-INVITE gets a 488 and the call goes on as it was.
    const answer = answerOffer(sdp, local);
    leg.session.applyNegotiation(answer.media);
    this.#log.info({ side, direction: answer.media.direction, codec: answer.media.codec }, answer.media.heldByRemote ? 'call put on hold' : 'media renegotiated');
    return { kind: 'local', sdp: answer.sdp };
  }

  midCallAck(side: Side, sdp: string): void {
    const leg = side === 'a' ? this.#a : this.#b;
    if (leg === undefined || sdp === '') return;
    leg.session.applyNegotiation(acceptAnswer(sdp, this.#engine.localMedia(leg.session, leg.origin)));
  }

  onTimeout(listener: () => void): void {
    this.#timeoutListener = listener;
  }

  armTimeout(): void {
    this.#timeoutArmed = true;
    // Setting the same direction restarts a session's silence clock and re-arms it.
    for (const leg of [this.#a, this.#b]) leg?.session.setDirection(leg.session.direction);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#relay?.stop();
    await Promise.all([this.#a?.session.stop(), this.#b?.session.stop()]);
  }

  async #leg(): Promise<AnchoredLeg> {
    const session = await this.#engine.createSession({ logger: this.#log });
    // A leg that stopped sending RTP for media_timeout: the phone is gone.
    session.on('timeout', () => {
      if (this.#timeoutArmed) this.#timeoutListener?.();
    });
    if (this.#stopped) {
      await session.stop();
      throw new Error('media path stopped while a session was being created');
    }
    return { session, origin: new SdpOrigin() };
  }

  #startRelay(): void {
    if (this.#relay !== undefined || this.#a === undefined || this.#b === undefined) return;
    this.#relay = this.#engine.relay(this.#a.session, this.#b.session);
  }
}
