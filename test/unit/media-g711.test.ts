import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import {
  alawToLinear,
  decodeG711,
  encodeG711,
  linearToAlaw,
  linearToUlaw,
  alawOfSample,
  transcodeG711InPlace,
  ulawOfSample,
  ulawToLinear,
} from '../../agent/media/g711.ts';

// Every 16-bit value once, -32768..32767.
const ramp = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);

test('the encode tables, built run by run, hold the per-sample definition for every 16-bit sample', () => {
  for (let s = -32768; s < 32768; s++) {
    assert.equal(linearToUlaw(s), ulawOfSample(s), `µ-law ${s}`);
    assert.equal(linearToAlaw(s), alawOfSample(s), `A-law ${s}`);
  }
});

test('µ-law: the values G.711 tables give for silence, full scale and the segment edges', () => {
  assert.equal(linearToUlaw(0), 0xff);
  assert.equal(linearToUlaw(32767), 0x80);
  assert.equal(linearToUlaw(-32768), 0x00);
  assert.equal(ulawToLinear(0xff), 0);
  assert.equal(ulawToLinear(0x7f), 0); // "negative zero"
  assert.equal(ulawToLinear(0x80), 32124);
  assert.equal(ulawToLinear(0x00), -32124);
  // First step of segment 1 and last of segment 0 (14-bit values ×4).
  assert.equal(ulawToLinear(0xef), 132);
  assert.equal(ulawToLinear(0xf0), 120);
});

test('A-law: the values G.711 tables give for silence, full scale and the first step', () => {
  assert.equal(linearToAlaw(0), 0xd5);
  assert.equal(linearToAlaw(-8), 0x55);
  assert.equal(linearToAlaw(32767), 0xaa);
  assert.equal(linearToAlaw(-32768), 0x2a);
  assert.equal(alawToLinear(0xd5), 8);
  assert.equal(alawToLinear(0x55), -8);
  assert.equal(alawToLinear(0xaa), 32256);
  assert.equal(alawToLinear(0x2a), -32256);
  assert.equal(alawToLinear(0xd4), 24);
});

test('decode then encode gives every code back (µ-law: except negative zero)', () => {
  for (let b = 0; b < 256; b++) {
    assert.equal(linearToAlaw(alawToLinear(b)), b, `A-law 0x${b.toString(16)}`);
    const expected = b === 0x7f ? 0xff : b;
    assert.equal(linearToUlaw(ulawToLinear(b)), expected, `µ-law 0x${b.toString(16)}`);
  }
});

test('encode then decode stays within half a quantisation step of the input', () => {
  // The step of a code's segment, in 16-bit units (G.711 tables 1a/2a scaled):
  // µ-law 8·2^seg; A-law 16 for segments 0 and 1, then doubling.
  const ulawStep = (code: number): number => 8 << ((~code >> 4) & 7);
  const alawStep = (code: number): number => {
    const seg = ((code ^ 0x55) >> 4) & 7;
    return seg <= 1 ? 16 : 16 << (seg - 1);
  };
  for (const [name, encode, decode, step, top] of [
    ['PCMU', linearToUlaw, ulawToLinear, ulawStep, 32124],
    ['PCMA', linearToAlaw, alawToLinear, alawStep, 32256],
  ] as const) {
    let worstRelative = 0;
    for (const x of ramp) {
      const code = encode(x);
      const y = decode(code);
      const error = Math.abs(y - x);
      // Half a step, plus the rounding of 16-bit input to the law's 14/13 bits;
      // beyond the largest code the law clips.
      const allowed = Math.abs(x) > top ? Math.abs(x) - top : step(code) / 2 + 4;
      assert.ok(error <= allowed, `${name}: ${x} → ${y} (error ${error} > ${allowed})`);
      if (Math.abs(x) > 1024 && Math.abs(x) <= top) worstRelative = Math.max(worstRelative, error / Math.abs(x));
    }
    // About 3% worst case: the 8-bit log law's design (≈ 38 dB SNR).
    assert.ok(worstRelative < 0.035, `${name} worst relative error ${worstRelative}`);
  }
});

test('the encoders produce the same bytes as sox for all 65,536 sample values', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bl-g711-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const raw = path.join(dir, 'ramp.raw');
  writeFileSync(raw, Buffer.from(ramp.buffer));
  for (const [codec, encoding] of [
    ['PCMU', 'u-law'],
    ['PCMA', 'a-law'],
  ] as const) {
    const out = path.join(dir, `${codec}.raw`);
    // -D: no dither, or sox adds noise before quantising.
    execFileSync('sox', ['-D', '-t', 'raw', '-r', '8000', '-e', 'signed', '-b', '16', '-c', '1', raw, '-t', 'raw', '-e', encoding, out], {
      stdio: 'ignore',
    });
    const expected = readFileSync(out);
    const mine = new Uint8Array(ramp.length);
    encodeG711(codec, ramp, mine);
    assert.equal(Buffer.compare(Buffer.from(mine), expected), 0, `${codec} differs from sox`);
    // And sox decodes those bytes to exactly what we decode them to.
    const decodedBySox = path.join(dir, `${codec}.s16`);
    execFileSync('sox', ['-D', '-t', 'raw', '-r', '8000', '-e', encoding, '-c', '1', out, '-t', 'raw', '-e', 'signed', '-b', '16', decodedBySox], {
      stdio: 'ignore',
    });
    const soxPcm = new Int16Array(new Uint8Array(readFileSync(decodedBySox)).buffer);
    const myPcm = new Int16Array(expected.length);
    decodeG711(codec, expected, myPcm);
    assert.deepEqual(myPcm, soxPcm);
  }
});

test('transcoding in place equals decode-then-encode, and leaves bytes outside the range alone', () => {
  const bytes = Uint8Array.from({ length: 260 }, (_, i) => i & 0xff);
  const copy = Uint8Array.from(bytes);
  transcodeG711InPlace('PCMU', 'PCMA', bytes, 2, 256);
  assert.equal(bytes[0], 0);
  assert.equal(bytes[1], 1);
  assert.equal(bytes[258], copy[258]);
  for (let i = 2; i < 258; i++) {
    assert.equal(bytes[i], linearToAlaw(ulawToLinear(copy[i]!)));
  }
  transcodeG711InPlace('PCMA', 'PCMA', bytes, 0, 260); // same law: untouched
  assert.equal(bytes[0], 0);
});
