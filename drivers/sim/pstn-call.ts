// One call as the simulated PSTN sees it: a subscriber calling into the card
// (inbound), or the card calling a subscriber (outbound). Tests, the demo and the
// control socket drive calls through this object: answer, hang up, play audio (paced
// by the PSTN's 20 ms clock), record what the card sends, send digits.

import { EventEmitter } from 'node:events';
import { encodeG711, decodeG711, FRAME_SAMPLES, silenceByte } from '../../agent/media/g711.ts';
import type { AudioSource } from '../../agent/media/audio-source.ts';
import { Q850 } from '../q850.ts';
import { FRAME_BYTES, type CallerId, type ChannelRef, type FrameLaw } from '../types.ts';

export type PstnCallState = 'setup' | 'alerting' | 'connected' | 'released';

export interface PstnCallEvents {
  alerting: [];
  answered: [];
  released: [{ cause: number; by: 'card' | 'pstn' | 'network' }];
  /** A frame the card sent on this call (valid during the listener only). */
  frame: [Uint8Array];
  digits: [string];
}

/** What the call does to the network when driven; implemented by SimPstn. */
export interface PstnCallControl {
  answer(call: PstnCall): void;
  hangup(call: PstnCall, cause: number): void;
  sendFrame(call: PstnCall, frame: Uint8Array): void;
  sendDigits(call: PstnCall, digits: string): void;
}

export interface PstnCallStats {
  framesSent: number;
  framesReceived: number;
  /** Received frames with audible content (peak above about -50 dBm0). */
  audibleFramesReceived: number;
  connectedAt?: number;
  releasedAt?: number;
}

// A frame whose loudest sample is below this is counted as silence (about -50 dBm0).
const AUDIBLE_PEAK = 100;

let nextCallId = 1;

export class PstnCall extends EventEmitter<PstnCallEvents> {
  readonly id: string;
  readonly direction: 'inbound' | 'outbound';
  readonly from: CallerId;
  readonly to: string;
  readonly law: FrameLaw;
  channel: ChannelRef | undefined;
  state: PstnCallState = 'setup';
  releaseCause: number | undefined;
  readonly stats: PstnCallStats = { framesSent: 0, framesReceived: 0, audibleFramesReceived: 0 };
  /** Echo every frame the card sends straight back (an `echo` subscriber). */
  echo = false;
  readonly #control: PstnCallControl;
  #player: { next(): Uint8Array | undefined } | undefined;
  #recording: Uint8Array[] | undefined;
  readonly #pcm = new Int16Array(FRAME_SAMPLES);

  constructor(control: PstnCallControl, direction: 'inbound' | 'outbound', from: CallerId, to: string, law: FrameLaw) {
    super();
    this.id = `pstn-${nextCallId++}`;
    this.#control = control;
    this.direction = direction;
    this.from = from;
    this.to = to;
    this.law = law;
  }

  /** The called subscriber answers (outbound calls only). */
  answer(): void {
    if (this.direction !== 'outbound') throw new Error(`${this.id}: only a call from the card can be answered on the PSTN side`);
    if (this.state !== 'setup' && this.state !== 'alerting') return;
    this.#control.answer(this);
  }

  hangup(cause: number = Q850.NORMAL_CLEARING): void {
    if (this.state === 'released') return;
    this.#control.hangup(this, cause);
  }

  /** Plays raw frames of the span's law (whole file, 160-byte frames, last one padded), `loops` times. */
  playRaw(bytes: Uint8Array, loops = 1): void {
    let offset = 0;
    let loop = 0;
    const silence = silenceByte(this.law);
    this.#player = {
      next: () => {
        if (bytes.length === 0 || loop >= loops) return undefined;
        const frame = new Uint8Array(FRAME_BYTES).fill(silence);
        frame.set(bytes.subarray(offset, offset + FRAME_BYTES));
        offset += FRAME_BYTES;
        if (offset >= bytes.length) {
          offset = 0;
          loop++;
        }
        return frame;
      },
    };
  }

  /** Plays a linear PCM source (a tone, a prompt), encoded to the span's law. */
  playSource(source: AudioSource): void {
    this.#player = {
      next: () => {
        if (!source.read(this.#pcm)) return undefined;
        const frame = new Uint8Array(FRAME_BYTES);
        encodeG711(this.law, this.#pcm, frame);
        return frame;
      },
    };
  }

  stopPlayback(): void {
    this.#player = undefined;
  }

  get playing(): boolean {
    return this.#player !== undefined;
  }

  /** Starts keeping every frame the card sends (until the call ends). */
  record(): void {
    this.#recording ??= [];
  }

  /** Everything recorded so far, as one raw byte string of the span's law. */
  recorded(): Uint8Array {
    const frames = this.#recording ?? [];
    const out = new Uint8Array(frames.length * FRAME_BYTES);
    frames.forEach((f, i) => out.set(f, i * FRAME_BYTES));
    return out;
  }

  sendDigits(digits: string): void {
    this.#control.sendDigits(this, digits);
  }

  /** Resolves when the call reaches `state` (or has passed it); rejects on release first or after `timeoutMs`. */
  until(state: 'alerting' | 'connected' | 'released', timeoutMs = 10_000): Promise<void> {
    const order: PstnCallState[] = ['setup', 'alerting', 'connected', 'released'];
    if (order.indexOf(this.state) >= order.indexOf(state) && (state === 'released' || this.state !== 'released')) return Promise.resolve();
    if (this.state === 'released') return Promise.reject(new Error(`${this.id} was released (cause ${this.releaseCause}) before ${state}`));
    return new Promise((resolve, reject) => {
      const done = (err?: Error): void => {
        clearTimeout(timer);
        this.off('alerting', onAlerting);
        this.off('answered', onAnswered);
        this.off('released', onReleased);
        if (err) reject(err);
        else resolve();
      };
      const onAlerting = (): void => {
        if (state === 'alerting') done();
      };
      const onAnswered = (): void => {
        if (state !== 'released') done();
      };
      const onReleased = ({ cause }: { cause: number }): void => {
        if (state === 'released') done();
        else done(new Error(`${this.id} was released (cause ${cause}) before ${state}`));
      };
      const timer = setTimeout(() => done(new Error(`${this.id}: timed out after ${timeoutMs} ms waiting for ${state} (state ${this.state})`)), timeoutMs);
      this.on('alerting', onAlerting);
      this.on('answered', onAnswered);
      this.on('released', onReleased);
    });
  }

  // ---- driven by SimPstn ----

  /** @internal The next frame to send on this clock tick, if playing. */
  nextFrame(): Uint8Array | undefined {
    if (!this.#player) return undefined;
    const frame = this.#player.next();
    if (!frame) this.#player = undefined;
    return frame;
  }

  /** @internal A frame arrived from the card. */
  received(frame: Uint8Array): void {
    this.stats.framesReceived++;
    decodeG711(this.law, frame, this.#pcm, 0, FRAME_BYTES);
    let peak = 0;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      const s = this.#pcm[i]!;
      const m = s < 0 ? -s : s;
      if (m > peak) peak = m;
    }
    if (peak > AUDIBLE_PEAK) this.stats.audibleFramesReceived++;
    if (this.#recording) this.#recording.push(Uint8Array.from(frame));
    this.emit('frame', frame);
    if (this.echo && this.state === 'connected') this.#control.sendFrame(this, frame);
  }

  /** @internal Sends one frame now (counted). */
  countSent(): void {
    this.stats.framesSent++;
  }
}
