// One contract for every implementation of the controller's fleet store (SQLite,
// PostgreSQL): what branchctl and the sites rely on, including two controller
// instances writing to the same store at once.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { UpMessage } from '../../agent/sync/protocol.ts';
import type { FleetStore } from '../../controller/fleet-store.ts';

export interface StoreFixture {
  /** Opens the store (again: the same data) — a controller instance. */
  open(): Promise<FleetStore>;
  cleanup(): Promise<void>;
}

function up(site: string, stream: UpMessage['stream'], seq: number, data: unknown, id = `${site}-${stream}-${seq}`): UpMessage {
  return { v: 1, id, stream, seq, boot: 'boot-1', ts: 1_700_000_000_000 + seq, site, type: stream === 'records' ? 'call.record' : stream, data };
}

export function fleetStoreContract(name: string, fixture: () => Promise<StoreFixture>): void {
  describe(`fleet store contract: ${name}`, () => {
    test('ingest stores each message once, lists a stream in seq order, keeps only the latest telemetry', async () => {
      const fx = await fixture();
      const store = await fx.open();
      try {
        const first = await store.ingest([up('s1', 'records', 2, { call: 'b' }), up('s1', 'records', 1, { call: 'a', n: [1, 2] }), up('s1', 'events', 1, { e: 1 }), up('s1', 'telemetry', 1, { cpu: 1 })]);
        assert.deepEqual(first, { inserted: 3, duplicates: 0 });
        const again = await store.ingest([up('s1', 'records', 1, { call: 'a' }), up('s1', 'records', 3, { call: 'c' }), up('s1', 'telemetry', 2, { cpu: 2 })]);
        assert.deepEqual(again, { inserted: 1, duplicates: 1 });
        const rows = await store.messages('s1', 'records');
        assert.deepEqual(rows.map((r) => [r.id, r.seq, r.type, r.data]), [
          ['s1-records-1', 1, 'call.record', { call: 'a', n: [1, 2] }],
          ['s1-records-2', 2, 'call.record', { call: 'b' }],
          ['s1-records-3', 3, 'call.record', { call: 'c' }],
        ]);
        assert.deepEqual((await store.messages('s1', 'records', { afterSeq: 1, limit: 1 })).map((r) => r.seq), [2]);
        assert.equal(typeof rows[0]?.ts, 'number');
        assert.equal(await store.count('s1', 'records'), 3);
        assert.equal(await store.count('s1', 'telemetry'), 0);
        assert.deepEqual(await store.telemetry('s1'), { cpu: 2 });
        // An older sample arriving late does not replace a newer one.
        await store.ingest([up('s1', 'telemetry', 0, { cpu: 0 }, 'late')]);
        assert.deepEqual(await store.telemetry('s1'), { cpu: 2 });
      } finally {
        await store.close();
        await fx.cleanup();
      }
    });

    test('ingest keeps data exactly: quotes, escapes, large rows (a voicemail) beside small ones; duplicates counted', async () => {
      const fx = await fixture();
      const store = await fx.open();
      try {
        const audio = Buffer.alloc(60_000, 0xab).toString('base64');
        const odd = { note: "it's \"quoted\" -- ; DROP TABLE messages; '", ctl: '\u0000\n\t\\', uni: 'é☎' };
        const batch = [up('s2', 'records', 1, odd), up('s2', 'voicemail', 1, { audio }), up('s2', 'records', 2, { n: 2 })];
        assert.deepEqual(await store.ingest(batch), { inserted: 3, duplicates: 0 });
        assert.deepEqual(await store.ingest([...batch, up('s2', 'records', 3, { n: 3 })]), { inserted: 1, duplicates: 3 });
        assert.deepEqual(await store.ingest([up('s2', 'records', 1, odd), up('s2', 'records', 4, { n: 4 })]), { inserted: 1, duplicates: 1 });
        assert.deepEqual((await store.messages('s2', 'records')).map((r) => r.data), [odd, { n: 2 }, { n: 3 }, { n: 4 }]);
        assert.deepEqual((await store.messages('s2', 'voicemail')).map((r) => r.data), [{ audio }]);
      } finally {
        await store.close();
        await fx.cleanup();
      }
    });

    test('site states, reported and desired config; versions conflict when stale', async () => {
      const fx = await fixture();
      const store = await fx.open();
      try {
        await store.setSiteState({ site: 's2', state: 'survivable', agent: '0.1.0', boot: 'b-9', config_version: 0, since: 1000 }, 2000);
        assert.deepEqual(await store.pushDesired('s2', { a: 1 }), { version: 1 });
        assert.deepEqual(await store.pushDesired('s2', { a: 2 }, 1), { version: 2 });
        assert.deepEqual(await store.pushDesired('s2', { a: 3 }, 1), { conflict: 2 });
        assert.deepEqual(await store.desired('s2'), { version: 2, config: { a: 2 } });
        assert.equal(await store.desired('nobody'), undefined);
        await store.setReported('s2', 2, { status: 'applied' });
        await store.ingest([up('s2', 'records', 1, {})]);
        const [row] = (await store.sites()).filter((s) => s.site === 's2');
        assert.deepEqual({ ...row, last_seen: typeof row?.last_seen }, { site: 's2', state: 'survivable', config_version: 2, desired_version: 2, records: 1, agent: '0.1.0', boot: 'b-9', last_seen: 'number', state_since: 1000 });
      } finally {
        await store.close();
        await fx.cleanup();
      }
    });

    test('two instances on one store: concurrent pushes get distinct versions, overlapping batches are stored once, data survives a reopen', async () => {
      const fx = await fixture();
      const [one, two] = await Promise.all([fx.open(), fx.open()]);
      try {
        const pushes = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? one : two).pushDesired('s3', { i })));
        assert.deepEqual(pushes.map((p) => ('version' in p ? p.version : -1)).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
        // Each instance gets part of a burst, with resends overlapping: 300 distinct ids.
        const batch = (from: number, to: number): UpMessage[] => Array.from({ length: to - from }, (_, i) => up('s3', 'records', from + i + 1, { i: from + i }));
        const results = await Promise.all([one.ingest(batch(0, 200)), two.ingest(batch(100, 300)), one.ingest(batch(150, 250)), two.ingest(batch(0, 50))]);
        assert.equal(results.reduce((a, r) => a + r.inserted, 0), 300);
        assert.equal(await one.count('s3', 'records'), 300);
      } finally {
        await one.close();
        await two.close();
      }
      const again = await fx.open();
      try {
        assert.equal(await again.count('s3', 'records'), 300);
        assert.equal((await again.desired('s3'))?.version, 20);
      } finally {
        await again.close();
        await fx.cleanup();
      }
    });
  });
}
