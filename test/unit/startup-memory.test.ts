import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Logger } from 'pino';
import { releaseStartupMemory } from '../../agent/runtime/startup-memory.ts';

function recorder(): { logger: Logger; events: Array<Record<string, unknown>> } {
  const events: Array<Record<string, unknown>> = [];
  const logger = { info: (obj: Record<string, unknown>) => events.push(obj) } as unknown as Logger;
  return { logger, events };
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('once idle after start: one memory-reducing collection, the young generation given back', async () => {
  // Garbage and a grown young generation, as start-up leaves them.
  let keep: unknown[] = [];
  for (let i = 0; i < 200_000; i++) keep.push({ i, s: `x${i}` });
  keep = [];
  const { logger, events } = recorder();
  // maxUtilization 1: never "busy" here (the test runner's own start-up is not the point).
  releaseStartupMemory(logger, { delayMs: 50, maxUtilization: 1 });
  await settle(400);
  assert.equal(events.length, 1);
  const e = events[0]!;
  assert.equal(e['event'], 'memory.startup_released');
  const [before, after] = e['heapMb'] as [number, number];
  assert.ok(after <= before, `heap ${before} -> ${after} MB`);
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'gc() is not exposed to the agent');
  assert.equal(keep.length, 0);
});

test('a busy agent is left alone; after the last try it says so and does nothing', async () => {
  const { logger, events } = recorder();
  // Utilization is never below -1: every try finds the agent "busy".
  releaseStartupMemory(logger, { delayMs: 10, retryMs: 10, attempts: 3, maxUtilization: -1 });
  await settle(300);
  assert.deepEqual(events.map((e) => e['event']), ['memory.startup_release_skipped']);
});

test('cancelled before it runs (the agent stops): nothing happens', async () => {
  const { logger, events } = recorder();
  const cancel = releaseStartupMemory(logger, { delayMs: 50 });
  cancel();
  await settle(200);
  assert.equal(events.length, 0);
});

test('not while a call is up: it waits until the calls have ended', async () => {
  const { logger, events } = recorder();
  let calls = 1;
  releaseStartupMemory(logger, { delayMs: 10, retryMs: 30, attempts: 20, maxUtilization: 1, busy: () => calls > 0 });
  await settle(120);
  assert.equal(events.length, 0, 'a call is up');
  calls = 0;
  await settle(200);
  assert.deepEqual(events.map((e) => e['event']), ['memory.startup_released']);
});
