// Tone sources: sums of sines with an on/off cadence, phase-continuous across
// frames, for call-progress tones (per country) and DTMF digits.
import type { AudioSource } from './audio-source.ts';
import { DBM0_PEAK, dtmfFrequencies } from './dtmf-detector.ts';
import { MediaArgumentError } from './errors.ts';
import { FRAME_SAMPLES, SAMPLE_RATE } from './g711.ts';
import { isCountryCode, toneTables, type CountryCode, type ToneName, type ToneSpec } from './tone-tables.ts';

/** Peak amplitude of a sine at `dbm0` in 16-bit linear PCM. */
export function dbm0ToAmplitude(dbm0: number): number {
  return DBM0_PEAK * 10 ** (dbm0 / 20);
}

export class ToneSource implements AudioSource {
  readonly spec: ToneSpec;
  readonly #phaseStep: Float64Array;
  readonly #phase: Float64Array;
  readonly #amplitude: number;
  readonly #cadence: Int32Array; // in samples
  readonly #cycle: number;
  readonly #totalSamples: number;
  #sample = 0;

  /** `durationMs`: stop after this long (default: until replaced). */
  constructor(spec: ToneSpec, durationMs = Infinity) {
    this.spec = spec;
    this.#phaseStep = Float64Array.from(spec.frequencies, (f) => (2 * Math.PI * f) / SAMPLE_RATE);
    this.#phase = new Float64Array(spec.frequencies.length);
    this.#amplitude = dbm0ToAmplitude(spec.levelDbm0);
    this.#cadence = Int32Array.from(spec.cadenceMs, (ms) => Math.round((ms * SAMPLE_RATE) / 1000));
    this.#cycle = this.#cadence.reduce((a, b) => a + b, 0);
    this.#totalSamples = Number.isFinite(durationMs) ? Math.round((durationMs * SAMPLE_RATE) / 1000) : Infinity;
  }

  #on(sample: number): boolean {
    if (this.#cycle === 0) return true;
    let t = sample % this.#cycle;
    for (let i = 0; i < this.#cadence.length; i++) {
      t -= this.#cadence[i]!;
      if (t < 0) return i % 2 === 0;
    }
    return false;
  }

  read(frame: Int16Array): boolean {
    if (this.#sample >= this.#totalSamples) return false;
    const tones = this.#phase.length;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      const n = this.#sample++;
      let value = 0;
      if (n < this.#totalSamples && this.#on(n)) {
        for (let k = 0; k < tones; k++) value += Math.sin(this.#phase[k]!);
      }
      // Phases advance during the off part too: each burst starts where a
      // continuous tone would be, which is how exchanges generate cadences.
      for (let k = 0; k < tones; k++) {
        let p = this.#phase[k]! + this.#phaseStep[k]!;
        if (p > 2 * Math.PI) p -= 2 * Math.PI;
        this.#phase[k] = p;
      }
      const v = Math.round(value * this.#amplitude);
      frame[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    return true;
  }
}

/** A call-progress tone of a country's table. */
export function callProgressTone(country: string, tone: ToneName, durationMs = Infinity): ToneSource {
  if (!isCountryCode(country)) throw new MediaArgumentError(`no tone table for country ${JSON.stringify(country)}`);
  return new ToneSource(toneTables[country as CountryCode][tone], durationMs);
}

/**
 * One DTMF digit: row + column at `levelDbm0` each (−10 dBm0 by default, inside
 * the −3..−20 dBm0 range ITU-T Q.23 senders use), for `durationMs`.
 */
export function dtmfTone(digit: string, durationMs = 100, levelDbm0 = -10): ToneSource {
  const pair = dtmfFrequencies(digit);
  if (!pair) throw new MediaArgumentError(`not a DTMF digit: ${JSON.stringify(digit)}`);
  return new ToneSource({ frequencies: pair, levelDbm0, cadenceMs: [] }, durationMs);
}

/** Renders a source to PCM (at most `maxMs`), e.g. to write a tone to a WAV file. */
export function renderSource(source: AudioSource, maxMs: number): Int16Array {
  const frames = Math.ceil(maxMs / 20);
  const out = new Int16Array(frames * FRAME_SAMPLES);
  const frame = new Int16Array(FRAME_SAMPLES);
  let n = 0;
  while (n < frames && source.read(frame)) out.set(frame, n++ * FRAME_SAMPLES);
  return out.subarray(0, n * FRAME_SAMPLES);
}
