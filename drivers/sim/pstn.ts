// The simulated PSTN behind a simulated card: the exchange end of every span. It
// offers calls to the card (a subscriber dialling a DID), routes the card's calls to
// subscribers that answer, ring, are busy or reject, carries audio both ways paced
// by one 20 ms clock, and raises the alarms a real span raises when its cable is
// pulled. Tests and the control socket drive it; the card only sees its line.

import { EventEmitter } from 'node:events';
import { MediaClock } from '../../agent/media/media-clock.ts';
import { ToneSource } from '../../agent/media/tone-generator.ts';
import { SilenceSource } from '../../agent/media/audio-source.ts';
import { Q850 } from '../q850.ts';
import type { AlarmKind, CallerId, ChannelRef, Presentation } from '../types.ts';
import { PstnCall, type PstnCallControl } from './pstn-call.ts';

export { PstnCall };
import { scaled, type SignallingTimings, type SpanProfile } from './profiles.ts';
import { NetworkRefusal, type CardSide, type NetworkSide } from './wire.ts';

export interface Subscriber {
  number: string;
  name?: string;
  /** answer: rings, then answers after answerAfterMs; ring: rings until someone calls answer() or hangs up; busy; reject. */
  behaviour: 'answer' | 'ring' | 'busy' | 'reject';
  answerAfterMs: number;
  /** What the subscriber sends once connected. */
  audio: 'echo' | 'tone' | 'silence';
}

export interface PlaceCallRequest {
  from?: string;
  name?: string;
  presentation?: Presentation;
  /** The DID; on an FXO card, the number of the port to ring. */
  to: string;
  /** Only this span (1-based). */
  span?: number;
}

export interface SimPstnOptions {
  spans: SpanProfile[];
  /** FXO: each span's own number (index 0 = span 1). */
  numbers?: (string | undefined)[];
  /** Real-world signalling times × this (default 1). */
  timeScale?: number;
  subscribers?: SubscriberSpec[];
}

/** A subscriber as given: everything but the number has a default. */
export type SubscriberSpec = Partial<Subscriber> & { number: string };

export interface PstnEvents {
  /** The card placed a call that reached the network (before the subscriber reacts). */
  call: [PstnCall];
  alarm: [{ span: number; alarm: AlarmKind; active: boolean }];
}

interface SpanState {
  profile: SpanProfile;
  timings: SignallingTimings;
  number: string | undefined;
  alarms: Set<AlarmKind>;
  calls: (PstnCall | undefined)[]; // index = channel - 1
  /** Channels the network has picked for an offer still in flight. */
  reserved: Set<number>;
}

const MESSAGE_MS = 2; // one signalling message across the line (PRI) in the sim

export class SimPstn extends EventEmitter<PstnEvents> implements PstnCallControl {
  readonly timeScale: number;
  readonly clock = new MediaClock();
  readonly #spans: SpanState[];
  readonly #subscribers = new Map<string, Subscriber>();
  readonly #connected = new Set<PstnCall>();
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Dials waiting out their signalling time; stop() wakes them so none hangs. */
  readonly #sleepers = new Set<() => void>();
  #card: CardSide | undefined;
  #removeTick: (() => void) | undefined;
  #running = false;

