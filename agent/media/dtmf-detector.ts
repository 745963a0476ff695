// In-band DTMF detection on 8 kHz linear PCM, for legs whose far end sends key
// presses as audio (no RFC 4733: old gateways, FXO lines, some phones).
//
// Audio is cut into blocks of 102 samples (12.75 ms). At that length the
// Goertzel response of one DTMF frequency falls close to a null at its neighbours
// (the DTMF grid is spaced about 1/N apart), so rows and columns separate well
// while blocks stay short enough to catch a 40 ms press. Each block passes when:
//   - the strongest row and column tone are each above `minToneDbm0`;
//   - twist (column vs row level) is within +`reverseTwistDb` / -`normalTwistDb`;
//   - each is at least `peakRatioDb` above the other tones of its group;
//   - the two tones carry at least `purity` of the block's energy — the test that
//     keeps speech and music (energy spread over many harmonics) from passing;
// and a digit is reported once it has passed for `minDurationMs` (consecutive
// blocks, one missing block forgiven) and has then stopped.
import { goertzelCoefficient, goertzelPower, toneEnergy } from './goertzel.ts';
import { DTMF_DIGITS, type DigitEvent, type DtmfDigit } from './telephone-event.ts';

export const DTMF_ROWS = [697, 770, 852, 941] as const;
export const DTMF_COLUMNS = [1209, 1336, 1477, 1633] as const;

/** Peak amplitude of a 0 dBm0 sine in 16-bit linear PCM (G.711: +3.17 dBm0 is full scale). */
export const DBM0_PEAK = 22_780;

export interface DtmfDetectorOptions {
  sampleRate?: number;
  /** Weakest tone (each of the pair) that may count, dBm0. */
  minToneDbm0?: number;
  /** Column tone may be this much weaker than the row tone (dB). */
  normalTwistDb?: number;
  /** Column tone may be this much stronger than the row tone (dB). */
  reverseTwistDb?: number;
  /** Each chosen tone must beat the rest of its group by this much (dB). */
  peakRatioDb?: number;
  /** Share of the block's energy the two tones must carry (0..1). */
  purity?: number;
  /**
   * Shortest press reported, rounded down to whole blocks (at least two, 25.5 ms).
   * ITU-T Q.24 requires 40 ms presses to be accepted; a 40 ms tone always covers
   * two whole blocks, so the default of 25 accepts it wherever it falls.
   */
  minDurationMs?: number;
}

const BLOCK = 102;

export class DtmfDetector {
  readonly sampleRate: number;
  readonly #emit: (event: DigitEvent) => void;
  readonly #block = new Float64Array(BLOCK);
  readonly #rowCoefficients: Float64Array;
  readonly #columnCoefficients: Float64Array;
  readonly #minToneEnergy: number;
  readonly #twistLow: number;
  readonly #twistHigh: number;
  readonly #peakRatio: number;
  readonly #purity: number;
  readonly #minBlocks: number;
  readonly #blockMs: number;
  #fill = 0;
  // Debounce state: the digit being seen (-1 none), for how many blocks, and how
  // many blocks in a row it has been missing.
  #candidate = -1;
  #candidateBlocks = 0;
  #missing = 0;
  #reported = false;

  constructor(emit: (event: DigitEvent) => void, options: DtmfDetectorOptions = {}) {
    this.#emit = emit;
    this.sampleRate = options.sampleRate ?? 8000;
    this.#rowCoefficients = Float64Array.from(DTMF_ROWS, (f) => goertzelCoefficient(f, this.sampleRate));
    this.#columnCoefficients = Float64Array.from(DTMF_COLUMNS, (f) => goertzelCoefficient(f, this.sampleRate));
    const minAmplitude = DBM0_PEAK * 10 ** ((options.minToneDbm0 ?? -30) / 20);
    this.#minToneEnergy = (minAmplitude * minAmplitude * BLOCK) / 2;
    this.#twistLow = 10 ** (-(options.normalTwistDb ?? 8) / 10);
    this.#twistHigh = 10 ** ((options.reverseTwistDb ?? 4) / 10);
    this.#peakRatio = 10 ** ((options.peakRatioDb ?? 6) / 10);
    this.#purity = options.purity ?? 0.7;
    this.#blockMs = (BLOCK * 1000) / this.sampleRate;
    // At least two blocks: one block alone is too easily a fluke of speech.
    this.#minBlocks = Math.max(2, Math.floor((options.minDurationMs ?? 25) / this.#blockMs));
  }

