// The outbox contract (STYLE.md #11): one suite, run against the in-memory and the
// SQLite implementation; then what only the SQLite one promises (durability, the
// same transaction as the record it carries).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Database } from '../../agent/store/db.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { MemoryOutbox, outboxStatements, SqliteOutbox, type Outbox } from '../../agent/sync/outbox.ts';

interface Harness {
  outbox: Outbox;
  close(): Promise<void>;
}

async function sqliteHarness(dir = mkdtempSync(path.join(tmpdir(), 'bl-outbox-'))): Promise<Harness & { db: Database; committer: GroupCommitter; dir: string }> {
  const db = await Database.open(path.join(dir, 'store.sqlite'));
  await migrate(db);
  const committer = new GroupCommitter(db);
  return {
    db,
    committer,
    dir,
    outbox: new SqliteOutbox(db, committer, 'boot-1'),
    close: async () => {
      await committer.idle();
      await db.close();
    },
  };
}

const implementations: Array<[string, () => Promise<Harness>]> = [
  ['MemoryOutbox', async () => ({ outbox: new MemoryOutbox('boot-1'), close: async () => undefined })],
  [
    'SqliteOutbox',
    async () => {
      const h = await sqliteHarness();
      return {
        outbox: h.outbox,
        close: async () => {
          await h.close();
          rmSync(h.dir, { recursive: true, force: true });
        },
      };
    },
  ],
];

for (const [name, make] of implementations) {
  describe(`outbox contract: ${name}`, () => {
    test('messages come back in seq order per stream, seq contiguous from 1, data intact', async () => {
      const h = await make();
      for (let i = 0; i < 5; i++) await h.outbox.add({ stream: 'records', type: 'call.record', data: { n: i, text: 'ü' } });
      await h.outbox.add({ stream: 'events', type: 'registration.added', data: { extension: '1001' } });
      const rows = await h.outbox.pending('records', 0, 100);
      assert.deepEqual(rows.map((r) => r.seq), [1, 2, 3, 4, 5]);
      assert.deepEqual(rows.map((r) => JSON.parse(r.data) as unknown), [0, 1, 2, 3, 4].map((n) => ({ n, text: 'ü' })));
      assert.ok(rows.every((r) => r.stream === 'records' && r.type === 'call.record' && r.boot === 'boot-1'));
      assert.equal(new Set(rows.map((r) => r.id)).size, 5);
      const events = await h.outbox.pending('events', 0, 100);
      assert.deepEqual(events.map((r) => r.seq), [1]);
      await h.close();
    });

    test('pending pages after a seq and honours the limit', async () => {
      const h = await make();
      for (let i = 0; i < 10; i++) await h.outbox.add({ stream: 'records', type: 't', data: i });
      assert.deepEqual((await h.outbox.pending('records', 3, 4)).map((r) => r.seq), [4, 5, 6, 7]);
      assert.deepEqual((await h.outbox.pending('records', 10, 4)).map((r) => r.seq), []);
      await h.close();
    });

    test('an ack removes exactly those ids; unknown and repeated ids are ignored; seq never reused', async () => {
      const h = await make();
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push((await h.outbox.add({ stream: 'records', type: 't', data: i })).id);
      await h.outbox.ack([ids[0] as string, ids[2] as string, 'no-such-id']);
      await h.outbox.ack([ids[0] as string]);
      assert.deepEqual((await h.outbox.pending('records', 0, 10)).map((r) => r.id), [ids[1], ids[3]]);
      await h.outbox.ack([ids[1] as string, ids[3] as string]);
      await h.outbox.add({ stream: 'records', type: 't', data: 'after' });
      assert.deepEqual((await h.outbox.pending('records', 0, 10)).map((r) => r.seq), [5]);
      await h.close();
    });

    test('an id given by the caller is kept', async () => {
      const h = await make();
      await h.outbox.add({ stream: 'events', type: 't', data: null, id: 'my-id-1' });
      assert.equal((await h.outbox.pending('events', 0, 1))[0]?.id, 'my-id-1');
      await h.close();
    });

    test('depth counts messages and bytes per stream', async () => {
      const h = await make();
      await h.outbox.add({ stream: 'records', type: 't', data: 'abc' }); // "abc" = 5 bytes of JSON
      await h.outbox.add({ stream: 'telemetry', type: 't', data: 12 }); // 2 bytes
      const d = await h.outbox.depth();
      assert.deepEqual(d.records, { count: 1, bytes: 5 });
      assert.deepEqual(d.telemetry, { count: 1, bytes: 2 });
      assert.deepEqual(d.events, { count: 0, bytes: 0 });
      assert.deepEqual(d.voicemail, { count: 0, bytes: 0 });
      await h.close();
    });

    test('over quota: oldest telemetry goes first, then events; records and voicemail never', async () => {
      const h = await make();
      const blob = 'x'.repeat(98); // 100 bytes as JSON
      for (let i = 0; i < 3; i++) await h.outbox.add({ stream: 'records', type: 't', data: blob });
      for (let i = 0; i < 2; i++) await h.outbox.add({ stream: 'voicemail', type: 't', data: blob });
      for (let i = 0; i < 4; i++) await h.outbox.add({ stream: 'events', type: 't', data: blob });
      for (let i = 0; i < 4; i++) await h.outbox.add({ stream: 'telemetry', type: 't', data: blob });
      // 1300 bytes queued; a 1000-byte quota costs the 3 oldest telemetry messages.
      const first = await h.outbox.shed(1000);
      assert.deepEqual(first, { shed: { telemetry: 3 }, bytes: 1000 });
      assert.deepEqual((await h.outbox.pending('telemetry', 0, 10)).map((r) => r.seq), [4]);
      // 400 bytes: all telemetry and all events go, records and voicemail stay.
      const second = await h.outbox.shed(400);
      assert.deepEqual(second, { shed: { telemetry: 1, events: 4 }, bytes: 500 });
      const d = await h.outbox.depth();
      assert.equal(d.records.count, 3);
      assert.equal(d.voicemail.count, 2);
      assert.equal(d.events.count + d.telemetry.count, 0);
      await h.close();
    });
  });
}

