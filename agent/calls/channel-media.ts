// Audio and digits between a line-card channel and the agent's RTP session facing
// a phone (docs/calls.md, "Calls on the line cards"). The channel delivers 160-byte
// G.711 frames every 20 ms in its span's law; the phone speaks whichever law SDP
// negotiated. Each way the bytes are transcoded in place when the laws differ:
//   line → phone: each frame is wrapped in an RTP packet on our own timeline and
//                 handed to RtpSession.forward(), the relay's path (header rewritten
//                 into the session's SSRC/sequence/timestamp, dropped while the
//                 session plays a tone or digits);
//   phone → line: every received audio packet's payload goes to the channel,
//                 re-framed to 20 ms when the phone packs 10 or 30 ms per packet.
// Digits: RFC 4733 events from the phone become line digits (card.sendDigits);
// digits from the line — signalled by the card, or heard in band in its audio —
// become RFC 4733 events to the phone (in-band tones when it has no
// telephone-event, which is what the phone hears anyway).

import type { Logger } from 'pino';
import { FRAME_BYTES, type ChannelRef, type FrameLaw, type LineCard } from '../../drivers/types.ts';
import type { DigitEvent, RtpSession } from '../media/index.ts';
import { DtmfDetector } from '../media/dtmf-detector.ts';
import { decodeG711, FRAME_SAMPLES, transcodeG711InPlace } from '../media/g711.ts';
import { createRtpView, parseRtpInto, RTP_HEADER_BYTES, writeRtpHeader, type RtpView } from '../media/rtp-packet.ts';
import { onChannelEvent } from './channel-events.ts';

/** A digit that arrived both as signalling and in band within this long is one key press. */
const SAME_PRESS_MS = 400;

export interface ChannelMediaStats {
  /** Frames from the line forwarded to the phone. */
  lineToPhone: number;
  /** Frames written to the line from the phone's packets. */
  phoneToLine: number;
  /** Digits each way. */
  digitsToLine: number;
  digitsToPhone: number;
}

export interface ChannelMediaOptions {
  card: LineCard;
  channel: ChannelRef;
  /** The span's law (SpanInfo.law). */
  law: FrameLaw;
  /** The agent's session facing the phone, negotiated. */
  session: RtpSession;
  log: Logger;
  /**
   * Listen for DTMF in the line's audio (CAS and analog lines carry digits in
   * band). Default true.
   */
  inbandDigits?: boolean;
}

export class ChannelMedia {
  readonly #card: LineCard;
  readonly #channel: ChannelRef;
  readonly #law: FrameLaw;
  readonly #session: RtpSession;
  readonly #log: Logger;
  readonly #detector: DtmfDetector | undefined;
  readonly #pcm = new Int16Array(FRAME_SAMPLES);
  readonly #view: RtpView = createRtpView();
  /** Our timeline for frames from the line (the session rewrites it into its own). */
  readonly #ssrc = (Math.random() * 0xffffffff) >>> 0;
  #seq = 0;
  #timestamp = 0;
  /** Bytes of a 20 ms frame for the line being gathered from packets of another size. */
  #partial: Uint8Array | undefined;
  #partialFill = 0;
  #lastDigit: { digit: string; at: number; how: 'signalled' | 'inband' } | undefined;
  #unsubscribe: Array<() => void> = [];
  readonly #stats: ChannelMediaStats = { lineToPhone: 0, phoneToLine: 0, digitsToLine: 0, digitsToPhone: 0 };

  constructor(options: ChannelMediaOptions) {
    this.#card = options.card;
    this.#channel = options.channel;
    this.#law = options.law;
    this.#session = options.session;
    this.#log = options.log;
    this.#detector = options.inbandDigits === false ? undefined : new DtmfDetector((e) => this.#lineDigit(e.digit, 'inband'));
  }

