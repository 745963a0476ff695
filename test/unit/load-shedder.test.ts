// The registrar's load-shedding rule and its episodes (agent/registrar/load-shedder.ts).
// The signals come from the real event loop; pending writes from a counter the test sets.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoadShedder, overloadLevel, type EpisodeReport, type OverloadSettings } from '../../agent/registrar/load-shedder.ts';

const limits: OverloadSettings = { max_utilization: 0.98, max_event_loop_lag_ms: 500, max_pending_writes: 100, retry_after: 10 };

test('each signal past its bound sheds new REGISTERs; lag or pending writes past twice their bound shed every REGISTER', () => {
  assert.equal(overloadLevel({ utilization: 0.5, lagMs: 20, pendingWrites: 10 }, limits), 'normal');
  assert.equal(overloadLevel({ utilization: 0.99, lagMs: 20, pendingWrites: 10 }, limits), 'shed-new');
  assert.equal(overloadLevel({ utilization: 0.5, lagMs: 600, pendingWrites: 10 }, limits), 'shed-new');
  assert.equal(overloadLevel({ utilization: 0.5, lagMs: 20, pendingWrites: 150 }, limits), 'shed-new');
  assert.equal(overloadLevel({ utilization: 0.5, lagMs: 1100, pendingWrites: 10 }, limits), 'shed-all');
  assert.equal(overloadLevel({ utilization: 1, lagMs: 20, pendingWrites: 201 }, limits), 'shed-all');
});

test('a bound of 0 turns its signal off', () => {
  const off: OverloadSettings = { max_utilization: 0, max_event_loop_lag_ms: 0, max_pending_writes: 0, retry_after: 10 };
  assert.equal(overloadLevel({ utilization: 1, lagMs: 10_000, pendingWrites: 1_000_000 }, off), 'normal');
});

test('shedding spares REGISTERs with credentials until the store is twice over its bound, and reports one episode', async () => {
  let pending = 0;
  const reports: EpisodeReport[] = [];
  const shedder = new LoadShedder({ ...limits, max_utilization: 0, max_event_loop_lag_ms: 0 }, () => pending, (r) => reports.push(r));
  shedder.start();
  try {
    assert.equal(shedder.shouldShed(false), false);
    pending = 150;
    assert.equal(shedder.shouldShed(false), true, 'a new REGISTER is shed while the store is behind');
    assert.equal(shedder.shouldShed(true), false, 'one with credentials is still served');
    pending = 250;
    assert.equal(shedder.shouldShed(true), true, 'past twice the bound every REGISTER is shed');
    assert.equal(shedder.shedTotal, 2);
    assert.deepEqual(reports.map((r) => r.phase), ['started']);
    assert.equal(reports[0]?.pendingWrites, 150);

    pending = 0;
    // The episode ends (one line) once everything is let through again for a second.
    await new Promise((r) => setTimeout(r, 1400));
    assert.equal(shedder.shouldShed(false), false, 'served again once the store caught up');
    assert.deepEqual(reports.map((r) => r.phase), ['started', 'ended']);
    assert.equal(reports[1]?.shed, 2);
    assert.equal(reports[1]?.level, 'shed-all');
  } finally {
    shedder.stop();
  }
});

test('a busy event loop lowers the share of new REGISTERs let through, never to zero, and it recovers', async () => {
  const shedder = new LoadShedder({ ...limits, max_utilization: 0.5, max_event_loop_lag_ms: 0, max_pending_writes: 0 }, () => 0, () => undefined);
  shedder.start();
  try {
    // Keep the loop ~90 % busy for 2 s in 20 ms slices, as a flood of requests would.
    const until = performance.now() + 2000;
    while (performance.now() < until) {
      const sliceEnd = performance.now() + 18;
      while (performance.now() < sliceEnd);
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.ok(shedder.admitted < 0.5, `admitted ${shedder.admitted}`);
    assert.ok(shedder.admitted >= 0.05);
    const decisions = Array.from({ length: 400 }, () => shedder.shouldShed(false));
    const shed = decisions.filter(Boolean).length;
    assert.ok(shed > 200 && shed < 400, `${shed} of 400 new REGISTERs shed`);
    assert.equal(shedder.shouldShed(true), false, 'REGISTERs with credentials are served');
    // Idle again: a second of a quiet loop lets everything through at once.
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(shedder.admitted, 1);
  } finally {
    shedder.stop();
  }
});

test('Retry-After is spread between the setting and twice it', () => {
  const shedder = new LoadShedder(limits, () => 0, () => undefined);
  const values = new Set(Array.from({ length: 200 }, () => shedder.retryAfter()));
  for (const v of values) assert.ok(v >= 10 && v < 20, `Retry-After ${v}`);
  assert.ok(values.size > 3, 'values are spread');
});
