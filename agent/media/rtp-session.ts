// One RTP stream endpoint: an RTP/RTCP socket pair, what we send (local audio
// from a source, RFC 4733 digits, or packets forwarded by a relay) and what we
// receive (statistics, digits, decoded audio, or raw packets for a relay).
//
// Sending keeps one outgoing timeline per session: our own SSRC, a sequence
// number that grows by one per packet whatever its origin, and timestamps that
// follow real time. When the origin changes (a prompt starts while a relay was
// forwarding, the forwarded phone changes SSRC after a transfer), the timeline is
// re-anchored at "last timestamp + elapsed time" and the marker bit set, so the
// far end's jitter buffer sees one continuous, monotonic stream.
//
// Receiving does symmetric RTP with latching (for phones behind NAT): we send to
// where the peer's packets come from rather than where its SDP said, latching on
// the first packet; after that only the latched source is accepted, unless it has
// been silent for `relatchAfterMs` (the NAT rebinding a port).
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { AudioSource } from './audio-source.ts';
import { SequenceSource, SilenceSource } from './audio-source.ts';
import { DtmfDetector } from './dtmf-detector.ts';
import { MediaStateError } from './errors.ts';
import { decodeG711, encodeG711, FRAME_SAMPLES, staticPayloadType, transcodeG711InPlace, type CodecName } from './g711.ts';
import type { MediaClock } from './media-clock.ts';
import type { PortPool, SocketPair } from './port-pool.ts';
import { parseRtcp, type RtcpPacket } from './rtcp.ts';
import { RtcpReporter, type RemoteReport } from './rtcp-reporter.ts';
import { createRtpView, looksLikeRtcp, parseRtpInto, RTP_HEADER_BYTES, writeRtpFields, writeRtpHeader, type RtpView } from './rtp-packet.ts';
import { RtpReceiveStats } from './rtp-stats.ts';
import type { Direction, NegotiatedMedia } from './sdp.ts';
import {
  digitToEvent,
  readTelephoneEvent,
  TelephoneEventReceiver,
  TelephoneEventSender,
  writeTelephoneEvent,
  TELEPHONE_EVENT_BYTES,
  type DigitEvent,
  type EventPacket,
} from './telephone-event.ts';
import { dtmfTone } from './tone-generator.ts';

export interface RtpEndpoint {
  address: string;
  port: number;
  /** Default port + 1. */
  rtcpPort?: number;
}

export interface RtpSessionOptions {
  ports: PortPool;
  clock: MediaClock;
  codec?: CodecName;
  /** Default: the codec's static payload type. */
  payloadType?: number;
  /** Negotiated RFC 4733 payload type; without it digits are sent and detected in-band. */
  telephoneEventPt?: number;
  remote?: RtpEndpoint;
  /** Our direction (from SDP negotiation). */
  direction?: Direction;
  /** Symmetric RTP: send to where the peer's packets come from (default true). */
  latching?: boolean;
  /** A latched source silent this long may be replaced by a new one (default 1000 ms). */
  relatchAfterMs?: number;
  /** Run the Goertzel DTMF detector on received audio (legs without RFC 4733). */
  inbandDtmf?: boolean;
  /** Average RTCP report interval (RFC 3550 §6.2 minimum: 5 s). */
  rtcpIntervalMs?: number;
  /** Emit 'timeout' when no RTP arrived for this long while receiving (0: never). */
  mediaTimeoutMs?: number;
  cname?: string;
  logger?: Logger;
}

/** Counters and the RFC 3550 receive figures of one session. */
export interface RtpSessionStats {
  localPort: number;
  remote: { address: string; port: number } | undefined;
  latched: boolean;
  ssrc: number;
  packetsSent: number;
  octetsSent: number;
  packetsReceived: number;
  octetsReceived: number;
  /** RFC 3550 A.3 cumulative loss of the current source. */
  packetsLost: number;
  /** RFC 3550 A.8 interarrival jitter of the current source, ms. */
  jitterMs: number;
  malformed: number;
  /** Packets from a source other than the latched one, dropped. */
  foreign: number;
  /** Forwarded packets dropped because local audio or digits had the stream. */
  forwardDropped: number;
  /** What the peer last reported about our stream (RTCP), if anything. */
  remoteReport: RemoteReport | undefined;
}

