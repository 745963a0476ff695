// A serial AT-command line as a LineCard: one span of one channel, a voice modem on
// an analog line or a cellular module. It owns the device (opened with serialport,
// reopened with backoff when it disappears), the AT channel (one command in flight,
// unsolicited lines routed to the dialect) and the channel's state; the dialect
// (voice-modem.ts, cellular.ts) knows the commands.

import { EventEmitter } from 'node:events';
import { Q850, isQ850Cause, type Q850Cause } from '../q850.ts';
import {
  DTMF_DIGITS,
  FRAME_BYTES,
  LineCardError,
  channelKey,
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
import { AtChannel, AtCommandError } from './at-channel.ts';
import { CellularDialect } from './cellular.ts';
import { SerialDevice } from './device.ts';
import { causeForResult, type Dialect, type LineHooks } from './dialect.ts';
import { VoiceModemDialect } from './voice-modem.ts';

export interface SerialAtCardOptions {
  name: string;
  kind: 'voice-modem' | 'cellular';
  device: string;
  baud?: number;
  number?: string;
  commandTimeoutMs?: number;
  dialTimeoutMs?: number;
  /** First pause before reopening a lost device; doubles up to reopenMaxMs. */
  reopenMinMs?: number;
  reopenMaxMs?: number;
  /** An offered call whose rings stop this long was abandoned (default 8 s: US ring cadence is 6 s). */
  ringGapMs?: number;
}

const CHANNEL: ChannelRef = Object.freeze({ span: 1, channel: 1 });
const DIALABLE = /^\+?[0-9*#]{1,32}$/;

export class SerialAtCard extends EventEmitter<LineCardEvents> implements LineCard {
  readonly name: string;
  readonly driver = 'serial-at' as const;
  readonly options: Required<Omit<SerialAtCardOptions, 'number'>> & { number?: string };
  #device: SerialDevice | undefined;
  #at: AtChannel | undefined;
  #dialect: Dialect | undefined;
  #state: ChannelState = 'out-of-service';
  #direction: 'inbound' | 'outbound' | undefined;
  #live = false;
  #lost = true;
  #running = false;
  #reopenTimer: NodeJS.Timeout | undefined;
  #reopenDelay: number;
  #clearing: Promise<void> | undefined;
  readonly #listeners = new Set<FrameListener>();
  readonly #waiting: (() => void)[] = [];

  constructor(options: SerialAtCardOptions) {
    super();
    this.name = options.name;
    this.options = {
      baud: 115200,
      commandTimeoutMs: 5000,
      dialTimeoutMs: 60_000,
      reopenMinMs: 500,
      reopenMaxMs: 30_000,
      ringGapMs: 8000,
      ...options,
    };
    this.#reopenDelay = this.options.reopenMinMs;
  }

  /** Resolves once the device is open and set up, or once its absence is reported as a device-lost alarm. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const opened = await this.#open();
    if (!opened) {
      this.emit('alarm', { span: 1, alarm: 'device-lost', detail: `cannot open ${this.options.device}` });
      this.#scheduleReopen();
    }
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#reopenTimer);
    if (this.#live && !this.#lost) {
      this.#endCall(Q850.NORMAL_CLEARING, 'local', 'releasing');
      await this.#dialect?.hangup().catch(() => undefined);
    }
    this.#dialect?.reset();
    this.#at?.close('the card was stopped');
    await this.#device?.close();
    this.#device = undefined;
    if (this.#state !== 'out-of-service') this.#setState('out-of-service');
    this.#wake();
  }

  spans(): SpanInfo[] {
    const info: SpanInfo = {
      span: 1,
      kind: this.options.kind,
      signalling: 'at',
      law: 'PCMU',
      channels: 1,
      audio: this.options.kind === 'voice-modem',
      alarms: this.#lost ? ['device-lost'] : [],
    };
    if (this.options.number) info.number = this.options.number;
    return [info];
  }

  channels(): ChannelInfo[] {
    const info: ChannelInfo = { ...CHANNEL, state: this.#state };
    if (this.#direction) info.direction = this.#direction;
    return [info];
  }

  channelState(channel: ChannelRef): ChannelState {
    this.#check(channel);
    return this.#state;
  }

  async dial(channel: ChannelRef, request: DialRequest): Promise<void> {
    this.#check(channel);
    if (typeof request?.number !== 'string' || !DIALABLE.test(request.number)) {
      throw new LineCardError('EARGUMENT', this.name, `cannot dial ${JSON.stringify(request?.number)}: expected 1-32 of 0-9 * # (optionally after +)`);
    }
    if (!this.#running) throw new LineCardError('ENOTSTARTED', this.name, 'the card is not started');
    if (this.#state === 'out-of-service') throw new LineCardError('EOUTOFSERVICE', this.name, `${this.options.device} is not available`);
    if (this.#state !== 'idle') throw new LineCardError('EBUSY', this.name, `channel ${channelKey(channel)} is ${this.#state}, not idle`);
    this.#direction = 'outbound';
    this.#live = true;
    this.#setState('seized');
    try {
      await this.#dialect!.dial(request.number);
    } catch (err) {
      if (this.#live) {
        // A refusal the device answered (BUSY, NO CARRIER...) is the far end's; anything else the line's.
        if (err instanceof AtCommandError) this.#endCall(causeForResult(err.final), 'remote', 'releasing');
        else this.#endCall(Q850.TEMPORARY_FAILURE, 'network', 'releasing');
        void this.#clear();
      }
      throw err instanceof LineCardError ? err : new LineCardError('ERELEASED', this.name, `dialling ${request.number} failed: ${(err as Error).message}`, { cause: err });
    }
    if (!this.#live) throw new LineCardError('ERELEASED', this.name, `the call to ${request.number} ended while dialling`);
  }

  async answer(channel: ChannelRef): Promise<void> {
    this.#check(channel);
    if (this.#state !== 'alerting' || this.#direction !== 'inbound') {
      throw new LineCardError('EBUSY', this.name, `channel ${channelKey(channel)} has no inbound call to answer (it is ${this.#state})`);
    }
    try {
      await this.#dialect!.answer();
    } catch (err) {
      const refused = err instanceof AtCommandError; // NO CARRIER: the caller hung up as we answered
      if (this.#live) {
        if (refused) this.#endCall(Q850.NORMAL_CLEARING, 'remote', 'releasing');
        else this.#endCall(Q850.TEMPORARY_FAILURE, 'network', 'releasing');
        void this.#clear();
      }
      if (err instanceof LineCardError) throw err;
      throw new LineCardError(refused ? 'ERELEASED' : 'EDEVICE', this.name, `answering failed: ${(err as Error).message}`, { cause: err });
    }
    if (this.#live && this.#state === 'alerting') this.#setState('connected', () => this.emit('answer', { channel: CHANNEL }));
  }

  async release(channel: ChannelRef, cause: Q850Cause = Q850.NORMAL_CLEARING): Promise<void> {
    this.#check(channel);
    if (!isQ850Cause(cause)) throw new LineCardError('EARGUMENT', this.name, `cause ${String(cause)} is not a Q.850 cause (1-127)`);
    if (this.#state === 'idle' || this.#state === 'out-of-service') return;
    if (this.#live) {
      this.#endCall(cause, 'local', 'releasing');
      void this.#clear();
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  async sendDigits(channel: ChannelRef, digits: string): Promise<void> {
    this.#check(channel);
    if (typeof digits !== 'string' || !DTMF_DIGITS.test(digits)) {
      throw new LineCardError('EARGUMENT', this.name, `cannot send digits ${JSON.stringify(digits)}: expected 0-9 * # A-D`);
    }
    if (this.#state !== 'connected') throw new LineCardError('ENOTCONNECTED', this.name, `channel ${channelKey(channel)} is ${this.#state}, not connected`);
    await this.#dialect!.sendDigits(digits);
  }

  onFrame(channel: ChannelRef, listener: FrameListener): () => void {
    this.#check(channel);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  writeFrame(channel: ChannelRef, frame: Uint8Array): boolean {
    this.#check(channel);
    if (!(frame instanceof Uint8Array) || frame.length !== FRAME_BYTES) {
      throw new LineCardError('EARGUMENT', this.name, `a frame is ${FRAME_BYTES} bytes (20 ms of G.711), got ${frame?.length}`);
    }
    if (this.#state !== 'connected' || !this.#dialect) return false;
    return this.#dialect.writeFrame(frame);
  }

  // ---- device life cycle ----

  async #open(): Promise<boolean> {
    let device: SerialDevice;
    const at = new AtChannel(
      this.name,
      (bytes) => this.#device?.write(bytes),
      (line) => this.#dialect?.unsolicited(line),
      () => this.#device?.drain() ?? Promise.resolve(),
    );
    try {
      device = await SerialDevice.open(this.options.device, this.options.baud, {
        data: (bytes) => at.feed(bytes),
        lost: (reason) => this.#deviceLost(reason),
      });
    } catch {
      return false;
    }
    if (!this.#running) {
      await device.close();
      return false;
    }
    this.#device = device;
    this.#at = at;
    const timeouts = { commandMs: this.options.commandTimeoutMs, dialMs: this.options.dialTimeoutMs, ringGapMs: this.options.ringGapMs };
    this.#dialect = this.options.kind === 'cellular' ? new CellularDialect(at, this.#hooks(), timeouts) : new VoiceModemDialect(at, this.#hooks(), timeouts);
    try {
      await this.#dialect.init();
    } catch {
      // Opened but not answering as a modem: treat it like a missing device and retry.
      at.close('the device did not answer its set-up commands');
      this.#device = undefined;
      await device.close();
      return false;
    }
    this.#lost = false;
    this.#reopenDelay = this.options.reopenMinMs;
    this.#setState('idle');
    return true;
  }

  #deviceLost(reason: string): void {
    if (this.#lost || !this.#running) return;
    this.#lost = true;
    this.#at?.close(reason);
    this.#dialect?.reset();
    void this.#device?.close();
    this.#device = undefined;
    this.emit('alarm', { span: 1, alarm: 'device-lost', detail: `${this.options.device}: ${reason}` });
    if (this.#live) this.#endCall(Q850.NETWORK_OUT_OF_ORDER, 'network', 'out-of-service');
    else this.#setState('out-of-service');
    this.#wake();
    this.#scheduleReopen();
  }

  #scheduleReopen(): void {
    if (!this.#running) return;
    const delay = this.#reopenDelay;
    this.#reopenDelay = Math.min(this.#reopenDelay * 2, this.options.reopenMaxMs);
    this.#reopenTimer = setTimeout(() => {
      void this.#open().then((ok) => {
        if (!this.#running) return;
        if (ok) this.emit('alarm-cleared', { span: 1, alarm: 'device-lost', detail: `${this.options.device} is back` });
        else this.#scheduleReopen();
      });
    }, delay);
  }

  // ---- the line's side ----

  #hooks(): LineHooks {
    return {
      incoming: (callerId: CallerId) => {
        if (this.#state !== 'idle') return;
        this.#direction = 'inbound';
        this.#live = true;
        this.#setState('alerting', () => this.emit('incoming', { channel: CHANNEL, callerId, dialled: this.options.number ?? '' }));
      },
      alerting: () => {
        if (this.#state === 'seized') this.#setState('alerting', () => this.emit('alerting', { channel: CHANNEL }));
      },
      answered: () => {
        if (this.#live && this.#direction === 'outbound' && (this.#state === 'seized' || this.#state === 'alerting')) {
          this.#setState('connected', () => this.emit('answer', { channel: CHANNEL }));
        }
      },
      ended: (cause, by) => {
        if (!this.#live) return;
        this.#endCall(cause, by, 'releasing');
        void this.#clear();
      },
      frame: (frame) => {
        if (this.#state !== 'connected') return;
        for (const listener of this.#listeners) listener(frame);
      },
      digits: (digits) => {
        if (this.#state === 'connected') this.emit('digits', { channel: CHANNEL, digits });
      },
    };
  }

  /** Puts the line back on hook after a call ended; the channel is idle once the device confirms. */
  #clear(): Promise<void> {
    this.#clearing ??= (async () => {
      try {
        await this.#dialect?.hangup();
      } catch {
        // A device that cannot hang up is lost or about to be; #deviceLost takes over.
      } finally {
        this.#clearing = undefined;
        if (this.#state === 'releasing') this.#setState('idle');
      }
    })();
    return this.#clearing;
  }

  // ---- state ----

  #endCall(cause: Q850Cause, by: 'local' | 'remote' | 'network', next: ChannelState): void {
    this.#live = false;
    this.#setState(next, () => this.emit('release', { channel: CHANNEL, cause, by }));
  }

  #setState(state: ChannelState, announce?: () => void): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    if (state === 'idle' || state === 'out-of-service') this.#direction = undefined;
    this.emit('state', { channel: CHANNEL, state, previous });
    announce?.();
    if (state === 'idle' || state === 'out-of-service') this.#wake();
  }

  #wake(): void {
    for (const resolve of this.#waiting.splice(0)) resolve();
  }

  #check(channel: ChannelRef): void {
    if (!channel || channel.span !== 1 || channel.channel !== 1) {
      throw new LineCardError('ENOCHANNEL', this.name, `no channel ${channel ? channelKey(channel) : String(channel)} (a serial line has only 1/1)`);
    }
  }
}