  get stats(): ChannelMediaStats {
    return { ...this.#stats };
  }

  /** Starts both directions; call once the channel is connected and the session negotiated. */
  start(): void {
    if (this.#unsubscribe.length > 0) return;
    this.#unsubscribe.push(this.#card.onFrame(this.#channel, (frame) => this.#fromLine(frame)));
    this.#session.setPacketSink((packet, view) => this.#fromPhone(packet, view));
    const onPhoneDigit = (e: DigitEvent): void => this.#phoneDigit(e);
    this.#session.on('digit', onPhoneDigit);
    this.#unsubscribe.push(
      () => this.#session.setPacketSink(undefined),
      () => this.#session.off('digit', onPhoneDigit),
      onChannelEvent(this.#card, 'digits', this.#channel, (e) => {
        for (const digit of e.digits) this.#lineDigit(digit, 'signalled');
      }),
    );
  }

  stop(): void {
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  #fromLine(frame: Uint8Array): void {
    if (frame.length !== FRAME_BYTES) return;
    if (this.#detector !== undefined) {
      decodeG711(this.#law, frame, this.#pcm, 0, FRAME_BYTES);
      this.#detector.push(this.#pcm, FRAME_SAMPLES);
    }
    // A fresh buffer per packet: the socket may still hold the previous one.
    const packet = Buffer.allocUnsafe(RTP_HEADER_BYTES + FRAME_BYTES);
    this.#seq = (this.#seq + 1) & 0xffff;
    this.#timestamp = (this.#timestamp + FRAME_SAMPLES) >>> 0;
    // The payload type is the session's business: forward() writes its own.
    writeRtpHeader(packet, false, 0, this.#seq, this.#timestamp, this.#ssrc);
    packet.set(frame, RTP_HEADER_BYTES);
    parseRtpInto(packet, packet.length, this.#view);
    this.#session.forward(packet, this.#view, this.#law, false);
    this.#stats.lineToPhone++;
  }

  #fromPhone(packet: Buffer, view: RtpView): void {
    const session = this.#session;
    // Telephone events arrive as 'digit' events; anything else not negotiated is ignored.
    if (view.payloadType !== session.payloadType || view.payloadType === session.telephoneEventPt) return;
    transcodeG711InPlace(session.codec, this.#law, packet, view.payloadOffset, view.payloadLength);
    if (view.payloadLength === FRAME_BYTES && this.#partialFill === 0) {
      // The usual case (ptime 20): the datagram is ours alone, its payload is the frame.
      this.#write(packet.subarray(view.payloadOffset, view.payloadOffset + FRAME_BYTES));
      return;
    }
    let offset = view.payloadOffset;
    const end = view.payloadOffset + view.payloadLength;
    while (offset < end) {
      this.#partial ??= new Uint8Array(FRAME_BYTES);
      const n = Math.min(FRAME_BYTES - this.#partialFill, end - offset);
      this.#partial.set(packet.subarray(offset, offset + n), this.#partialFill);
      this.#partialFill += n;
      offset += n;
      if (this.#partialFill === FRAME_BYTES) {
        this.#write(this.#partial);
        this.#partial = undefined;
        this.#partialFill = 0;
      }
    }
  }

  #write(frame: Uint8Array): void {
    if (this.#card.writeFrame(this.#channel, frame)) this.#stats.phoneToLine++;
  }

  #phoneDigit(e: DigitEvent): void {
    // In-band digits from the phone are in its audio already: the line hears them.
    if (e.source !== 'rfc4733') return;
    this.#stats.digitsToLine++;
    this.#card.sendDigits(this.#channel, e.digit).catch((err: unknown) => {
      this.#log.info({ err: (err as Error).message, digit: e.digit }, 'digit not sent to the line');
    });
  }

  #lineDigit(digit: string, how: 'signalled' | 'inband'): void {
    const now = performance.now();
    const last = this.#lastDigit;
    this.#lastDigit = { digit, at: now, how };
    // A line that signals a digit may also carry its tone: one press, sent once.
    if (last !== undefined && last.digit === digit && last.how !== how && now - last.at < SAME_PRESS_MS) return;
    // A phone without telephone-event hears in-band digits in the audio already.
    if (how === 'inband' && this.#session.telephoneEventPt === undefined) return;
    this.#stats.digitsToPhone++;
    this.#session.sendDigits(digit).catch((err: unknown) => this.#log.info({ err: (err as Error).message, digit }, 'digit not sent to the phone'));
  }
}
