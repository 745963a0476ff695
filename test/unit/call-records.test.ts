// The call-record store and the feature-code state on a real SQLite file: what is
// written comes back after the store is closed and reopened, and a record's outbox
// message commits with it or not at all.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, test } from 'node:test';
import type { CallRecord } from '../../agent/calls/call-record.ts';
import { CallRecordError, CallRecordStore, type RecordOutbox } from '../../agent/store/call-records.ts';
import { Database } from '../../agent/store/db.ts';
import { syncExtensions } from '../../agent/store/extensions.ts';
import { FeatureStateStore } from '../../agent/store/feature-state.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { latestSchemaVersion, migrate } from '../../agent/store/migrations.ts';
import { outboxStatements, SqliteOutbox } from '../../agent/sync/outbox.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function open(file: string): Promise<{ db: Database; committer: GroupCommitter; close(): Promise<void> }> {
  const db = await Database.open(file);
  await migrate(db);
  const committer = new GroupCommitter(db);
  return {
    db,
    committer,
    close: async () => {
      await committer.idle();
      await db.close();
    },
  };
}

function storeFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bl-cdr-'));
  dirs.push(dir);
  return path.join(dir, 'branchline.sqlite');
}

/** The outbox side of SyncService, with the kicks it receives recorded. */
function recordingOutbox(boot: string): RecordOutbox & { kicks: string[] } {
  const kicks: string[] = [];
  return { kicks, outboxStatements: (msg) => outboxStatements(boot, msg), kick: (stream) => void kicks.push(String(stream)) };
}

function answeredCall(id: string, startedAt: number): CallRecord {
  return {
    id,
    siteId: 'branch-01',
    caller: '1001',
    callerName: 'Alice',
    dialed: '1002',
    answeredBy: '1002',
    startedAt,
    answeredAt: startedAt + 3_000,
    endedAt: startedAt + 63_000,
    disposition: 'answered',
    emergency: false,
    modeDurations: { bridged: 60_000, application: 0 },
    mediaPolicy: 'direct',
    legs: [
      { leg: 'a', direction: 'inbound', kind: 'sip', party: '1001', callId: 'a-call@10.0.0.1', startedAt, answeredAt: startedAt + 3_000, endedAt: startedAt + 63_000, status: 200, endedBy: 'caller' },
      { leg: 'b1', direction: 'outbound', kind: 'sip', party: '1002', callId: 'b1-call@agent', startedAt: startedAt + 10, answeredAt: startedAt + 3_000, endedAt: startedAt + 63_000, status: 200, endedBy: 'caller' },
    ],
  };
}

function busyCall(id: string, startedAt: number): CallRecord {
  return {
    id,
    siteId: 'branch-01',
    caller: '1001',
    dialed: '1003',
    startedAt,
    endedAt: startedAt + 200,
    disposition: 'busy',
    finalStatus: 486,
    reason: 'SIP;cause=486;text="Busy Here"',
    emergency: false,
    modeDurations: { bridged: 0, application: 0 },
    mediaPolicy: 'anchored',
    legs: [{ leg: 'a', direction: 'inbound', kind: 'sip', party: '1001', startedAt, endedAt: startedAt + 200, status: 486, endedBy: 'system' }],
  };
}

