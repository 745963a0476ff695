// Two line-card channels joined (a PSTN call forwarded back out to the PSTN): each
// 20 ms frame one channel delivers is copied — the driver may reuse its buffer —,
// transcoded when the spans' laws differ (E1 A-law to a T1 or FXO µ-law), and
// written to the other; digits one line signals are sent on the other. No RTP and no
// media engine: the frames never leave the process.

import type { Logger } from 'pino';
import type { ChannelRef, FrameLaw, LineCard } from '../../drivers/types.ts';
import { transcodeG711InPlace } from '../media/g711.ts';
import { onChannelEvent } from './channel-events.ts';

export interface LineEnd {
  card: LineCard;
  channel: ChannelRef;
  law: FrameLaw;
}

export class ChannelPair {
  readonly #a: LineEnd;
  readonly #b: LineEnd;
  readonly #log: Logger;
  readonly #off: Array<() => void> = [];
  /** Frames carried a→b and b→a. */
  readonly frames = { aToB: 0, bToA: 0 };

  constructor(a: LineEnd, b: LineEnd, log: Logger) {
    this.#a = a;
    this.#b = b;
    this.#log = log;
  }

  start(): void {
    if (this.#off.length > 0) return;
    this.#off.push(
      this.#a.card.onFrame(this.#a.channel, (frame) => {
        if (this.#pass(frame, this.#a, this.#b)) this.frames.aToB++;
      }),
      this.#b.card.onFrame(this.#b.channel, (frame) => {
        if (this.#pass(frame, this.#b, this.#a)) this.frames.bToA++;
      }),
      onChannelEvent(this.#a.card, 'digits', this.#a.channel, (e) => this.#digits(e.digits, this.#b)),
      onChannelEvent(this.#b.card, 'digits', this.#b.channel, (e) => this.#digits(e.digits, this.#a)),
    );
  }

  stop(): void {
    for (const off of this.#off.splice(0)) off();
  }

  #pass(frame: Uint8Array, from: LineEnd, to: LineEnd): boolean {
    const copy = Uint8Array.from(frame);
    transcodeG711InPlace(from.law, to.law, copy, 0, copy.length);
    return to.card.writeFrame(to.channel, copy);
  }

  #digits(digits: string, to: LineEnd): void {
    to.card.sendDigits(to.channel, digits).catch((err: unknown) => this.#log.info({ err: (err as Error).message, digits }, 'digits not passed to the other line'));
  }
}
