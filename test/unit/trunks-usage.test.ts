import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Database } from '../../agent/store/db.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { ChannelAllocator, type PooledChannel } from '../../agent/trunks/channel-allocator.ts';
import { ManualClock } from '../../agent/trunks/clock.ts';
import { ALL_TENANTS, UsageRecorder } from '../../agent/trunks/usage-stats.ts';
import { loadHourlyUsage, usageByHourOfDay, UsagePersister } from '../../agent/trunks/usage-store.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bl-trunk-usage-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const HOUR = 3_600_000;
const DAY0 = Date.UTC(2026, 10, 2); // a Monday, 00:00 UTC

function pri(count: number): PooledChannel[] {
  return Array.from({ length: count }, (_, i) => ({ id: `pri/${i + 1}`, group: 'pri', direction: 'both' as const }));
}

async function storeFile(): Promise<{ db: Database; file: string }> {
  const file = path.join(mkdtempSync(path.join(dir, 'store-')), 'store.sqlite');
  const db = await Database.open(file);
  await migrate(db);
  return { db, file };
}

test('hourly usage (attempts, blocked, queue wait, peak channels) is kept per tenant and for the box in the SQLite file', async () => {
  const { db, file } = await storeFile();
  const clock = new ManualClock(DAY0 + 9 * HOUR); // 09:00
  const recorder = new UsageRecorder();
  const persister = new UsagePersister({ db, recorder, clock, intervalMs: 60_000 });
  persister.start();
  const alloc = new ChannelAllocator({ channels: pri(2), tenants: [{ name: 'acme', callsPerMinute: 6, burst: 3 }], maxWaitMs: 20_000, clock, usage: recorder });

  // 09:00 acme takes both channels, a third call waits 5 s, a fourth waits out the maximum.
  const a1 = await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  const third = alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  const fourthOutcome = alloc.requestOutbound({ tenant: 'globex', groups: ['pri'] }).catch((err: { code: string }) => err.code);
  clock.advance(5_000);
  alloc.release(a1);
  const a3 = await third;
  // acme's burst of 3 is spent: the next attempt is throttled (blocked).
  await assert.rejects(alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }), { code: 'ETHROTTLED' });
  clock.advance(15_000);
  assert.equal(await fourthOutcome, 'EQUEUE_TIMEOUT');
  // An inbound call for globex is refused: both channels are busy.
  assert.throws(() => alloc.acquireInbound({ channel: 'pri/1', tenant: 'globex' }), { code: 'ECHANNEL_UNAVAILABLE' });

  // 10:00 passes with acme's two calls still up (the persister's timer writes meanwhile).
  clock.advance(HOUR);
  alloc.release(a3);
  await persister.stop();
  await db.close();

  // Read back from the file, as a capacity planner would.
  const reopened = await Database.open(file, { readonly: true });
  const rows = await loadHourlyUsage(reopened, { from: DAY0, to: DAY0 + 24 * HOUR });
  const at9 = (tenant: string) => rows.find((r) => r.hourStart === DAY0 + 9 * HOUR && r.tenant === tenant);
  assert.deepEqual(
    { ...at9('acme') },
    { hourStart: DAY0 + 9 * HOUR, tenant: 'acme', attemptsIn: 0, attemptsOut: 4, emergency: 0, blockedIn: 0, blockedOut: 1, queued: 1, queueWaitMs: 5000, queueWaitMaxMs: 5000, peakChannels: 2, preempted: 0 },
  );
  assert.deepEqual(
    { ...at9('globex') },
    { hourStart: DAY0 + 9 * HOUR, tenant: 'globex', attemptsIn: 1, attemptsOut: 1, emergency: 0, blockedIn: 1, blockedOut: 1, queued: 1, queueWaitMs: 20000, queueWaitMaxMs: 20000, peakChannels: 0, preempted: 0 },
  );
  const box9 = at9(ALL_TENANTS);
  assert.equal(box9?.attemptsOut, 5);
  assert.equal(box9?.blockedOut, 2);
  assert.equal(box9?.peakChannels, 2);
  // The calls that were still up at 10:00 count towards that hour's peak.
  const box10 = rows.find((r) => r.hourStart === DAY0 + 10 * HOUR && r.tenant === ALL_TENANTS);
  assert.equal(box10?.peakChannels, 2);
  assert.equal(box10?.attemptsOut, 0);

  const byHour = await usageByHourOfDay(reopened, { from: DAY0, to: DAY0 + 24 * HOUR });
  assert.equal(byHour.length, 24);
  assert.equal(byHour[9]?.attemptsOut, 5);
  assert.equal(byHour[9]?.peakChannels, 2);
  assert.equal(byHour[3]?.samples, 0);
  // In UTC-5 those hours are 04:00 and 05:00 local time.
  const local = await usageByHourOfDay(reopened, { from: DAY0, to: DAY0 + 24 * HOUR, utcOffsetMinutes: -300 });
  assert.equal(local[4]?.attemptsOut, 5);
  await reopened.close();
});

test('usage written in several flushes and on two days adds up; the hour-of-day view sums days and keeps the highest peak', async () => {
  const { db } = await storeFile();
  const clock = new ManualClock(DAY0 + 14 * HOUR);
  const recorder = new UsageRecorder();
  const persister = new UsagePersister({ db, recorder, clock });
  const alloc = new ChannelAllocator({ channels: pri(4), maxWaitMs: 1000, clock, usage: recorder });

  const day1 = await Promise.all([1, 2, 3].map(() => alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] })));
  await persister.flush();
  for (const g of day1) alloc.release(g);
  await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] }).then((g) => alloc.release(g));
  await persister.flush();

  clock.advance(24 * HOUR); // the next day, 14:00
  const day2 = await alloc.requestOutbound({ tenant: 'acme', groups: ['pri'] });
  alloc.release(day2);
  await persister.flush();

  const rows = await loadHourlyUsage(db, { from: DAY0, to: DAY0 + 2 * 24 * HOUR, tenant: 'acme' });
  assert.deepEqual(
    rows.map((r) => [r.hourStart, r.attemptsOut, r.peakChannels]),
    [
      [DAY0 + 14 * HOUR, 4, 3],
      [DAY0 + 38 * HOUR, 1, 1],
    ],
  );
  const byHour = await usageByHourOfDay(db, { from: DAY0, to: DAY0 + 2 * 24 * HOUR, tenant: 'acme' });
  assert.equal(byHour[14]?.attemptsOut, 5);
  assert.equal(byHour[14]?.peakChannels, 3);
  assert.equal(byHour[14]?.samples, 2);
  await db.close();
});

test('a failed write keeps the sums for the next one', async () => {
  const { db, file } = await storeFile();
  const clock = new ManualClock(DAY0);
  const recorder = new UsageRecorder();
  const persister = new UsagePersister({ db, recorder, clock });
  recorder.attempt('acme', 'outbound', true, clock.now());
  await db.close();
  await assert.rejects(persister.flush());
  const again = await Database.open(file);
  const retry = new UsagePersister({ db: again, recorder, clock });
  await retry.flush();
  const rows = await loadHourlyUsage(again, { from: DAY0, to: DAY0 + HOUR, tenant: 'acme' });
  assert.equal(rows[0]?.attemptsOut, 1);
  assert.equal(rows[0]?.emergency, 1);
  await again.close();
});
