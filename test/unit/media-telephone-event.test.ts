import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MediaArgumentError } from '../../agent/media/errors.ts';
import {
  digitToEvent,
  eventToDigit,
  readTelephoneEvent,
  TelephoneEventReceiver,
  TelephoneEventSender,
  writeTelephoneEvent,
  type DigitEvent,
} from '../../agent/media/telephone-event.ts';

test('digits map to RFC 4733 event codes and back', () => {
  assert.deepEqual([...'0123456789*#ABCD'].map(digitToEvent), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  assert.equal(digitToEvent('a'), 12);
  assert.equal(eventToDigit(11), '#');
  assert.equal(eventToDigit(16), undefined); // flash is not a digit
  assert.throws(() => digitToEvent('E'), MediaArgumentError);
  assert.throws(() => digitToEvent('12'), MediaArgumentError);
});

test('payload bytes: event, E bit, volume, duration', () => {
  const buf = new Uint8Array(4);
  writeTelephoneEvent(buf, 0, { event: 11, end: true, volume: 10, duration: 800 });
  assert.equal(Buffer.from(buf).toString('hex'), '0b8a0320');
  assert.deepEqual(readTelephoneEvent(buf, 0, 4), { event: 11, end: true, volume: 10, duration: 800 });
  assert.equal(readTelephoneEvent(buf, 0, 3), undefined);
});

test('sender: marker on the first packet, growing duration, end sent three times, same timestamp', () => {
  const sender = new TelephoneEventSender(160);
  sender.begin(5, 800, 10, 123456); // 100 ms
  const packets = [];
  for (let p = sender.next(); p; p = sender.next()) packets.push(p);
  const bytes = packets.map((p) => {
    const b = new Uint8Array(4);
    writeTelephoneEvent(b, 0, p.payload);
    return Buffer.from(b).toString('hex');
  });
  assert.deepEqual(bytes, [
    '050a00a0', // 160
    '050a0140', // 320
    '050a01e0', // 480
    '050a0280', // 640
    '058a0320', // 800, E
    '058a0320',
    '058a0320',
  ]);
  assert.deepEqual(
    packets.map((p) => p.marker),
    [true, false, false, false, false, false, false],
  );
  assert.ok(packets.every((p) => p.timestamp === 123456));
  assert.equal(sender.active, false);
});

test('sender: an event shorter than a frame is one frame long, ends at once', () => {
  const sender = new TelephoneEventSender(160);
  sender.begin(1, 40, 10, 0);
  const packets = [];
  for (let p = sender.next(); p; p = sender.next()) packets.push(p);
  assert.deepEqual(
    packets.map((p) => [p.marker, p.payload.end, p.payload.duration]),
    [
      [true, true, 160],
      [false, true, 160],
      [false, true, 160],
    ],
  );
});

test('receiver: one digit per press despite the three end packets and late updates', () => {
  const digits: DigitEvent[] = [];
  const rx = new TelephoneEventReceiver((e) => digits.push(e));
  const ts = 8000;
  for (let i = 1; i <= 4; i++) rx.push(ts, { event: 3, end: false, volume: 10, duration: 160 * i }, i * 20);
  for (let i = 0; i < 3; i++) rx.push(ts, { event: 3, end: true, volume: 10, duration: 800 }, 100 + i * 20);
  rx.push(ts, { event: 3, end: false, volume: 10, duration: 640 }, 170); // reordered straggler
  assert.deepEqual(digits, [{ digit: '3', durationMs: 100, source: 'rfc4733', endedBy: 'end' }]);
  assert.equal(rx.duplicates, 3);
});

test('receiver: the same key pressed twice is two digits (different timestamps)', () => {
  const digits: string[] = [];
  const rx = new TelephoneEventReceiver((e) => digits.push(e.digit));
  rx.push(1000, { event: 7, end: true, volume: 10, duration: 640 }, 0);
  rx.push(3000, { event: 7, end: true, volume: 10, duration: 640 }, 250);
  assert.deepEqual(digits, ['7', '7']);
});

test('receiver: all end packets lost — the digit still ends, by the next event or by timeout', () => {
  const digits: DigitEvent[] = [];
  const rx = new TelephoneEventReceiver((e) => digits.push(e), { timeoutMs: 300 });
  rx.push(1000, { event: 1, end: false, volume: 10, duration: 320 }, 0);
  rx.push(5000, { event: 2, end: false, volume: 10, duration: 160 }, 500);
  assert.deepEqual(digits.map((d) => [d.digit, d.endedBy]), [['1', 'next-event']]);
  rx.poll(700);
  assert.equal(digits.length, 1);
  rx.poll(801);
  assert.deepEqual(digits.map((d) => [d.digit, d.endedBy, d.durationMs]), [
    ['1', 'next-event', 40],
    ['2', 'timeout', 20],
  ]);
});