test('migration 3 creates the call and feature tables', async () => {
  const s = await open(storeFile());
  assert.ok(latestSchemaVersion >= 3);
  const tables = (await s.db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")).map((t) => t.name);
  for (const t of ['calls', 'call_legs', 'feature_state']) assert.ok(tables.includes(t), `table ${t} exists`);
  await s.close();
});

test('a written record is read back whole after the store is closed and reopened', async () => {
  const file = storeFile();
  const first = await open(file);
  const records = new CallRecordStore(first.db, first.committer);
  const answered = answeredCall('call-1', 1_700_000_000_000);
  const busy = busyCall('call-2', 1_700_000_100_000);
  await records.write(answered);
  await records.write(busy);
  await first.close();

  const second = await open(file);
  const reopened = new CallRecordStore(second.db, second.committer);
  assert.deepEqual(await reopened.get('call-1'), answered);
  assert.deepEqual(await reopened.get('call-2'), busy);
  assert.equal(await reopened.get('nope'), undefined);
  await second.close();
});

test('list gives calls in start order: the latest N, or the first N from `since`', async () => {
  const s = await open(storeFile());
  const records = new CallRecordStore(s.db, s.committer);
  const t0 = 1_700_000_000_000;
  // Written out of order: a long call ends (and is written) after a later short one.
  for (const i of [3, 1, 4, 0, 2]) await records.write(busyCall(`c${i}`, t0 + i * 1000));
  assert.deepEqual((await records.list()).map((r) => r.id), ['c0', 'c1', 'c2', 'c3', 'c4']);
  assert.deepEqual((await records.list({ limit: 2 })).map((r) => r.id), ['c3', 'c4']);
  assert.deepEqual((await records.list({ since: t0 + 1000, limit: 2 })).map((r) => r.id), ['c1', 'c2']);
  assert.deepEqual((await records.list({ since: t0 + 10_000 })).map((r) => r.id), []);
  assert.equal((await records.list({ since: t0 }))[0]?.legs.length, 1);
  await assert.rejects(records.list({ since: Number.NaN }), { code: 'EINVALID' });
  await s.close();
});

test('the record and its outbox message commit in one transaction', async () => {
  const file = storeFile();
  const s = await open(file);
  const outbox = recordingOutbox('boot-7');
  const records = new CallRecordStore(s.db, s.committer, outbox);
  const record = answeredCall('call-42', 1_700_000_000_000);
  await records.write(record);
  assert.deepEqual(outbox.kicks, ['records']);
  await s.close();

  // After a reopen the message is there, on the `records` stream, carrying the record.
  const again = await open(file);
  const pending = await new SqliteOutbox(again.db, again.committer, 'boot-8').pending('records', 0, 10);
  assert.equal(pending.length, 1);
  assert.equal(pending[0]?.id, 'call-42');
  assert.equal(pending[0]?.type, 'call.record');
  assert.equal(pending[0]?.boot, 'boot-7');
  assert.equal(pending[0]?.seq, 1);
  assert.deepEqual(JSON.parse(pending[0]?.data ?? 'null'), record);
  await again.close();
});

test('when the outbox message cannot be queued the record is not stored either', async () => {
  const s = await open(storeFile());
  // An outbox message with the id the record will use is already queued: the
  // record's message collides, so the whole transaction must roll back.
  await s.committer.submit(outboxStatements('boot-1', { stream: 'events', type: 'x', id: 'call-9', data: {} }).statements);
  const outbox = recordingOutbox('boot-1');
  const records = new CallRecordStore(s.db, s.committer, outbox);
  await assert.rejects(records.write(answeredCall('call-9', 1_700_000_000_000)));
  assert.equal(await records.get('call-9'), undefined);
  assert.equal((await s.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM call_legs'))?.n, 0);
  assert.equal((await s.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM sync_outbox WHERE stream = 'records'"))?.n, 0);
  assert.deepEqual(outbox.kicks, []);
  await s.close();
});

test('a record id is written once; a second write is refused with EDUPLICATE', async () => {
  const s = await open(storeFile());
  const records = new CallRecordStore(s.db, s.committer, recordingOutbox('b'));
  await records.write(busyCall('dup', 1_700_000_000_000));
  await assert.rejects(records.write(busyCall('dup', 1_700_000_000_000)), (err: unknown) => err instanceof CallRecordError && err.code === 'EDUPLICATE');
  assert.equal((await s.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM sync_outbox WHERE stream = 'records'"))?.n, 1);
  await s.close();
});

test('an invalid record is refused with every problem named, and nothing is stored', async () => {
  const s = await open(storeFile());
  const records = new CallRecordStore(s.db, s.committer);
  const bad = { ...busyCall('bad', 1_700_000_000_000), endedAt: 1, disposition: 'lost' } as unknown as CallRecord;
  bad.legs.push({ ...bad.legs[0]!, status: 9 });
  await assert.rejects(records.write(bad), (err: unknown) => {
    assert.ok(err instanceof CallRecordError);
    assert.equal(err.code, 'EINVALID');
    assert.match(err.message, /endedAt is before startedAt/);
    assert.match(err.message, /disposition "lost"/);
    assert.match(err.message, /legs\[1\]\.leg "a" appears twice/);
    assert.match(err.message, /legs\[1\]\.status must be a SIP status/);
    return true;
  });
  assert.equal(await records.get('bad'), undefined);
  await s.close();
});

test('feature-code state survives a restart and is dropped with its extension', async () => {
  const file = storeFile();
  const ext = (number: string) => ({ number, name: null, realm: 'r', ha1_md5: 'a'.repeat(32), ha1_sha256: 'b'.repeat(64) });
  const first = await open(file);
  await syncExtensions(first.db, [ext('1001'), ext('1002')]);
  const state = await FeatureStateStore.load(first.db, first.committer);
  assert.equal(state.get('1001'), undefined);
  await state.set('1001', { dnd: true, forwardAlways: false, forwardNoAnswer: '1002' });
  await state.set('1002', { forwardBusy: '0123456789' });
  await state.set('1002', {}); // back to the config
  assert.deepEqual(state.get('1001'), { dnd: true, forwardAlways: false, forwardNoAnswer: '1002' });
  await first.close();

  const second = await open(file);
  const reloaded = await FeatureStateStore.load(second.db, second.committer);
  assert.deepEqual(reloaded.get('1001'), { dnd: true, forwardAlways: false, forwardNoAnswer: '1002' });
  assert.equal(reloaded.get('1002'), undefined);
  // An extension removed from the config loses its overrides (foreign key cascade).
  await syncExtensions(second.db, [ext('1002')]);
  assert.equal((await FeatureStateStore.load(second.db, second.committer)).get('1001'), undefined);
  // Overrides for an extension the store does not know are refused, and not kept in memory.
  await assert.rejects(reloaded.set('4040', { dnd: true }));
  assert.equal(reloaded.get('4040'), undefined);
  await second.close();
});
