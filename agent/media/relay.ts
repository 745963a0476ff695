// Anchored media: the agent relays RTP between two legs of a call (leg A ↔ leg B).
// Packets pass straight through when both legs use the same codec (only the
// header is rewritten into the other leg's SSRC/sequence/timestamp timeline),
// are transcoded µ-law↔A-law in place when they differ, and RFC 4733 events are
// forwarded with the other leg's payload type — or, when that leg did not
// negotiate telephone-event, replayed to it as in-band tones.
//
// The relay owns no sockets: the call core creates both sessions, negotiates
// them, and starts/stops the relay around the bridged state.
import type { Logger } from 'pino';
import type { RtpSession } from './rtp-session.ts';
import type { RtpView } from './rtp-packet.ts';
import type { DigitEvent } from './telephone-event.ts';

/**
 * Per extension/route: 'direct' passes the phones' SDP through (the agent stays
 * out of the audio path); 'anchored' relays RTP through the agent — required
 * when a leg is behind NAT or is a line-card channel.
 */
export type MediaPolicy = 'direct' | 'anchored';

export interface RelayStats {
  aToB: number;
  bToA: number;
  /** Digits converted from RFC 4733 to in-band tones because the far leg has no telephone-event. */
  digitsToTones: number;
}

export class MediaRelay {
  readonly a: RtpSession;
  readonly b: RtpSession;
  readonly #logger: Logger | undefined;
  #running = false;
  #aToB = 0;
  #bToA = 0;
  #digitsToTones = 0;

  constructor(a: RtpSession, b: RtpSession, logger?: Logger) {
    this.a = a;
    this.b = b;
    this.#logger = logger;
  }

  get running(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.a.setPacketSink(this.#fromA);
    this.b.setPacketSink(this.#fromB);
    this.a.on('digit', this.#digitFromA);
    this.b.on('digit', this.#digitFromB);
  }

  /** Stops relaying; the sessions keep running (the call core stops them). */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.a.setPacketSink(undefined);
    this.b.setPacketSink(undefined);
    this.a.off('digit', this.#digitFromA);
    this.b.off('digit', this.#digitFromB);
  }

  stats(): RelayStats {
    return { aToB: this.#aToB, bToA: this.#bToA, digitsToTones: this.#digitsToTones };
  }

  readonly #fromA = (packet: Buffer, view: RtpView, from: RtpSession, receivedAt: number): void => {
    this.#aToB++;
    this.b.forward(packet, view, from.codec, view.payloadType === from.telephoneEventPt, receivedAt);
  };

  readonly #fromB = (packet: Buffer, view: RtpView, from: RtpSession, receivedAt: number): void => {
    this.#bToA++;
    this.a.forward(packet, view, from.codec, view.payloadType === from.telephoneEventPt, receivedAt);
  };

  #digitToTone(event: DigitEvent, to: RtpSession): void {
    // Only RFC 4733 digits need help: in-band digits are in the audio already.
    if (event.source !== 'rfc4733' || to.telephoneEventPt !== undefined) return;
    this.#digitsToTones++;
    this.#logger?.debug({ digit: event.digit, durationMs: event.durationMs }, 'relaying RFC 4733 digit as in-band tone');
    void to.sendDigits(event.digit, { durationMs: Math.max(60, Math.min(event.durationMs, 500)) });
  }

  readonly #digitFromA = (event: DigitEvent): void => this.#digitToTone(event, this.b);
  readonly #digitFromB = (event: DigitEvent): void => this.#digitToTone(event, this.a);
}
