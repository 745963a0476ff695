// The simulated line card: T1 or E1 spans (PRI or CAS) or N FXO ports, with its
// simulated PSTN (`pstn`) behind it. It implements LineCard exactly as a hardware
// driver would — channel state machine, caller ID, causes, alarms, 20 ms frames —
// so the agent and the contract suite cannot tell it from real hardware, and tests
// drive the far end through `pstn`.

import { EventEmitter } from 'node:events';
import { Q850, isQ850Cause, type Q850Cause } from '../q850.ts';
import {
  DTMF_DIGITS,
  FRAME_BYTES,
  LineCardError,
  channelKey,
  type AlarmKind,
  type CallerId,
  type ChannelInfo,
  type ChannelRef,
  type ChannelState,
  type DialRequest,
  type FrameListener,
  type LineCard,
  type LineCardEvents,
  type SpanInfo,
} from '../types.ts';
import { spanProfile, type SpanProfile } from './profiles.ts';
import { SimControlServer } from './control-server.ts';
import { SimPstn, type SubscriberSpec } from './pstn.ts';
import { NetworkRefusal, type CardSide, type NetworkSide } from './wire.ts';

export interface SimCardOptions {
  name: string;
  type: 't1' | 'e1' | 'fxo';
  /** T1/E1 spans (default 1). */
  spans?: number;
  signalling?: 'pri' | 'cas';
  /** FXO ports (default 4). */
  ports?: number;
  numbers?: string[];
  /** Real signalling times × this; tests use small values (default 1). */
  timeScale?: number;
  /** Serve the PSTN's control socket here while started (host:port on loopback, or a socket path). */
  control?: string;
  subscribers?: SubscriberSpec[];
}

interface SimChannel {
  readonly ref: ChannelRef;
  state: ChannelState;
  direction: 'inbound' | 'outbound' | undefined;
  /** A call is on the channel whose `release` has not been emitted yet. */
  live: boolean;
  readonly listeners: Set<FrameListener>;
  /** release() calls waiting for the channel to be idle again. */
  readonly waiting: (() => void)[];
}

