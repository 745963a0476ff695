import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaClock } from '../../agent/media/media-clock.ts';

test('ticks are due on a fixed 20 ms grid and keep up with real time (no drift)', async (t) => {
  const clock = new MediaClock();
  t.after(() => clock.stop());
  const seen: { tick: number; due: number; at: number }[] = [];
  clock.add((tick, due) => seen.push({ tick, due, at: performance.now() }));
  const started = performance.now();
  clock.start();
  await sleep(600);
  const elapsed = performance.now() - started;
  clock.stop();

  // Consecutive ticks, each due exactly one period after the previous one.
  for (let i = 1; i < seen.length; i++) {
    assert.equal(seen[i]!.tick, seen[i - 1]!.tick + 1);
    assert.ok(Math.abs(seen[i]!.due - seen[i - 1]!.due - 20) < 1e-6);
    assert.ok(seen[i]!.at >= seen[i]!.due, 'never dispatched early');
  }
  // As many ticks as 20 ms periods elapsed: lateness did not accumulate.
  assert.ok(Math.abs(seen.length - Math.floor(elapsed / 20)) <= 1, `${seen.length} ticks in ${elapsed.toFixed(1)} ms`);
  const stats = clock.stats();
  assert.equal(stats.ticks, seen.length);
  assert.ok(stats.lateP50Ms <= stats.lateP99Ms && stats.lateP99Ms <= stats.lateMaxMs + 0.1);
});

test('after a stall the clock catches up a few ticks back to back, then skips the rest', async (t) => {
  let offset = 0;
  const clock = new MediaClock({ maxCatchUpTicks: 5, now: () => performance.now() + offset });
  t.after(() => clock.stop());
  const ticks: number[] = [];
  clock.add((tick) => ticks.push(tick));
  clock.start();
  await sleep(110);
  const before = ticks.length;
  offset += 200; // as if the event loop had been blocked for 200 ms
  await sleep(45);
  clock.stop();
  const stats = clock.stats();
  // 10 periods passed in the stall: 5 delivered at once, 5 skipped (±1 for timing).
  assert.ok(stats.skippedTicks >= 4 && stats.skippedTicks <= 6, `skipped ${stats.skippedTicks}`);
  assert.ok(stats.lateMaxMs >= 80, `the catch-up ticks were late: ${stats.lateMaxMs}`);
  // Ticks stay strictly increasing, with one jump where the skip happened.
  const jumps = ticks.slice(1).map((n, i) => n - ticks[i]!).filter((d) => d !== 1);
  assert.equal(jumps.length, 1, `ticks ${ticks.join(',')}`);
  assert.ok(ticks.length > before + 5);
});

test('a listener that throws is reported and the others still tick', async (t) => {
  const clock = new MediaClock();
  t.after(() => clock.stop());
  const errors: unknown[] = [];
  let good = 0;
  clock.add(() => {
    throw new Error('boom');
  });
  const remove = clock.add(() => good++);
  clock.start((err) => errors.push(err));
  await sleep(70);
  remove();
  const after = good;
  await sleep(45);
  clock.stop();
  assert.ok(good >= 2, `good listener ran ${good} times`);
  assert.equal(good, after, 'a removed listener no longer runs');
  assert.ok(errors.length >= 2);
});

test('without listeners the clock arms no timer; the first listener resumes it on the same grid', async (t) => {
  const clock = new MediaClock();
  t.after(() => clock.stop());
  const started = performance.now();
  clock.start();
  await sleep(100);
  assert.equal(clock.stats().ticks, 0, 'nobody listened: no tick dispatched or counted');
  assert.equal(clock.stats().skippedTicks, 0);
  const first: { tick: number; due: number }[] = [];
  const remove = clock.add((tick, due) => first.push({ tick, due }));
  await sleep(70);
  remove();
  await sleep(100); // idle again: the timer stops after at most one more tick
  const second: { tick: number; due: number }[] = [];
  clock.add((tick, due) => second.push({ tick, due }));
  await sleep(70);
  clock.stop();
  assert.ok(first.length >= 2 && second.length >= 2, `${first.length} and ${second.length} ticks`);
  for (const { tick, due } of [...first, ...second]) {
    // Tick k is still due at start + k·20 ms: numbering follows time across the idle spans.
    assert.ok(Math.abs(due - clock.dueAt(tick)) < 1e-6);
    assert.ok(due >= started + 80 || tick >= 4, `tick ${tick} resumed from the grid, not from 1`);
  }
  assert.ok(second[0]!.tick > first.at(-1)!.tick + 4, 'the idle ticks were passed over, not delivered late');
  assert.equal(clock.stats().skippedTicks, 0, 'nor counted as skipped');
  assert.equal(clock.stats().ticks, first.length + second.length);
});
