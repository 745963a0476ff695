// The echo test's source: what the caller said comes back in order, silence fills
// the gaps, and a caller whose stream outpaces ours cannot grow memory.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EchoSource } from '../../agent/calls/feature-target.ts';
import { FRAME_SAMPLES } from '../../agent/media/g711.ts';

function ramp(from: number, count: number): Int16Array {
  return Int16Array.from({ length: count }, (_, i) => from + i);
}

test('plays back the samples pushed, in order, then silence until more arrive', () => {
  const echo = new EchoSource();
  echo.push(ramp(1, FRAME_SAMPLES + 40));
  const frame = new Int16Array(FRAME_SAMPLES);
  assert.equal(echo.read(frame), true);
  assert.deepEqual(Array.from(frame), Array.from(ramp(1, FRAME_SAMPLES)));
  assert.equal(echo.read(frame), true);
  assert.deepEqual(Array.from(frame.subarray(0, 40)), Array.from(ramp(FRAME_SAMPLES + 1, 40)));
  assert.ok(frame.subarray(40).every((s) => s === 0), 'the rest of the frame is silence');
  assert.equal(echo.read(frame), true);
  assert.ok(frame.every((s) => s === 0), 'nothing pushed: a silent frame, the call stays up');
});

test('keeps at most one second: the oldest audio goes first', () => {
  const echo = new EchoSource();
  echo.push(ramp(0, 8000));
  echo.push(ramp(8000, 100));
  const frame = new Int16Array(FRAME_SAMPLES);
  echo.read(frame);
  assert.equal(frame[0], 100, 'the first 100 samples were dropped to make room');
});

test('ends when told to', () => {
  const echo = new EchoSource();
  echo.push(ramp(1, 10));
  echo.end();
  assert.equal(echo.read(new Int16Array(FRAME_SAMPLES)), false);
});