describe('SQLite outbox only', () => {
  test('queued messages survive closing and reopening the store', async () => {
    const h = await sqliteHarness();
    for (let i = 0; i < 3; i++) await h.outbox.add({ stream: 'records', type: 't', data: i });
    await h.close();
    const again = await sqliteHarness(h.dir);
    assert.deepEqual((await again.outbox.pending('records', 0, 10)).map((r) => JSON.parse(r.data) as unknown), [0, 1, 2]);
    await again.outbox.add({ stream: 'records', type: 't', data: 3 });
    assert.deepEqual((await again.outbox.pending('records', 0, 10)).map((r) => r.seq), [1, 2, 3, 4]);
    await again.close();
    rmSync(h.dir, { recursive: true, force: true });
  });

  test('the message rides in the same transaction as its record: both commit or neither', async () => {
    const h = await sqliteHarness();
    await h.db.exec('CREATE TABLE test_records (id TEXT PRIMARY KEY, body TEXT NOT NULL)');
    const ok = outboxStatements('boot-1', { stream: 'records', type: 'call.record', data: { call: 'c1' } });
    await h.committer.submit([{ sql: 'INSERT INTO test_records (id, body) VALUES (?, ?)', params: ['c1', 'x'] }, ...ok.statements]);
    // A record that fails (duplicate key) takes its outbox message down with it.
    const bad = outboxStatements('boot-1', { stream: 'records', type: 'call.record', data: { call: 'c1-again' } });
    await assert.rejects(h.committer.submit([{ sql: 'INSERT INTO test_records (id, body) VALUES (?, ?)', params: ['c1', 'y'] }, ...bad.statements]));
    const rows = await h.outbox.pending('records', 0, 10);
    assert.deepEqual(rows.map((r) => r.id), [ok.id]);
    // The failed batch did not consume a sequence number either.
    const next = outboxStatements('boot-1', { stream: 'records', type: 'call.record', data: { call: 'c2' } });
    await h.committer.submit(next.statements);
    assert.deepEqual((await h.outbox.pending('records', 0, 10)).map((r) => r.seq), [1, 2]);
    await h.close();
    rmSync(h.dir, { recursive: true, force: true });
  });

  test('acks of thousands of ids go through in one call', async () => {
    const h = await sqliteHarness();
    const ids: string[] = [];
    const statements = [];
    for (let i = 0; i < 2000; i++) {
      const s = outboxStatements('boot-1', { stream: 'records', type: 't', data: i });
      ids.push(s.id);
      statements.push(...s.statements);
    }
    await h.committer.submit(statements);
    assert.equal((await h.outbox.depth()).records.count, 2000);
    await h.outbox.ack(ids.slice(0, 1500));
    assert.equal((await h.outbox.depth()).records.count, 500);
    assert.equal((await h.outbox.pending('records', 0, 1))[0]?.seq, 1501);
    await h.close();
    rmSync(h.dir, { recursive: true, force: true });
  });
});