  /** Feeds samples (any count, any frame size). Digits are emitted as they end. */
  push(samples: Int16Array, length = samples.length): void {
    for (let i = 0; i < length; i++) {
      this.#block[this.#fill++] = samples[i]!;
      if (this.#fill === BLOCK) {
        this.#fill = 0;
        this.#step(this.#classify());
      }
    }
  }

  /** Ends a press still in progress (the stream stopped); emits it if long enough. */
  flush(): void {
    if (this.#candidate >= 0) this.#step(-1, true);
  }

  /** The digit index (0..15) this block shows, or -1. */
  #classify(): number {
    const block = this.#block;
    let energy = 0;
    for (let i = 0; i < BLOCK; i++) energy += block[i]! * block[i]!;
    if (energy < 2 * this.#minToneEnergy) return -1;

    let row = -1;
    let rowEnergy = 0;
    let rowSecond = 0;
    for (let r = 0; r < 4; r++) {
      const e = toneEnergy(goertzelPower(block, BLOCK, this.#rowCoefficients[r]!), BLOCK);
      if (e > rowEnergy) {
        rowSecond = rowEnergy;
        rowEnergy = e;
        row = r;
      } else if (e > rowSecond) rowSecond = e;
    }
    if (rowEnergy < this.#minToneEnergy || rowEnergy < this.#peakRatio * rowSecond) return -1;

    let column = -1;
    let columnEnergy = 0;
    let columnSecond = 0;
    for (let c = 0; c < 4; c++) {
      const e = toneEnergy(goertzelPower(block, BLOCK, this.#columnCoefficients[c]!), BLOCK);
      if (e > columnEnergy) {
        columnSecond = columnEnergy;
        columnEnergy = e;
        column = c;
      } else if (e > columnSecond) columnSecond = e;
    }
    if (columnEnergy < this.#minToneEnergy || columnEnergy < this.#peakRatio * columnSecond) return -1;

    const twist = columnEnergy / rowEnergy;
    if (twist < this.#twistLow || twist > this.#twistHigh) return -1;
    if (rowEnergy + columnEnergy < this.#purity * energy) return -1;
    return row * 4 + column;
  }

  #step(seen: number, final = false): void {
    if (seen >= 0 && seen === this.#candidate) {
      this.#candidateBlocks += 1 + this.#missing; // a forgiven gap counts as tone
      this.#missing = 0;
    } else if (this.#candidate >= 0 && seen < 0 && this.#missing === 0 && !final) {
      this.#missing = 1; // forgive one block (a dropout shorter than 12.75 ms)
      return;
    } else {
      this.#end();
      if (seen >= 0) {
        this.#candidate = seen;
        this.#candidateBlocks = 1;
      }
    }
    if (!this.#reported && this.#candidate >= 0 && this.#candidateBlocks >= this.#minBlocks) this.#reported = true;
  }

  #end(): void {
    if (this.#candidate >= 0 && this.#reported) {
      const digit = DTMF_DIGITS[keypadIndex(this.#candidate)] as DtmfDigit;
      this.#emit({ digit, durationMs: this.#candidateBlocks * this.#blockMs, source: 'inband', endedBy: 'tone-stop' });
    }
    this.#candidate = -1;
    this.#candidateBlocks = 0;
    this.#missing = 0;
    this.#reported = false;
  }
}

// Keypad layout: rows 697..941, columns 1209..1633.
const KEYPAD = '123A456B789C*0#D';

/** Row·4+column to the index of that key in DTMF_DIGITS. */
function keypadIndex(cell: number): number {
  return DTMF_DIGITS.indexOf(KEYPAD[cell]!);
}

/** Row and column frequencies of a digit. */
export function dtmfFrequencies(digit: string): [number, number] | undefined {
  const cell = KEYPAD.indexOf(digit.toUpperCase());
  if (digit.length !== 1 || cell < 0) return undefined;
  return [DTMF_ROWS[cell >> 2]!, DTMF_COLUMNS[cell & 3]!];
}
