// RFC 4733 telephone-event payload (DTMF digits as RTP events): the 4-byte
// payload, a sender that steps one event through start/continue/end, and a
// receiver that turns a stream of event packets into one digit per key press.
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// |     event     |E|R| volume    |          duration             |
import { MediaArgumentError } from './errors.ts';

export const TELEPHONE_EVENT_BYTES = 4;
export const DTMF_DIGITS = '0123456789*#ABCD';

export type DtmfDigit = '0' | '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9' | '*' | '#' | 'A' | 'B' | 'C' | 'D';

/** RFC 4733 §3.2: events 0–9, * = 10, # = 11, A–D = 12–15. */
export function digitToEvent(digit: string): number {
  const code = DTMF_DIGITS.indexOf(digit.toUpperCase());
  if (digit.length !== 1 || code < 0) throw new MediaArgumentError(`not a DTMF digit: ${JSON.stringify(digit)}`);
  return code;
}

export function eventToDigit(event: number): DtmfDigit | undefined {
  return event >= 0 && event < 16 ? (DTMF_DIGITS[event] as DtmfDigit) : undefined;
}

/** A key press as the rest of the agent sees it, whichever way it arrived. */
export interface DigitEvent {
  digit: DtmfDigit;
  durationMs: number;
  source: 'rfc4733' | 'inband';
  /** What ended it: the E bit, the next event, or silence from the sender (lost end packets). */
  endedBy: 'end' | 'next-event' | 'timeout' | 'tone-stop';
}

export interface TelephoneEventPayload {
  event: number;
  end: boolean;
  /** Power level in -dBm0 (0..63). */
  volume: number;
  /** In timestamp units since the event began. */
  duration: number;
}

export function writeTelephoneEvent(buf: Uint8Array, offset: number, p: TelephoneEventPayload): void {
  buf[offset] = p.event & 0xff;
  buf[offset + 1] = (p.end ? 0x80 : 0) | (p.volume & 0x3f);
  buf[offset + 2] = (p.duration >>> 8) & 0xff;
  buf[offset + 3] = p.duration & 0xff;
}

/** Reads the first event of a payload (a payload may carry several; phones send one). */
export function readTelephoneEvent(buf: Uint8Array, offset: number, length: number): TelephoneEventPayload | undefined {
  if (length < TELEPHONE_EVENT_BYTES) return undefined;
  const flags = buf[offset + 1]!;
  return {
    event: buf[offset]!,
    end: (flags & 0x80) !== 0,
    volume: flags & 0x3f,
    duration: (buf[offset + 2]! << 8) | buf[offset + 3]!,
  };
}

/** What the sender wants sent on one tick. */
export interface EventPacket {
  marker: boolean;
  /** RTP timestamp: the start of the event, the same on every packet of it. */
  timestamp: number;
  payload: TelephoneEventPayload;
}

/**
 * Steps one event per call to `next()`, one call per 20 ms tick: the first packet
 * has the marker bit, each packet carries the duration so far, and the final
 * packet (E bit) goes out three times on consecutive ticks (§2.5.1.4) so that a
 * lost packet does not lose the end of the digit.
 */
export class TelephoneEventSender {
  readonly samplesPerTick: number;
  #event = 0;
  #volume = 10;
  #total = 0;
  #timestamp = 0;
  #sent = 0;
  #endsSent = 0;
  #active = false;

  constructor(samplesPerTick = 160) {
    this.samplesPerTick = samplesPerTick;
  }

  get active(): boolean {
    return this.#active;
  }

  /**
   * Starts an event lasting `durationSamples`, whose RTP timestamp is
   * `timestamp`. Durations are capped at 0xffff (8.2 s at 8 kHz): a key press
   * never needs the segmenting of §2.5.1.3.
   */
  begin(event: number, durationSamples: number, volume: number, timestamp: number): void {
    this.#event = event;
    this.#volume = Math.max(0, Math.min(63, Math.round(volume)));
    this.#total = Math.max(this.samplesPerTick, Math.min(0xffff, Math.round(durationSamples)));
    this.#timestamp = timestamp >>> 0;
    this.#sent = 0;
    this.#endsSent = 0;
    this.#active = true;
  }

  /** The packet for this tick, or undefined when no event is in progress. */
  next(): EventPacket | undefined {
    if (!this.#active) return undefined;
    const first = this.#sent === 0;
    const duration = Math.min(this.#total, (this.#sent + 1) * this.samplesPerTick);
    const end = duration >= this.#total;
    if (end) {
      this.#endsSent++;
      if (this.#endsSent >= 3) this.#active = false;
    } else {
      this.#sent++;
    }
    if (first && end) this.#sent++;
    return {
      marker: first,
      timestamp: this.#timestamp,
      payload: { event: this.#event, end, volume: this.#volume, duration },
    };
  }

  /** Drops the event in progress (session stopping). */
  cancel(): void {
    this.#active = false;
  }
}

/**
 * One digit per key press from event packets: an event is identified by its RTP
 * timestamp (§2.5.1.5), so retransmitted end packets and late updates of a
 * finished event are recognised and ignored. An event ends with its E bit, when
 * a new event begins, or when no packet has come for `timeoutMs` (all three end
 * packets lost).
 */
export class TelephoneEventReceiver {
  readonly clockRate: number;
  readonly timeoutMs: number;
  readonly #emit: (event: DigitEvent) => void;
  // The last few finished events, as timestamps; a ring, so no allocation.
  readonly #finished = new Float64Array(8).fill(-1);
  #finishedNext = 0;
  #active = false;
  #timestamp = 0;
  #event = 0;
  #duration = 0;
  #lastPacketAt = 0;
  duplicates = 0;

  constructor(emit: (event: DigitEvent) => void, options: { clockRate?: number; timeoutMs?: number } = {}) {
    this.#emit = emit;
    this.clockRate = options.clockRate ?? 8000;
    this.timeoutMs = options.timeoutMs ?? 300;
  }

  #isFinished(timestamp: number): boolean {
    for (const t of this.#finished) if (t === timestamp) return true;
    return false;
  }

  #finish(endedBy: DigitEvent['endedBy']): void {
    this.#active = false;
    this.#finished[this.#finishedNext] = this.#timestamp;
    this.#finishedNext = (this.#finishedNext + 1) % this.#finished.length;
    const digit = eventToDigit(this.#event);
    if (digit === undefined) return; // flash-hook and other non-DTMF events: not digits
    this.#emit({ digit, durationMs: (this.#duration * 1000) / this.clockRate, source: 'rfc4733', endedBy });
  }

  /** One received telephone-event packet. `nowMs` is monotonic time. */
  push(timestamp: number, payload: TelephoneEventPayload, nowMs: number): void {
    if (this.#active && timestamp === this.#timestamp) {
      if (payload.duration > this.#duration) this.#duration = payload.duration;
      this.#lastPacketAt = nowMs;
      if (payload.end) this.#finish('end');
      return;
    }
    if (this.#isFinished(timestamp)) {
      this.duplicates++;
      return;
    }
    if (this.#active) this.#finish('next-event');
    this.#active = true;
    this.#timestamp = timestamp;
    this.#event = payload.event;
    this.#duration = payload.duration;
    this.#lastPacketAt = nowMs;
    if (payload.end) this.#finish('end');
  }

  /** Ends an event whose sender went quiet; call it periodically (each tick). */
  poll(nowMs: number): void {
    if (this.#active && nowMs - this.#lastPacketAt > this.timeoutMs) this.#finish('timeout');
  }

  reset(): void {
    this.#active = false;
    this.#finished.fill(-1);
  }
}