const DIALABLE = /^\+?[0-9*#]{1,32}$/;

export class SimCard extends EventEmitter<LineCardEvents> implements LineCard {
  readonly name: string;
  readonly driver = 'sim' as const;
  readonly pstn: SimPstn;
  readonly #profiles: SpanProfile[];
  readonly #numbers: (string | undefined)[];
  readonly #channels: SimChannel[][];
  readonly #alarms: Set<AlarmKind>[];
  readonly #network: NetworkSide;
  readonly #controlAddress: string | undefined;
  #control: SimControlServer | undefined;
  #started = false;

  constructor(options: SimCardOptions) {
    super();
    this.name = options.name;
    const count = options.type === 'fxo' ? (options.ports ?? 4) : (options.spans ?? 1);
    const profile = spanProfile(options.type, options.signalling ?? 'pri');
    this.#profiles = Array.from({ length: count }, () => profile);
    this.#numbers = Array.from({ length: count }, (_, i) => options.numbers?.[i]);
    this.#alarms = this.#profiles.map(() => new Set<AlarmKind>());
    this.#channels = this.#profiles.map((p, s) =>
      Array.from({ length: p.channels }, (_, c) => ({
        ref: { span: s + 1, channel: c + 1 },
        state: 'idle' as ChannelState,
        direction: undefined,
        live: false,
        listeners: new Set<FrameListener>(),
        waiting: [],
      })),
    );
    this.pstn = new SimPstn({
      spans: this.#profiles,
      numbers: this.#numbers,
      ...(options.timeScale !== undefined ? { timeScale: options.timeScale } : {}),
      ...(options.subscribers ? { subscribers: options.subscribers } : {}),
    });
    this.#network = this.pstn.attach(this.#cardSide());
    this.#controlAddress = options.control;
  }

  /** Where the control socket listens once started (the bound port when 0 was asked). */
  get controlAddress(): string | undefined {
    return this.#control?.address;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    if (this.#controlAddress !== undefined) {
      const control = new SimControlServer({ card: this.name, pstn: this.pstn, address: this.#controlAddress, channels: () => this.channels() });
      try {
        await control.start();
      } catch (err) {
        throw new LineCardError('ECONFIG', this.name, `cannot serve the control socket on ${this.#controlAddress}: ${(err as Error).message}`, { cause: err });
      }
      this.#control = control;
    }
    this.#started = true;
    this.pstn.start();
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    for (const ch of this.#all()) {
      if (ch.live) {
        this.#network.release(ch.ref, Q850.NORMAL_CLEARING);
        this.#endCall(ch, Q850.NORMAL_CLEARING, 'local', 'idle');
      } else if (ch.state !== 'out-of-service') {
        this.#setState(ch, 'idle');
      }
    }
    this.#started = false;
    this.pstn.stop();
    await this.#control?.stop();
    this.#control = undefined;
    for (const ch of this.#all()) this.#wake(ch);
  }

  spans(): SpanInfo[] {
    return this.#profiles.map((p, i) => {
      const info: SpanInfo = {
        span: i + 1,
        kind: p.kind,
        signalling: p.signalling,
        law: p.law,
        channels: p.channels,
        audio: true,
        alarms: [...this.#alarms[i]!],
      };
      const number = this.#numbers[i];
      if (number !== undefined) info.number = number;
      return info;
    });
  }

  channels(): ChannelInfo[] {
    return this.#all().map((ch) => {
      const info: ChannelInfo = { span: ch.ref.span, channel: ch.ref.channel, state: ch.state };
      if (ch.direction) info.direction = ch.direction;
      return info;
    });
  }

  channelState(channel: ChannelRef): ChannelState {
    return this.#channel(channel).state;
  }

  async dial(channel: ChannelRef, request: DialRequest): Promise<void> {
    const ch = this.#channel(channel);
    this.#requireStarted();
    if (typeof request?.number !== 'string' || !DIALABLE.test(request.number)) {
      throw new LineCardError('EARGUMENT', this.name, `cannot dial ${JSON.stringify(request?.number)}: expected 1-32 of 0-9 * # (optionally after +)`);
    }
    if (ch.state === 'out-of-service') throw new LineCardError('EOUTOFSERVICE', this.name, `channel ${channelKey(channel)} is out of service`);
    if (ch.state !== 'idle') throw new LineCardError('EBUSY', this.name, `channel ${channelKey(channel)} is ${ch.state}, not idle`);
    ch.direction = 'outbound';
    ch.live = true;
    this.#setState(ch, 'seized');
    try {
      await this.#network.dial(channel, request.number, request.callerId);
    } catch (err) {
      if (!(err instanceof NetworkRefusal)) throw err;
      if (ch.live) this.#endCall(ch, err.q850, 'network', this.#alarms[channel.span - 1]!.size > 0 ? 'out-of-service' : 'idle');
      throw new LineCardError('ERELEASED', this.name, `dialling ${request.number} on ${channelKey(channel)} failed: ${err.message}`);
    }
    if (!ch.live || ch.direction !== 'outbound') {
      throw new LineCardError('ERELEASED', this.name, `the call to ${request.number} on ${channelKey(channel)} ended while dialling`);
    }
  }

  async answer(channel: ChannelRef): Promise<void> {
    const ch = this.#channel(channel);
    this.#requireStarted();
    if (ch.state !== 'alerting' || ch.direction !== 'inbound') {
      throw new LineCardError('EBUSY', this.name, `channel ${channelKey(channel)} has no inbound call to answer (it is ${ch.state})`);
    }
    this.#network.answer(channel);
    this.#setState(ch, 'connected', () => this.emit('answer', { channel: ch.ref }));
  }

  async release(channel: ChannelRef, cause: Q850Cause = Q850.NORMAL_CLEARING): Promise<void> {
    const ch = this.#channel(channel);
    if (!isQ850Cause(cause)) throw new LineCardError('EARGUMENT', this.name, `cause ${String(cause)} is not a Q.850 cause (1-127)`);
    if (ch.state === 'idle' || ch.state === 'out-of-service') return;
    if (ch.live) {
      this.#network.release(channel, cause);
      this.#endCall(ch, cause, 'local', 'releasing');
    }
    await new Promise<void>((resolve) => ch.waiting.push(resolve));
  }

  async sendDigits(channel: ChannelRef, digits: string): Promise<void> {
    const ch = this.#channel(channel);
    if (typeof digits !== 'string' || !DTMF_DIGITS.test(digits)) {
      throw new LineCardError('EARGUMENT', this.name, `cannot send digits ${JSON.stringify(digits)}: expected 0-9 * # A-D`);
    }
    if (ch.state !== 'connected') throw new LineCardError('ENOTCONNECTED', this.name, `channel ${channelKey(channel)} is ${ch.state}, not connected`);
    this.#network.digits(channel, digits);
  }

  onFrame(channel: ChannelRef, listener: FrameListener): () => void {
    const ch = this.#channel(channel);
    ch.listeners.add(listener);
    return () => {
      ch.listeners.delete(listener);
    };
  }

  writeFrame(channel: ChannelRef, frame: Uint8Array): boolean {
    const ch = this.#channel(channel);
    if (!(frame instanceof Uint8Array) || frame.length !== FRAME_BYTES) {
      throw new LineCardError('EARGUMENT', this.name, `a frame is ${FRAME_BYTES} bytes (20 ms of G.711), got ${frame?.length}`);
    }
    if (ch.state !== 'connected') return false;
    this.#network.frame(channel, frame);
    return true;
  }

  // ---- the network's view of the card ----

  #cardSide(): CardSide {
    return {
      isIdle: (ref) => this.#started && this.#find(ref)?.state === 'idle',
      offer: (ref, callerId: CallerId, dialled) => {
        const ch = this.#find(ref);
        if (!ch || ch.state !== 'idle') return;
        ch.direction = 'inbound';
        ch.live = true;
        this.#setState(ch, 'alerting', () => this.emit('incoming', { channel: ch.ref, callerId, dialled }));
      },
      alerting: (ref) => {
        const ch = this.#find(ref);
        if (ch?.state === 'seized') this.#setState(ch, 'alerting', () => this.emit('alerting', { channel: ch.ref }));
      },
      answered: (ref) => {
        const ch = this.#find(ref);
        if (ch && ch.direction === 'outbound' && (ch.state === 'seized' || ch.state === 'alerting')) {
          this.#setState(ch, 'connected', () => this.emit('answer', { channel: ch.ref }));
        }
      },
      disconnected: (ref, cause, by) => {
        const ch = this.#find(ref);
        if (ch?.live) this.#endCall(ch, cause, by, 'releasing');
      },
      cleared: (ref) => {
        const ch = this.#find(ref);
        if (ch?.state === 'releasing') this.#setState(ch, 'idle');
      },
      frame: (ref, frame) => {
        const ch = this.#find(ref);
        if (ch?.state !== 'connected') return;
        for (const listener of ch.listeners) listener(frame);
      },
      digits: (ref, digits) => {
        const ch = this.#find(ref);
        if (ch?.state === 'connected') this.emit('digits', { channel: ch.ref, digits });
      },
      alarm: (span, alarm, active, detail) => this.#spanAlarm(span, alarm, active, detail),
    };
  }

  #spanAlarm(span: number, alarm: AlarmKind, active: boolean, detail: string): void {
    const alarms = this.#alarms[span - 1];
    const channels = this.#channels[span - 1];
    if (!alarms || !channels) return;
    if (active) {
      if (alarms.has(alarm)) return;
      alarms.add(alarm);
      this.emit('alarm', { span, alarm, detail });
      for (const ch of channels) {
        if (ch.live) this.#endCall(ch, Q850.NETWORK_OUT_OF_ORDER, 'network', 'out-of-service');
        else this.#setState(ch, 'out-of-service');
      }
    } else {
      if (!alarms.delete(alarm)) return;
      this.emit('alarm-cleared', { span, alarm, detail });
      if (alarms.size === 0) for (const ch of channels) this.#setState(ch, 'idle');
    }
  }

  // ---- internals ----

  /** The one place a call ends: exactly one `release`, right after the state it leaves the channel in. */
  #endCall(ch: SimChannel, cause: Q850Cause, by: 'local' | 'remote' | 'network', next: ChannelState): void {
    ch.live = false;
    this.#setState(ch, next, () => this.emit('release', { channel: ch.ref, cause, by }));
  }

  /**
   * Changes state, emits `state`, then `announce` emits the event that goes with it
   * (incoming, answer...). In that order a listener that acts at once (answers in
   * its `incoming` handler) still leaves every observer a consistent sequence.
   */
  #setState(ch: SimChannel, state: ChannelState, announce?: () => void): void {
    const previous = ch.state;
    if (previous === state) return;
    ch.state = state;
    if (state === 'idle' || state === 'out-of-service') ch.direction = undefined;
    this.emit('state', { channel: ch.ref, state, previous });
    announce?.();
    if (state === 'idle' || state === 'out-of-service') this.#wake(ch);
  }

  #wake(ch: SimChannel): void {
    for (const resolve of ch.waiting.splice(0)) resolve();
  }

  #requireStarted(): void {
    if (!this.#started) throw new LineCardError('ENOTSTARTED', this.name, 'the card is not started');
  }

  #find(ref: ChannelRef): SimChannel | undefined {
    return this.#channels[ref.span - 1]?.[ref.channel - 1];
  }

  #channel(ref: ChannelRef): SimChannel {
    const ch = ref && Number.isInteger(ref.span) && Number.isInteger(ref.channel) ? this.#find(ref) : undefined;
    if (!ch) throw new LineCardError('ENOCHANNEL', this.name, `no channel ${ref ? channelKey(ref) : String(ref)}`);
    return ch;
  }

  #all(): SimChannel[] {
    return this.#channels.flat();
  }
}