/**
 * Receives every RTP packet (audio and telephone-event) for forwarding; owns the
 * buffer. `receivedAt` is the arrival time (performance.now()) the session read
 * once for the packet, so forwarding needs no second clock read.
 */
export type PacketSink = (packet: Buffer, view: RtpView, from: RtpSession, receivedAt: number) => void;

export interface RtpSessionEvents {
  digit: [DigitEvent];
  /** Decoded received audio; only produced while someone listens. Valid during the call only. */
  audio: [Int16Array, { timestamp: number; sequenceNumber: number }];
  latched: [{ address: string; port: number }];
  timeout: [];
  rtcp: [RtcpPacket[]];
  /** The session released its ports (after stop()). */
  stopped: [];
}

export type PlaybackOutcome = 'ended' | 'replaced' | 'stopped';

interface QueuedDigit {
  digit: string;
  durationMs: number;
  volume: number;
  gapMs: number;
  done: () => void;
}

function sends(d: Direction): boolean {
  return d === 'sendrecv' || d === 'sendonly';
}

function receives(d: Direction): boolean {
  return d === 'sendrecv' || d === 'recvonly';
}

export class RtpSession extends EventEmitter<RtpSessionEvents> {
  readonly options: RtpSessionOptions;
  readonly latching: boolean;
  readonly relatchAfterMs: number;
  #codec: CodecName;
  #payloadType: number;
  #tePt: number | undefined;
  #direction: Direction;
  #pair: SocketPair | undefined;
  #running = false;
  #unsubscribeClock: (() => void) | undefined;

  // Outgoing timeline.
  readonly #ssrc: number;
  #seq: number;
  #lastTs: number;
  #lastSentAt = 0;
  #haveSent = false;
  #mode: 'none' | 'local' | 'forward' = 'none';
  #localTsBase = 0;
  #forwardSsrc = -1;
  #forwardDelta = 0;
  #needMarker = true;
  #sentSinceReport = false;

  // Where we send: what SDP said (#signalled) and what latching learnt (#remote*).
  #signalled: { address: string; port: number } | undefined;
  #remoteAddress: string | undefined;
  #remotePort = 0;
  #remoteRtcpAddress: string | undefined;
  #remoteRtcpPort = 0;
  #latched = false;
  #lastFromRemoteAt = 0;
  #lastRtpAt = 0;
  #timedOut = false;

  // Local audio.
  #source: AudioSource | undefined;
  #sourceDone: ((outcome: PlaybackOutcome) => void) | undefined;
  #digitSource: AudioSource | undefined;
  readonly #digits: QueuedDigit[] = [];
  #currentDigit: QueuedDigit | undefined;
  #gapTicks = 0;
  readonly #eventSender = new TelephoneEventSender(FRAME_SAMPLES);
  readonly #frame = new Int16Array(FRAME_SAMPLES);

  // Receiving.
  readonly #view: RtpView = createRtpView();
  readonly #stats = new RtpReceiveStats(8000);
  readonly #eventReceiver: TelephoneEventReceiver;
  #detector: DtmfDetector | undefined;
  #pcm = new Int16Array(FRAME_SAMPLES * 4);
  #sink: PacketSink | undefined;
  #rtcp: RtcpReporter | undefined;

  #packetsSent = 0;
  #octetsSent = 0;
  #packetsReceived = 0;
  #octetsReceived = 0;
  #malformed = 0;
  #foreign = 0;
  #forwardDropped = 0;

