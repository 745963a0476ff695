// Call-progress tones as a listener would check them: which frequencies are
// heard, how loud, and the on/off rhythm.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MediaArgumentError } from '../../agent/media/errors.ts';
import { FRAME_SAMPLES } from '../../agent/media/g711.ts';
import { goertzelCoefficient, goertzelPower, toneEnergy } from '../../agent/media/goertzel.ts';
import { callProgressTone, dbm0ToAmplitude, renderSource } from '../../agent/media/tone-generator.ts';
import { TONE_NAMES, toneTables, type CountryCode } from '../../agent/media/tone-tables.ts';

function energy(x: Int16Array): number {
  let e = 0;
  for (const v of x) e += v * v;
  return e;
}

/** Durations (ms) of alternating on/off runs, judged per millisecond (8 samples). */
function cadenceOf(samples: Int16Array): { on: boolean; ms: number }[] {
  const runs: { on: boolean; ms: number }[] = [];
  for (let i = 0; i + 8 <= samples.length; i += 8) {
    const on = energy(samples.subarray(i, i + 8)) > 0;
    const last = runs.at(-1);
    if (last && last.on === on) last.ms += 1;
    else runs.push({ on, ms: 1 });
  }
  return runs;
}

test('every tone of US, UK, DE and FR: frequencies, level and cadence as tabled', () => {
  for (const country of ['US', 'UK', 'DE', 'FR'] as CountryCode[]) {
    for (const name of TONE_NAMES) {
      const spec = toneTables[country][name];
      const cycle = spec.cadenceMs.reduce((a, b) => a + b, 0) || 1000;
      const samples = renderSource(callProgressTone(country, name), cycle * 2);
      const label = `${country} ${name}`;

      // Cadence: two full cycles of on/off runs, each within 1 ms of the table.
      const runs = cadenceOf(samples);
      if (spec.cadenceMs.length === 0) {
        assert.deepEqual(runs, [{ on: true, ms: cycle * 2 }], label);
      } else {
        const expected = [...spec.cadenceMs, ...spec.cadenceMs];
        const merged = runs.map((r) => r.ms);
        assert.equal(merged.length, expected.length, `${label}: ${JSON.stringify(runs)}`);
        merged.forEach((ms, i) => assert.ok(Math.abs(ms - expected[i]!) <= 1, `${label} run ${i}: ${ms} vs ${expected[i]}`));
        assert.equal(runs[0]!.on, true, label);
      }

      // Frequencies: the first 100 ms of a burst is made of the tabled sines
      // (they hold ≥ 95% of the energy) at the tabled level (±0.5 dB).
      const burst = samples.subarray(0, 800);
      const total = energy(burst);
      let tonal = 0;
      for (const f of spec.frequencies) {
        const e = toneEnergy(goertzelPower(burst, burst.length, goertzelCoefficient(f, 8000)), burst.length);
        const expectedEnergy = (dbm0ToAmplitude(spec.levelDbm0) ** 2 * burst.length) / 2;
        const db = 10 * Math.log10(e / expectedEnergy);
        assert.ok(Math.abs(db) < 0.5, `${label} ${f} Hz at ${db.toFixed(2)} dB from table`);
        tonal += e;
      }
      assert.ok(tonal / total > 0.95, `${label}: tabled sines carry ${((100 * tonal) / total).toFixed(1)}%`);
    }
  }
});

test('a tone with a duration stops; phases continue across frames (no clicks)', () => {
  const samples = renderSource(callProgressTone('DE', 'dial', 250), 1000);
  assert.equal(samples.length, 13 * FRAME_SAMPLES); // 250 ms rounded up to whole frames
  assert.equal(energy(samples.subarray(2000)), 0);
  // A continuous 425 Hz sine: the largest step between samples is that of the sine.
  let maxStep = 0;
  for (let i = 1; i < 2000; i++) maxStep = Math.max(maxStep, Math.abs(samples[i]! - samples[i - 1]!));
  const amplitude = dbm0ToAmplitude(-13);
  assert.ok(maxStep <= amplitude * 2 * Math.sin((Math.PI * 425) / 8000) + 2, `step ${maxStep}`);
});

test('unknown country is refused with a typed error', () => {
  assert.throws(() => callProgressTone('XX', 'busy'), MediaArgumentError);
});
