import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { deleteBinding, loadBindings, upsertBinding, type Binding } from '../../agent/store/bindings.ts';
import { Database, inlineParams, sqlLiteral } from '../../agent/store/db.ts';
import { loadExtensions, syncExtensions } from '../../agent/store/extensions.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { latestSchemaVersion, migrate } from '../../agent/store/migrations.ts';

async function freshDb(): Promise<Database> {
  const db = await Database.open(path.join(mkdtempSync(path.join(tmpdir(), 'bl-store-')), 'store.sqlite'));
  await migrate(db);
  return db;
}

const ext = (number: string) => ({ number, name: null, realm: 'r', ha1_md5: 'a'.repeat(32), ha1_sha256: 'b'.repeat(64) });

function binding(extension: string, contact: string, expiresAt: number): Binding {
  return { extension, contact, instance: null, callId: 'c1', cseq: 1, expiresAt, q: null, source: 'udp:127.0.0.1:5062', path: [], userAgent: 'test', registeredAt: 1 };
}

test('the store opens in WAL mode with full sync and foreign keys', async () => {
  const db = await freshDb();
  assert.equal((await db.get<{ journal_mode: string }>('PRAGMA journal_mode'))?.journal_mode, 'wal');
  assert.equal((await db.get<{ synchronous: number }>('PRAGMA synchronous'))?.synchronous, 2);
  assert.equal((await db.get<{ foreign_keys: number }>('PRAGMA foreign_keys'))?.foreign_keys, 1);
  await db.close();
});

test('migrations run once and record their version', async () => {
  const db = await freshDb();
  assert.deepEqual(await migrate(db), { from: latestSchemaVersion, to: latestSchemaVersion });
  await db.close();
});

test('extensions sync to the config and removing one drops its bindings', async () => {
  const db = await freshDb();
  assert.deepEqual(await syncExtensions(db, [ext('1001'), ext('1002')]), { added: 2, updated: 0, removed: 0 });
  await db.transaction([upsertBinding(binding('1002', 'sip:1002@10.0.0.2', Date.now() + 60_000))]);
  assert.deepEqual(await syncExtensions(db, [ext('1001')]), { added: 0, updated: 0, removed: 1 });
  assert.deepEqual((await loadExtensions(db)).map((e) => e.number), ['1001']);
  assert.equal((await loadBindings(db, Date.now())).live.length, 0);
  await db.close();
});

test('a failed statement in a transaction commits nothing', async () => {
  const db = await freshDb();
  await syncExtensions(db, [ext('1001')]);
  await assert.rejects(
    db.transaction([
      upsertBinding(binding('1001', 'sip:a@h', Date.now() + 60_000)),
      upsertBinding(binding('9999', 'sip:b@h', Date.now() + 60_000)), // no such extension: FK violation
    ]),
  );
  assert.equal((await loadBindings(db, Date.now())).live.length, 0);
  await db.close();
});

test('group commit batches concurrent writes and isolates a bad one', async () => {
  const db = await freshDb();
  await syncExtensions(db, [ext('1001')]);
  const committer = new GroupCommitter(db);
  const future = Date.now() + 60_000;
  const writes = Array.from({ length: 200 }, (_, i) => committer.submit([upsertBinding(binding('1001', `sip:p${i}@h`, future))]));
  const bad = committer.submit([upsertBinding(binding('nope', 'sip:x@h', future))]);
  await Promise.all(writes);
  await assert.rejects(bad);
  assert.equal((await loadBindings(db, Date.now())).live.length, 200);
  assert.ok(committer.stats.batches < 200, `expected batching, got ${committer.stats.batches} batches`);
  await committer.submit([deleteBinding('1001', 'sip:p0@h')]);
  assert.equal((await loadBindings(db, Date.now())).live.length, 199);
  await db.close();
});

test('expired bindings are told apart on load', async () => {
  const db = await freshDb();
  await syncExtensions(db, [ext('1001')]);
  await db.transaction([upsertBinding(binding('1001', 'sip:old@h', Date.now() - 1)), upsertBinding(binding('1001', 'sip:new@h', Date.now() + 60_000))]);
  const { live, expired } = await loadBindings(db, Date.now());
  assert.deepEqual(live.map((b) => b.contact), ['sip:new@h']);
  assert.deepEqual(expired.map((b) => b.contact), ['sip:old@h']);
  await db.close();
});

test('inlined parameters survive quotes, placeholders in strings and injection attempts', async () => {
  const db = await freshDb();
  await syncExtensions(db, [ext('1001')]);
  const hostile = [`it's`, `?`, `'); DROP TABLE bindings; --`, `"quoted" \\ back`, 'ünïcødé ☎'];
  await db.transaction(hostile.map((ua, i) => upsertBinding({ ...binding('1001', `sip:${i}@h?x='?'`, Date.now() + 60_000), userAgent: ua })));
  const { live } = await loadBindings(db, Date.now());
  assert.deepEqual(live.map((b) => b.userAgent).sort(), [...hostile].sort());
  assert.ok(live.some((b) => b.contact === "sip:0@h?x='?'"));
  assert.throws(() => inlineParams('SELECT ?, ?', [1]), /too few parameters/);
  assert.throws(() => inlineParams('SELECT ?', [1, 2]), /2 parameters for 1 placeholders/);
  assert.equal(inlineParams("SELECT '?', ?", [null]), "SELECT '?', NULL");
  assert.throws(() => sqlLiteral('a\0b'), /NUL/);
  await db.close();
});