  constructor(options: RtpSessionOptions) {
    super();
    this.options = options;
    this.latching = options.latching ?? true;
    this.relatchAfterMs = options.relatchAfterMs ?? 1000;
    this.#codec = options.codec ?? 'PCMU';
    this.#payloadType = options.payloadType ?? staticPayloadType[this.#codec];
    this.#tePt = options.telephoneEventPt;
    this.#direction = options.direction ?? 'sendrecv';
    // RFC 3550 §5.1: random initial SSRC, sequence number and timestamp.
    this.#ssrc = randomInt(1, 2 ** 32 - 1);
    this.#seq = randomInt(0, 0x10000);
    this.#lastTs = randomInt(0, 2 ** 32 - 1);
    this.#eventReceiver = new TelephoneEventReceiver((e) => this.emit('digit', e));
  }

  get running(): boolean {
    return this.#running;
  }

  /** Our RTP port (RTCP is this + 1). */
  get localPort(): number {
    if (!this.#pair) throw new MediaStateError('RTP session not started');
    return this.#pair.port;
  }

  get ssrc(): number {
    return this.#ssrc;
  }

  get codec(): CodecName {
    return this.#codec;
  }

  get payloadType(): number {
    return this.#payloadType;
  }

  get telephoneEventPt(): number | undefined {
    return this.#tePt;
  }

  get direction(): Direction {
    return this.#direction;
  }

  /** Where we currently send RTP, if anywhere. */
  get remote(): { address: string; port: number } | undefined {
    return this.#remoteAddress === undefined ? undefined : { address: this.#remoteAddress, port: this.#remotePort };
  }

  async start(): Promise<void> {
    if (this.#running) return;
    const pair = await this.options.ports.allocate();
    this.#pair = pair;
    this.#running = true;
    pair.rtp.on('message', this.#onRtp);
    pair.rtcp.on('message', this.#onRtcp);
    pair.rtp.on('error', this.#onSocketError);
    pair.rtcp.on('error', this.#onSocketError);
    if (this.options.remote) this.setRemote(this.options.remote);
    if (this.options.inbandDtmf) this.setInbandDtmf(true);
    this.#lastRtpAt = performance.now();
    this.#rtcp = new RtcpReporter(
      this.#ssrc,
      this.options.cname ?? `branchline@${pair.rtp.address().address}`,
      (this.options.rtcpIntervalMs ?? 5000) / this.options.clock.periodMs,
    );
    this.#rtcp.reset();
    this.#unsubscribeClock = this.options.clock.add(this.#onTick);
  }

  /** Sends RTCP BYE, releases the ports, ends playback. Safe to call twice. */
  async stop(reason = 'call ended'): Promise<void> {
    if (!this.#running) return;
    if (this.#remoteAddress !== undefined) this.#sendRtcp(reason);
    this.#running = false;
    this.#unsubscribeClock?.();
    this.#unsubscribeClock = undefined;
    this.#detector?.flush();
    this.#endSource('stopped');
    this.#digitSource = undefined;
    this.#eventSender.cancel();
    for (const d of this.#digits.splice(0)) d.done();
    this.#currentDigit?.done();
    this.#currentDigit = undefined;
    if (this.#pair) this.options.ports.release(this.#pair);
    this.#pair = undefined;
    this.#sink = undefined;
    this.emit('stopped');
  }

  /** Where the peer said to send (SDP). Resets latching so the new peer can be learnt. */
  setRemote(remote: RtpEndpoint): void {
    this.#signalled = { address: remote.address, port: remote.port };
    this.#remoteAddress = remote.address;
    this.#remotePort = remote.port;
    this.#remoteRtcpAddress = remote.address;
    this.#remoteRtcpPort = remote.rtcpPort ?? remote.port + 1;
    this.#latched = false;
    this.#timedOut = false;
    this.#lastRtpAt = performance.now();
  }

  /**
   * Codec and payload types after a (re-)negotiation. `telephoneEventPt`
   * undefined means the peer has no RFC 4733: digits then go in-band.
   */
  setCodec(codec: CodecName, telephoneEventPt: number | undefined, payloadType = staticPayloadType[codec]): void {
    this.#codec = codec;
    this.#payloadType = payloadType;
    this.#tePt = telephoneEventPt;
  }

  /**
   * Applies the outcome of an SDP offer/answer (sdp.ts) in one step: where to
   * send, codec, payload types, direction. A changed remote address re-arms
   * latching; an unchanged one (a hold re-INVITE) keeps what was latched.
   */
  applyNegotiation(media: NegotiatedMedia): void {
    this.setCodec(media.codec, media.telephoneEventPt, media.payloadType);
    this.setDirection(media.direction);
    // c=0.0.0.0 (old-style hold) is not an address to send to or latch against.
    if (media.remoteAddress === '0.0.0.0' || media.remoteAddress === '::') return;
    const current = this.#signalled;
    if (!current || current.address !== media.remoteAddress || current.port !== media.remotePort) {
      this.setRemote({ address: media.remoteAddress, port: media.remotePort, rtcpPort: media.remoteRtcpPort });
    }
  }

  /** Hold/unhold: what we may send and want to receive. */
  setDirection(direction: Direction): void {
    // Sending that resumes after a hold starts a new talkspurt (RFC 3551 §4.1).
    if (!sends(this.#direction) && sends(direction)) this.#needMarker = true;
    this.#direction = direction;
    this.#timedOut = false;
    this.#lastRtpAt = performance.now();
  }

  setInbandDtmf(on: boolean): void {
    this.#detector = on ? new DtmfDetector((e) => this.emit('digit', e)) : undefined;
  }

  /** A relay's receiver for every packet; it may rewrite the buffer. */
  setPacketSink(sink: PacketSink | undefined): void {
    this.#sink = sink;
  }

  /**
   * Plays a source on the 20 ms clock, replacing the one playing. Resolves when
   * it ends ('ended'), another replaces it, or the session stops.
   */
  play(source: AudioSource): Promise<PlaybackOutcome> {
    if (!this.#running) return Promise.resolve('stopped');
    this.#endSource('replaced');
    this.#source = source;
    return new Promise((resolve) => {
      this.#sourceDone = resolve;
    });
  }

  /** Stops local playback; forwarded audio (relay) resumes. */
  stopPlayback(): void {
    this.#endSource('replaced');
  }

  get playing(): boolean {
    return this.#source !== undefined;
  }

  /**
   * Sends digits: RFC 4733 events when negotiated, in-band tones otherwise.
   * Resolves when the last one has been sent.
   */
  sendDigits(digits: string, options: { durationMs?: number; gapMs?: number; volume?: number } = {}): Promise<void> {
    for (const d of digits) digitToEvent(d); // throws on a bad digit before anything is queued
    if (!this.#running) return Promise.resolve();
    const all = [...digits].map(
      (digit) =>
        new Promise<void>((done) => {
          this.#digits.push({
            digit,
            durationMs: options.durationMs ?? 100,
            gapMs: options.gapMs ?? 60,
            volume: options.volume ?? 10,
            done,
          });
        }),
    );
    return Promise.all(all).then(() => undefined);
  }

  stats(): RtpSessionStats {
    return {
      localPort: this.#pair?.port ?? 0,
      remote: this.remote,
      latched: this.#latched,
      ssrc: this.#ssrc,
      packetsSent: this.#packetsSent,
      octetsSent: this.#octetsSent,
      packetsReceived: this.#packetsReceived,
      octetsReceived: this.#octetsReceived,
      packetsLost: Math.max(0, this.#stats.lost),
      jitterMs: this.#stats.jitterMs,
      malformed: this.#malformed,
      foreign: this.#foreign,
      forwardDropped: this.#forwardDropped,
      remoteReport: this.#rtcp?.remoteReport,
    };
  }

  // ---- sending ---------------------------------------------------------------

  /** Timestamp for a packet sent at `now` that continues the outgoing timeline. */
  #continueTimeline(now: number): number {
    if (!this.#haveSent) return this.#lastTs;
    const frames = Math.max(1, Math.round((now - this.#lastSentAt) / 20));
    return (this.#lastTs + frames * FRAME_SAMPLES) >>> 0;
  }

  #sendRaw(buf: Uint8Array, length: number): void {
    const pair = this.#pair!;
    // A whole buffer goes without offset/length: given those, dgram wraps the
    // bytes in a new Buffer view per send (one object per packet on the relay path).
    if (length === buf.length) pair.rtp.send(buf, this.#remotePort, this.#remoteAddress);
    else pair.rtp.send(buf, 0, length, this.#remotePort, this.#remoteAddress);
    this.#packetsSent++;
    this.#octetsSent += length - RTP_HEADER_BYTES;
    this.#sentSinceReport = true;
  }

  #canSend(): boolean {
    return this.#running && this.#remoteAddress !== undefined && sends(this.#direction);
  }

  /**
   * Forwards a packet received on another session (the relay path): rewrites its
   * header in place into our timeline and, when codecs differ, its payload;
   * dropped while we play local audio or digits. No allocation. `now` is the
   * packet's arrival time when the caller has it (a relay's sink does).
   */
  forward(packet: Buffer, view: RtpView, fromCodec: CodecName, isEvent: boolean, now = performance.now()): void {
    if (!this.#canSend()) return;
    if (this.#source || this.#digitSource || this.#eventSender.active || this.#currentDigit) {
      this.#forwardDropped++;
      return;
    }
    if (isEvent && this.#tePt === undefined) return; // the relay converts these to tones
    if (this.#mode !== 'forward' || view.ssrc !== this.#forwardSsrc) {
      this.#forwardDelta = (this.#continueTimeline(now) - view.timestamp) >>> 0;
      this.#forwardSsrc = view.ssrc;
      this.#mode = 'forward';
      this.#needMarker = true;
    }
    const ts = (view.timestamp + this.#forwardDelta) >>> 0;
    const marker = view.marker || this.#needMarker;
    this.#needMarker = false;
    this.#seq = (this.#seq + 1) & 0xffff;
    writeRtpFields(packet, marker, isEvent ? this.#tePt! : this.#payloadType, this.#seq, ts, this.#ssrc);
    if (!isEvent) transcodeG711InPlace(fromCodec, this.#codec, packet, view.payloadOffset, view.payloadLength);
    this.#sendRaw(packet, packet.length);
    if (!isEvent) {
      this.#lastTs = ts;
      this.#lastSentAt = now;
      this.#haveSent = true;
    }
  }

  /** Sends the frame in #frame, encoded, as local audio for clock tick `tick`. */
  #sendLocalFrame(tick: number, now: number): void {
    if (this.#mode !== 'local') this.#anchorLocal(tick, now);
    const ts = (this.#localTsBase + tick * FRAME_SAMPLES) >>> 0;
    // A fresh buffer per local frame: dgram may still hold the previous one, and
    // local audio is 50 packets/s per session (the relay path allocates nothing).
    const buf = Buffer.allocUnsafe(RTP_HEADER_BYTES + FRAME_SAMPLES);
    encodeG711(this.#codec, this.#frame, buf, RTP_HEADER_BYTES);
    this.#seq = (this.#seq + 1) & 0xffff;
    writeRtpHeader(buf, this.#needMarker, this.#payloadType, this.#seq, ts, this.#ssrc);
    this.#needMarker = false;
    this.#sendRaw(buf, buf.length);
    this.#lastTs = ts;
    this.#lastSentAt = now;
    this.#haveSent = true;
  }

  #anchorLocal(tick: number, now: number): void {
    this.#localTsBase = (this.#continueTimeline(now) - tick * FRAME_SAMPLES) >>> 0;
    this.#mode = 'local';
    this.#needMarker = true;
  }

  #sendEvent(p: EventPacket): void {
    const buf = Buffer.allocUnsafe(RTP_HEADER_BYTES + TELEPHONE_EVENT_BYTES);
    this.#seq = (this.#seq + 1) & 0xffff;
    writeRtpHeader(buf, p.marker, this.#tePt!, this.#seq, p.timestamp, this.#ssrc);
    writeTelephoneEvent(buf, RTP_HEADER_BYTES, p.payload);
    this.#sendRaw(buf, buf.length);
  }

  #startNextDigit(tick: number, now: number): void {
    const d = this.#digits.shift();
    if (!d) return;
    this.#currentDigit = d;
    if (this.#tePt !== undefined) {
      // The event's timestamp is the sampling instant it starts at: this tick's
      // place on our timeline (RFC 4733 §2.5.1.1).
      if (this.#mode !== 'local') this.#anchorLocal(tick, now);
      const ts = (this.#localTsBase + tick * FRAME_SAMPLES) >>> 0;
      this.#eventSender.begin(digitToEvent(d.digit), (d.durationMs * 8000) / 1000, d.volume, ts);
      this.#lastTs = ts;
      this.#lastSentAt = now;
      this.#haveSent = true;
    } else {
      // In-band: the tone, then silence so a detector sees the key go up.
      this.#digitSource = new SequenceSource([dtmfTone(d.digit, d.durationMs, -d.volume), new SilenceSource(d.gapMs)]);
    }
  }

  #finishDigit(): void {
    const d = this.#currentDigit;
    if (!d) return;
    this.#currentDigit = undefined;
    if (this.#tePt !== undefined) this.#gapTicks = Math.round(d.gapMs / 20);
    d.done();
  }

  #endSource(outcome: PlaybackOutcome): void {
    const done = this.#sourceDone;
    this.#source = undefined;
    this.#sourceDone = undefined;
    done?.(outcome);
  }

  /** Fills #frame with the next frame of local audio, if there is any. */
  #readLocal(): boolean {
    if (this.#digitSource) {
      if (this.#digitSource.read(this.#frame)) return true;
      this.#digitSource = undefined;
      this.#finishDigit();
    }
    if (this.#source) {
      if (this.#source.read(this.#frame)) return true;
      this.#endSource('ended');
      // The next forwarded packet re-anchors the timeline.
      if (this.#mode === 'local') this.#mode = 'none';
    }
    return false;
  }

  readonly #onTick = (tick: number, due: number): void => {
    if (!this.#running) return;
    // The tick's due time stands for "now": timeouts need no better, and it
    // spares a clock read per session per tick (400 sessions for 200 calls).
    this.#eventReceiver.poll(due);
    this.#housekeeping(due);
    const canSend = this.#canSend();
    // Digits first: an RFC 4733 event or an in-band tone holds the stream.
    if (this.#gapTicks > 0) this.#gapTicks--;
    else if (!this.#currentDigit && this.#digits.length > 0) this.#startNextDigit(tick, due);
    if (this.#eventSender.active) {
      const p = this.#eventSender.next();
      if (p && canSend) this.#sendEvent(p);
      if (!this.#eventSender.active) this.#finishDigit();
      return;
    }
    // Sources advance on hold too, so a prompt keeps its place in time.
    if (this.#readLocal() && canSend) this.#sendLocalFrame(tick, due);
  };

  // ---- receiving -------------------------------------------------------------

  readonly #onRtp = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (!this.#running) return;
    const view = this.#view;
    if (parseRtpInto(msg, msg.length, view) !== undefined || looksLikeRtcp(msg, msg.length)) {
      this.#malformed++;
      return;
    }
    const now = performance.now();
    if (this.latching && (rinfo.port !== this.#remotePort || rinfo.address !== this.#remoteAddress)) {
      if (this.#latched && now - this.#lastFromRemoteAt < this.relatchAfterMs) {
        this.#foreign++;
        return;
      }
      this.#latch(rinfo.address, rinfo.port);
    } else if (this.latching && !this.#latched) {
      this.#latched = true;
    }
    this.#lastFromRemoteAt = now;
    this.#lastRtpAt = now;
    this.#timedOut = false;
    this.#packetsReceived++;
    this.#octetsReceived += view.payloadLength;
    if (!receives(this.#direction)) return;
    const isEvent = view.payloadType === this.#tePt && this.#tePt !== undefined;
    this.#stats.update(view.ssrc, view.sequenceNumber, view.timestamp, now, !isEvent);

    if (isEvent) {
      const event = readTelephoneEvent(msg, view.payloadOffset, view.payloadLength);
      if (event) this.#eventReceiver.push(view.timestamp, event, now);
      this.#sink?.(msg, view, this, now);
      return;
    }
    if (view.payloadType !== this.#payloadType) return; // comfort noise and the like: not negotiated
    // Decode before the sink: a relay may transcode the buffer in place.
    if (this.#detector || this.listenerCount('audio') > 0) {
      if (this.#pcm.length < view.payloadLength) this.#pcm = new Int16Array(view.payloadLength);
      const n = decodeG711(this.#codec, msg, this.#pcm, view.payloadOffset, view.payloadLength);
      this.#detector?.push(this.#pcm, n);
      if (this.listenerCount('audio') > 0) {
        this.emit('audio', this.#pcm.subarray(0, n), { timestamp: view.timestamp, sequenceNumber: view.sequenceNumber });
      }
    }
    this.#sink?.(msg, view, this, now);
  };

  #latch(address: string, port: number): void {
    const changed = address !== this.#remoteAddress || port !== this.#remotePort;
    this.#remoteAddress = address;
    this.#remotePort = port;
    this.#latched = true;
    if (changed) {
      // RTCP follows RTP's NAT binding guess until RTCP itself arrives.
      this.#remoteRtcpAddress = address;
      this.#remoteRtcpPort = port + 1;
      this.options.logger?.debug({ address, port, localPort: this.#pair?.port }, 'rtp latched');
      this.emit('latched', { address, port });
    }
  }

  readonly #onRtcp = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (!this.#running) return;
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(msg);
    } catch {
      this.#malformed++;
      return;
    }
    if (this.latching && this.#latched) {
      // Symmetric RTCP: answer where the peer's reports come from.
      this.#remoteRtcpAddress = rinfo.address;
      this.#remoteRtcpPort = rinfo.port;
    }
    this.#rtcp?.receive(packets, performance.now());
    this.emit('rtcp', packets);
  };

  readonly #onSocketError = (err: Error): void => {
    // A send to an unreachable port surfaces here (ICMP); the call goes on.
    this.options.logger?.debug({ err, localPort: this.#pair?.port }, 'rtp socket error');
  };

  // ---- RTCP and timers -------------------------------------------------------

  #housekeeping(now: number): void {
    if (this.#rtcp?.tick() && this.#remoteAddress !== undefined) this.#sendRtcp();
    const timeout = this.options.mediaTimeoutMs ?? 0;
    if (
      timeout > 0 &&
      !this.#timedOut &&
      receives(this.#direction) &&
      this.#remoteAddress !== undefined &&
      now - this.#lastRtpAt > timeout
    ) {
      this.#timedOut = true;
      this.emit('timeout');
    }
  }

  #sendRtcp(byeReason?: string): void {
    const pair = this.#pair;
    if (!pair || !this.#rtcp || this.#remoteRtcpAddress === undefined) return;
    const now = performance.now();
    const sender = this.#sentSinceReport
      ? { rtpTimestamp: this.#continueTimeline(now), packetCount: this.#packetsSent, octetCount: this.#octetsSent }
      : undefined;
    this.#sentSinceReport = false;
    const packet = this.#rtcp.build(this.#stats, sender, now, byeReason);
    pair.rtcp.send(packet, 0, packet.length, this.#remoteRtcpPort, this.#remoteRtcpAddress);
  }
}
