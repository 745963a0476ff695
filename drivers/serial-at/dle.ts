// DLE shielding of voice data (ITU-T V.253 §4.6, from IS-101): in the voice data
// state a 0x10 (DLE) byte starts a two-byte code. DLE DLE is one 0x10 of audio; DLE
// followed by another byte is an event from the modem (a DTMF digit, busy tone, loop
// current interruption...) or, from the DTE, a command; DLE ETX ends the data state.

import { FRAME_BYTES } from '../types.ts';

export const DLE = 0x10;
export const ETX = 0x03;

/** Doubles every DLE so audio bytes cannot be read as codes. */
export function dleEncode(audio: Uint8Array): Buffer {
  let extra = 0;
  for (const b of audio) if (b === DLE) extra++;
  const out = Buffer.allocUnsafe(audio.length + extra);
  let o = 0;
  for (const b of audio) {
    out[o++] = b;
    if (b === DLE) out[o++] = DLE;
  }
  return out;
}

/** A shielded code on its own (e.g. DLE ETX to end transmitting). */
export function dleCode(code: number): Buffer {
  return Buffer.from([DLE, code]);
}

/**
 * Splits a shielded stream into 160-byte audio frames and event codes. Codes and
 * frames may straddle reads; a DLE at the end of one read pairs with the next.
 */
export class DleDecoder {
  readonly #onFrame: (frame: Uint8Array) => void;
  readonly #onEvent: (code: string) => void;
  readonly #frame = new Uint8Array(FRAME_BYTES);
  #fill = 0;
  #pendingDle = false;

  constructor(onFrame: (frame: Uint8Array) => void, onEvent: (code: string) => void) {
    this.#onFrame = onFrame;
    this.#onEvent = onEvent;
  }

  /** Returns the number of bytes used when DLE ETX ended the data state, else undefined. */
  feed(bytes: Buffer): number | undefined {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.#pendingDle) {
        this.#pendingDle = false;
        if (b === DLE) this.#audio(DLE);
        else if (b === ETX) {
          this.#fill = 0;
          return i + 1;
        } else this.#onEvent(String.fromCharCode(b));
      } else if (b === DLE) {
        this.#pendingDle = true;
      } else {
        this.#audio(b);
      }
    }
    return undefined;
  }

  #audio(b: number): void {
    this.#frame[this.#fill++] = b;
    if (this.#fill === FRAME_BYTES) {
      this.#fill = 0;
      this.#onFrame(this.#frame);
    }
  }
}