  constructor(options: SimPstnOptions) {
    super();
    this.timeScale = options.timeScale ?? 1;
    this.#spans = options.spans.map((profile, i) => ({
      profile,
      timings: scaled(profile.timings, this.timeScale),
      number: options.numbers?.[i],
      alarms: new Set(),
      calls: new Array<PstnCall | undefined>(profile.channels).fill(undefined),
      reserved: new Set(),
    }));
    for (const s of options.subscribers ?? []) this.addSubscriber(s);
  }

  /** Connects the card; returns what the card uses to reach the network. */
  attach(card: CardSide): NetworkSide {
    this.#card = card;
    return {
      dial: (ch, number, callerId) => this.#cardDials(ch, number, callerId),
      answer: (ch) => this.#cardAnswers(ch),
      release: (ch, cause) => this.#cardReleases(ch, cause),
      frame: (ch, frame) => {
        const call = this.#callOn(ch);
        if (call?.state === 'connected') call.received(frame);
      },
      digits: (ch, digits) => {
        const call = this.#callOn(ch);
        if (call?.state === 'connected') call.emit('digits', digits);
      },
    };
  }

  start(): void {
    this.#running = true;
    this.#removeTick ??= this.clock.add(() => this.#tick());
    this.clock.start();
  }

  stop(): void {
    this.#running = false;
    this.clock.stop();
    this.#removeTick?.();
    this.#removeTick = undefined;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const wake of [...this.#sleepers]) wake();
  }

  // ---- subscribers ----

  addSubscriber(subscriber: SubscriberSpec): Subscriber {
    const full: Subscriber = {
      number: subscriber.number,
      behaviour: subscriber.behaviour ?? 'answer',
      answerAfterMs: subscriber.answerAfterMs ?? 500,
      audio: subscriber.audio ?? 'echo',
      ...(subscriber.name !== undefined ? { name: subscriber.name } : {}),
    };
    this.#subscribers.set(full.number, full);
    return full;
  }

  removeSubscriber(number: string): boolean {
    return this.#subscribers.delete(number);
  }

  subscribers(): Subscriber[] {
    return [...this.#subscribers.values()];
  }

  calls(): PstnCall[] {
    return this.#spans.flatMap((s) => s.calls.filter((c): c is PstnCall => c !== undefined));
  }

  spanCount(): number {
    return this.#spans.length;
  }

  alarms(span: number): AlarmKind[] {
    return [...this.#span(span).alarms];
  }

  // ---- calls into the card ----

  /** A subscriber dials `to`. The returned call is released with cause 34 if no channel is free. */
  placeCall(request: PlaceCallRequest): PstnCall {
    const presentation = request.presentation ?? (request.from ? 'allowed' : 'unavailable');
    const from: CallerId = { presentation };
    if (request.from !== undefined) from.number = request.from;
    if (request.name !== undefined) from.name = request.name;
    const target = this.#pickChannel(request);
    const law = target ? this.#span(target.span).profile.law : (this.#spans[0]?.profile.law ?? 'PCMU');
    const call = new PstnCall(this, 'inbound', from, request.to, law);
    if (!target) {
      // FXO ports all have numbers and none is this one: the exchange has no such line.
      const unknown = this.#spans.every((s) => s.profile.kind === 'fxo' && s.number !== undefined && s.number !== request.to);
      this.#later(MESSAGE_MS, () => this.#end(call, unknown ? Q850.UNALLOCATED_NUMBER : Q850.NO_CIRCUIT_AVAILABLE, 'network'));
      return call;
    }
    const span = this.#span(target.span);
    span.reserved.add(target.channel);
    this.#later(span.timings.offerMs, () => {
      span.reserved.delete(target.channel);
      if (call.state === 'released') return;
      // Glare: the card may have seized the channel meanwhile; take another one.
      let channel: ChannelRef | undefined = target;
      if (!this.#free(channel)) channel = this.#pickChannel({ ...request, span: target.span });
      if (!channel || span.alarms.size > 0) {
        this.#end(call, span.alarms.size > 0 ? Q850.NETWORK_OUT_OF_ORDER : Q850.NO_CIRCUIT_AVAILABLE, 'network');
        return;
      }
      call.channel = channel;
      span.calls[channel.channel - 1] = call;
      call.state = 'alerting';
      call.emit('alerting');
      const shown: CallerId = { presentation: from.presentation };
      // Withheld caller ID reaches the card without the number (the network strips it).
      if (from.number !== undefined && from.presentation === 'allowed') shown.number = from.number;
      if (from.name !== undefined && from.presentation === 'allowed' && span.profile.deliversName) shown.name = from.name;
      this.#card?.offer(channel, shown, span.number ?? request.to);
    });
    return call;
  }

  // ---- alarms ----

  /** Pulls the span's cable: the card sees loss of signal (T1/E1) or no line voltage (FXO). */
  pullCable(span: number): void {
    const s = this.#span(span);
    this.raiseAlarm(span, s.profile.cableAlarm, 'cable pulled');
  }

  /** Plugs it back: the alarm clears after the span resynchronises. */
  plugCable(span: number): void {
    const s = this.#span(span);
    this.#later(s.timings.resyncMs, () => this.clearAlarm(span, s.profile.cableAlarm, 'cable plugged in'));
  }

  raiseAlarm(span: number, alarm: AlarmKind, detail = 'raised by the simulated PSTN'): void {
    const s = this.#span(span);
    if (s.alarms.has(alarm)) return;
    s.alarms.add(alarm);
    // The span is down: every call on it ends for the PSTN side too.
    for (const call of s.calls) if (call) this.#end(call, Q850.NETWORK_OUT_OF_ORDER, 'network');
    s.calls.fill(undefined);
    this.#card?.alarm(span, alarm, true, detail);
    this.emit('alarm', { span, alarm, active: true });
  }

  clearAlarm(span: number, alarm: AlarmKind, detail = 'cleared by the simulated PSTN'): void {
    const s = this.#span(span);
    if (!s.alarms.delete(alarm)) return;
    this.#card?.alarm(span, alarm, false, detail);
    this.emit('alarm', { span, alarm, active: false });
  }

  // ---- PstnCallControl (driven through PstnCall) ----

  answer(call: PstnCall): void {
    this.#later(MESSAGE_MS, () => {
      if (call.state === 'released' || call.state === 'connected' || !call.channel) return;
      this.#connect(call);
      this.#card?.answered(call.channel);
    });
  }

  hangup(call: PstnCall, cause: number): void {
    const channel = call.channel;
    this.#end(call, cause, 'pstn');
    if (!channel) return;
    this.#card?.disconnected(channel, cause, 'remote');
    this.#clearLater(channel);
  }

  sendFrame(call: PstnCall, frame: Uint8Array): void {
    if (call.state !== 'connected' || !call.channel) return;
    call.countSent();
    this.#card?.frame(call.channel, frame);
  }

  sendDigits(call: PstnCall, digits: string): void {
    const channel = call.channel;
    if (call.state !== 'connected' || !channel) return;
    const span = this.#span(channel.span);
    this.#later(Math.max(MESSAGE_MS, digits.length * span.timings.perDigitMs), () => {
      if (call.state === 'connected') this.#card?.digits(channel, digits);
    });
  }

  // ---- the card's side of the line ----

  async #cardDials(channel: ChannelRef, number: string, callerId: CallerId | undefined): Promise<void> {
    const span = this.#span(channel.span);
    if (span.alarms.size > 0) throw new NetworkRefusal(Q850.NETWORK_OUT_OF_ORDER, `span ${channel.span} is in alarm`);
    const from: CallerId = callerId ?? { presentation: 'unavailable' };
    const call = new PstnCall(this, 'outbound', from, number, span.profile.law);
    call.channel = channel;
    span.calls[channel.channel - 1] = call;
    // The number goes out after the network is ready (PRI: one SETUP; CAS/FXO: digit by digit).
    await this.#sleep(span.timings.seizeAckMs + number.length * span.timings.perDigitMs);
    if (call.state === 'released') throw new NetworkRefusal(call.releaseCause ?? Q850.NORMAL_CLEARING, `call ended while dialling ${number}`);
    this.emit('call', call);
    this.#route(call, span);
  }

  #route(call: PstnCall, span: SpanState): void {
    const channel = call.channel!;
    const subscriber = this.#subscribers.get(call.to);
    const refuse = (cause: number): void => {
      this.#later(MESSAGE_MS, () => {
        if (call.state === 'released') return;
        this.#end(call, cause, 'pstn');
        this.#card?.disconnected(channel, cause, 'remote');
        this.#clearLater(channel);
      });
    };
    if (!subscriber) return refuse(Q850.UNALLOCATED_NUMBER);
    if (subscriber.behaviour === 'busy') return refuse(Q850.USER_BUSY);
    if (subscriber.behaviour === 'reject') return refuse(Q850.CALL_REJECTED);
    this.#later(MESSAGE_MS, () => {
      if (call.state !== 'setup') return;
      call.state = 'alerting';
      call.emit('alerting');
      if (span.profile.reportsAlerting) this.#card?.alerting(channel);
      if (subscriber.behaviour === 'answer') this.#later(subscriber.answerAfterMs, () => call.answer());
    });
    call.once('answered', () => {
      if (subscriber.audio === 'echo') call.echo = true;
      else if (subscriber.audio === 'tone') call.playSource(new ToneSource({ frequencies: [1000], levelDbm0: -13, cadenceMs: [] }));
      else call.playSource(new SilenceSource());
    });
  }

  #cardAnswers(channel: ChannelRef): void {
    const call = this.#callOn(channel);
    if (!call || call.direction !== 'inbound' || call.state !== 'alerting') return;
    this.#later(MESSAGE_MS, () => {
      if (call.state === 'alerting') this.#connect(call);
    });
  }

  #cardReleases(channel: ChannelRef, cause: number): void {
    const call = this.#callOn(channel);
    if (call) this.#end(call, cause, 'card');
    this.#clearLater(channel);
  }

  // ---- internals ----

  #connect(call: PstnCall): void {
    call.state = 'connected';
    call.stats.connectedAt = Date.now();
    this.#connected.add(call);
    call.emit('answered');
  }

  #end(call: PstnCall, cause: number, by: 'card' | 'pstn' | 'network'): void {
    if (call.state === 'released') return;
    call.state = 'released';
    call.releaseCause = cause;
    call.stats.releasedAt = Date.now();
    call.stopPlayback();
    this.#connected.delete(call);
    if (call.channel) {
      const span = this.#span(call.channel.span);
      if (span.calls[call.channel.channel - 1] === call) span.calls[call.channel.channel - 1] = undefined;
    }
    call.emit('released', { cause, by });
  }

  #clearLater(channel: ChannelRef): void {
    const span = this.#span(channel.span);
    this.#later(span.timings.clearMs, () => {
      if (span.alarms.size === 0) this.#card?.cleared(channel);
    });
  }

  #tick(): void {
    for (const call of this.#connected) {
      const frame = call.nextFrame();
      if (frame) this.sendFrame(call, frame);
    }
  }

  #callOn(channel: ChannelRef): PstnCall | undefined {
    return this.#spans[channel.span - 1]?.calls[channel.channel - 1];
  }

  #free(channel: ChannelRef): boolean {
    const span = this.#spans[channel.span - 1];
    if (!span || span.alarms.size > 0) return false;
    return span.calls[channel.channel - 1] === undefined && (this.#card?.isIdle(channel) ?? false);
  }

  /** The network picks from the top of the span down, the card's trunks from the bottom up: fewer glares. */
  #pickChannel(request: PlaceCallRequest): ChannelRef | undefined {
    const candidates = this.#spans
      .map((s, i) => ({ s, span: i + 1 }))
      .filter(({ span }) => request.span === undefined || request.span === span)
      // FXO: the port whose number was dialled, else any port without a number.
      .filter(({ s }) => s.profile.kind !== 'fxo' || s.number === undefined || s.number === request.to)
      .sort((a, b) => Number(b.s.number === request.to) - Number(a.s.number === request.to));
    for (const { s, span } of candidates) {
      for (let ch = s.profile.channels; ch >= 1; ch--) {
        if (!s.reserved.has(ch) && this.#free({ span, channel: ch })) return { span, channel: ch };
      }
    }
    return undefined;
  }

  #span(span: number): SpanState {
    const s = this.#spans[span - 1];
    if (!s) throw new RangeError(`no span ${span} (the card has ${this.#spans.length})`);
    return s;
  }

  #later(ms: number, fn: () => void): void {
    if (!this.#running) return; // a stopped network does nothing more
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #sleep(ms: number): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#sleepers.delete(wake);
        resolve();
      };
      this.#sleepers.add(wake);
      this.#later(ms, wake);
    });
  }
}
