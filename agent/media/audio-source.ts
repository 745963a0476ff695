// What a session plays: anything that fills 20 ms frames of 8 kHz linear PCM on
// demand. Tones, DTMF, prompts from WAV files and silence are all sources; the
// session encodes them with whatever codec the call negotiated.
import { FRAME_SAMPLES } from './g711.ts';

export interface AudioSource {
  /**
   * Fills `frame` (FRAME_SAMPLES samples) with the next 20 ms. Returns false when
   * the source has ended; `frame` is then left as it was and not sent.
   */
  read(frame: Int16Array): boolean;
}

/** Plays PCM samples once, or `loops` times; pads the last frame with silence. */
export class PcmSource implements AudioSource {
  readonly samples: Int16Array;
  readonly loops: number;
  #position = 0;
  #loop = 0;

  constructor(samples: Int16Array, loops = 1) {
    this.samples = samples;
    this.loops = loops;
  }

  read(frame: Int16Array): boolean {
    if (this.samples.length === 0 || this.#loop >= this.loops) return false;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      if (this.#position >= this.samples.length) {
        this.#loop++;
        this.#position = 0;
        if (this.#loop >= this.loops) {
          frame.fill(0, i);
          return true;
        }
      }
      frame[i] = this.samples[this.#position++]!;
    }
    return true;
  }
}

/** Silence for `durationMs` (Infinity: until replaced). */
export class SilenceSource implements AudioSource {
  #frames: number;

  constructor(durationMs = Infinity) {
    this.#frames = Math.ceil(durationMs / 20);
  }

  read(frame: Int16Array): boolean {
    if (this.#frames <= 0) return false;
    this.#frames--;
    frame.fill(0);
    return true;
  }
}

/** Plays sources one after another. */
export class SequenceSource implements AudioSource {
  readonly #sources: AudioSource[];
  #index = 0;

  constructor(sources: AudioSource[]) {
    this.#sources = sources;
  }

  read(frame: Int16Array): boolean {
    while (this.#index < this.#sources.length) {
      if (this.#sources[this.#index]!.read(frame)) return true;
      this.#index++;
    }
    return false;
  }
}
