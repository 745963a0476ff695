// The voicemail store on a real SQLite file and real files: folders and counts,
// deletion order, the startup scan's cases that the crash tests cannot produce
// (a file with no row, a row whose file is gone, a damaged file), PINs.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { writeWavFile } from '../../agent/media/wav.ts';
import { Database } from '../../agent/store/db.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { migrate } from '../../agent/store/migrations.ts';
import { PinStore } from '../../agent/voicemail/store/pins.ts';
import { reconcile } from '../../agent/voicemail/store/reconcile.ts';
import { VoicemailStoreError } from '../../agent/voicemail/store/types.ts';
import { VoicemailStore } from '../../agent/voicemail/store/voicemail-store.ts';

async function open(t: TestContext): Promise<{ store: VoicemailStore; pins: PinStore; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-store-'));
  const db = await Database.open(path.join(dir, 'branchline.sqlite'));
  await migrate(db);
  const committer = new GroupCommitter(db);
  t.after(async () => {
    await committer.idle();
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    store: new VoicemailStore({ db, committer, root: path.join(dir, 'voicemail') }),
    pins: new PinStore({ db, committer, lockout: { failures: 3, duration: 60 } }),
    dir,
  };
}

async function message(store: VoicemailStore, mailbox: string, seconds = 1): Promise<string> {
  const p = await store.beginDeposit({ mailbox, caller: '1002', reason: 'busy' });
  const w = await writeWavFile(p.file, new Int16Array(8000 * seconds).fill(1000), { encoding: 'ulaw' });
  await store.commitDeposit(p.id, w.durationMs);
  return p.id;
}

test('folders and counts: pending deposits hold a place but are not messages', async (t) => {
  const { store } = await open(t);
  const a = await message(store, '1001');
  const b = await message(store, '1001');
  await store.beginDeposit({ mailbox: '1001', caller: '1003', reason: 'no-answer' });
  assert.deepEqual(await store.counts('1001'), { newMessages: 2, oldMessages: 0, total: 3 });
  await store.move(a, 'Old');
  await store.move(b, 'Saved');
  assert.deepEqual(await store.counts('1001'), { newMessages: 0, oldMessages: 2, total: 3 });
  assert.deepEqual((await store.list('1001')).map((m) => m.folder), ['Old', 'Saved']);
  assert.equal((await store.list('1001', 'INBOX')).length, 0);
});

test('delete removes the file, then the row; bad mailbox names are refused', async (t) => {
  const { store } = await open(t);
  const id = await message(store, '1001');
  const file = (await store.get(id))!.file;
  await store.remove(id);
  await assert.rejects(stat(file), { code: 'ENOENT' });
  assert.equal(await store.get(id), undefined);
  await assert.rejects(store.remove(id), (e: unknown) => e instanceof VoicemailStoreError && e.code === 'ENOMESSAGE');
  assert.throws(() => store.mailboxDir('../etc'), (e: unknown) => e instanceof VoicemailStoreError && e.code === 'EMAILBOX');
});

test('startup scan: a file no row knows is indexed, a row whose file is gone is dropped, a damaged file is left and reported', async (t) => {
  const { store } = await open(t);
  const kept = await message(store, '1001', 2);
  const lost = await message(store, '1001');
  await rm((await store.get(lost))!.file);
  // As if the store had been restored from an older copy: audio with no row.
  const foundId = 'mwabc123-0011223344';
  await mkdir(store.mailboxDir('1002'), { recursive: true });
  await writeWavFile(path.join(store.mailboxDir('1002'), `${foundId}.wav`), new Int16Array(12000).fill(500), { encoding: 'ulaw' });
  const damaged = path.join(store.mailboxDir('1002'), 'mwabc999-5566778899.wav');
  await writeFile(damaged, 'not a wav');
  await writeFile(path.join(store.mailboxDir('1002'), '.x.wav.abcd.tmp'), 'partial');
  await mkdir(path.join(store.mailboxDir('1002'), 'greetings'));
  await writeFile(path.join(store.mailboxDir('1002'), 'greetings', '.take-busy.wav'), 'a take never kept');
  await writeWavFile(path.join(store.mailboxDir('1002'), 'greetings', 'name.wav'), new Int16Array(800));

  const report = await reconcile(store);
  assert.deepEqual(report, { tempFilesRemoved: 2, pendingIndexed: 0, pendingDropped: 0, rowsWithoutFile: 1, filesIndexed: 1, unreadable: [damaged] });
  assert.deepEqual((await store.list('1001')).map((m) => m.id), [kept]);
  const found = await store.list('1002');
  assert.deepEqual(found.map((m) => [m.id, m.folder, m.reason, m.durationMs]), [[foundId, 'INBOX', 'recovered', 1500]]);
  assert.deepEqual((await readdir(store.mailboxDir('1002'))).sort(), ['greetings', `${foundId}.wav`, 'mwabc999-5566778899.wav']);
  assert.deepEqual(await readdir(path.join(store.mailboxDir('1002'), 'greetings')), ['name.wav'], 'a kept greeting stays');
  // A second scan finds nothing more to do.
  assert.deepEqual(await reconcile(store), { tempFilesRemoved: 0, pendingIndexed: 0, pendingDropped: 0, rowsWithoutFile: 0, filesIndexed: 0, unreadable: [damaged] });
});

test('PINs: the config PIN until the owner sets one; a changed config PIN resets it; lockout after repeated failures', async (t) => {
  const { pins } = await open(t);
  assert.equal(await pins.verify('1001', '1234', '1234'), 'ok');
  assert.equal(await pins.verify('1001', '1234', '123'), 'wrong');
  await pins.setPin('1001', '1234', '987654');
  assert.equal(await pins.verify('1001', '1234', '1234'), 'wrong');
  assert.equal(await pins.verify('1001', '1234', '987654'), 'ok', 'a right PIN clears the failure count');
  assert.equal(await pins.verify('1001', '5555', '5555'), 'ok', 'the administrator changed the config PIN');
  assert.equal(await pins.verify('1001', '5555', '987654'), 'wrong');

  const now = 1_000_000;
  assert.equal(await pins.verify('1002', '1234', '0000', now), 'wrong');
  assert.equal(await pins.verify('1002', '1234', '0000', now), 'wrong');
  assert.equal(await pins.verify('1002', '1234', '0000', now), 'locked', 'the third failure locks');
  assert.equal(await pins.verify('1002', '1234', '1234', now + 59_000), 'locked', 'even the right PIN');
  assert.equal(await pins.isLocked('1002', now + 59_000), true);
  assert.equal(await pins.verify('1002', '1234', '1234', now + 61_000), 'ok', 'unlocked after the duration');
});
