// Survivable mode's state machine, driven by a hand-held clock.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WanStateMachine, wanTrouble } from '../../agent/health/wan.ts';

const timings = { enterAfterMs: 2000, returnAfterMs: 120_000 };
const good = { link: 'up', controller: 'online', probes: 'ok' } as const;

function upAndRunning(): WanStateMachine {
  const m = new WanStateMachine(timings, { mode: 'normal', now: 0 });
  assert.equal(m.update(good, 0), undefined);
  return m;
}

test('each bad signal is named as the trouble', () => {
  assert.equal(wanTrouble(good), undefined);
  assert.equal(wanTrouble({ ...good, link: 'down' }), 'MQTT link down');
  assert.equal(wanTrouble({ ...good, probes: 'failed' }), 'WAN probes failing');
  assert.equal(wanTrouble({ ...good, controller: 'offline' }), 'controller offline');
  assert.equal(wanTrouble({ ...good, controller: 'unknown' }), 'controller state unknown');
  // Probes not configured (unknown) do not count against the WAN.
  assert.equal(wanTrouble({ ...good, probes: 'unknown' }), undefined);
});

test('enters survivable mode once trouble has lasted enter_after, not before', () => {
  const m = upAndRunning();
  assert.equal(m.update({ link: 'down' }, 10_000), undefined);
  assert.equal(m.nextDeadline(10_000), 2000);
  assert.equal(m.tick(11_999), undefined);
  assert.deepEqual(m.tick(12_000), { mode: 'survivable', reason: 'MQTT link down', since: 12_000 });
  assert.equal(m.mode, 'survivable');
});

test('a blip shorter than enter_after changes nothing', () => {
  const m = upAndRunning();
  m.update({ controller: 'offline' }, 1000);
  m.update({ controller: 'online' }, 2500);
  assert.equal(m.tick(10_000), undefined);
  assert.equal(m.mode, 'normal');
  assert.equal(m.nextDeadline(10_000), undefined);
});

test('returns only after the WAN was good for return_after without a break', () => {
  const m = upAndRunning();
  m.update({ link: 'down' }, 0);
  m.tick(2000);
  assert.equal(m.mode, 'survivable');
  m.update({ link: 'up' }, 5000);
  assert.equal(m.wanUp, true); // the instant signal is good at once …
  assert.equal(m.tick(124_999), undefined); // … but the mode waits
  // A flap resets the wait.
  m.update({ probes: 'failed' }, 100_000);
  m.update({ probes: 'ok' }, 101_000);
  assert.equal(m.tick(125_000), undefined);
  assert.equal(m.nextDeadline(125_000), 101_000 + 120_000 - 125_000);
  assert.deepEqual(m.tick(221_000), { mode: 'normal', reason: 'WAN stable for 120 s', since: 221_000 });
});

test('starting in survivable mode with a good WAN still waits return_after', () => {
  const m = new WanStateMachine(timings, { mode: 'survivable', now: 0 });
  m.update(good, 1000);
  assert.equal(m.tick(120_000), undefined);
  assert.equal(m.tick(121_000)?.mode, 'normal');
});

test('with zero timings the machine follows the signals at once', () => {
  const m = new WanStateMachine({ enterAfterMs: 0, returnAfterMs: 0 }, { mode: 'normal', now: 0 });
  assert.equal(m.update({ link: 'down' }, 0)?.mode, 'survivable');
  assert.equal(m.update(good, 1)?.mode, 'normal');
});
