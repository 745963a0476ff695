// The Goertzel algorithm: the power of one frequency in a block of samples, as one
// DFT bin but at any frequency (the coefficient need not fall on a bin) and with
// two multiply-adds per sample. The DTMF detector runs eight of them per block.

/** 2·cos(2πf/fs): the recurrence coefficient for frequency `hz` at `sampleRate`. */
export function goertzelCoefficient(hz: number, sampleRate: number): number {
  return 2 * Math.cos((2 * Math.PI * hz) / sampleRate);
}

/**
 * |X(f)|² over `samples[0..length)`. For a sinusoid of amplitude A at f this is
 * about (A·N/2)²; `toneEnergy` turns it into the energy Σx² that sinusoid
 * contributes, directly comparable with the block's total energy.
 */
export function goertzelPower(samples: ArrayLike<number>, length: number, coefficient: number): number {
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < length; i++) {
    const s0 = samples[i]! + coefficient * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - coefficient * s1 * s2;
}

/** Energy (Σx² over the block) of the sinusoid a Goertzel power measured. */
export function toneEnergy(power: number, length: number): number {
  return (2 * power) / length;
}
