// Syncing the config's extensions into SQLite (agent/store/extensions.ts) on a real
// database file: in chunks of many rows per statement, and with a shortcut when the
// table already matches (a restart with an unchanged config).
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Database } from '../../agent/store/db.ts';
import { loadExtensions, syncExtensions, type StoredExtension } from '../../agent/store/extensions.ts';
import { migrate } from '../../agent/store/migrations.ts';

async function freshDb(): Promise<Database> {
  const db = await Database.open(path.join(mkdtempSync(path.join(tmpdir(), 'bl-ext-')), 'store.sqlite'));
  await migrate(db);
  return db;
}

function ext(n: number, name: string | null = null, ha1 = 'a'): StoredExtension {
  return { number: String(n), name, realm: 'branch.test', ha1_md5: ha1.repeat(32), ha1_sha256: 'b'.repeat(64) };
}

test('hundreds of extensions are added, left alone when unchanged, updated and removed as the config says', async () => {
  const db = await freshDb();
  try {
    const first = Array.from({ length: 600 }, (_, i) => ext(2000 + i, i % 3 === 0 ? `Phone ${i}` : null));
    assert.deepEqual(await syncExtensions(db, first), { added: 600, updated: 0, removed: 0 });
    assert.deepEqual(await loadExtensions(db), [...first].sort((a, b) => a.number.localeCompare(b.number)));
    assert.deepEqual(await syncExtensions(db, [...first].reverse()), { added: 0, updated: 0, removed: 0 }, 'order in the config does not matter');

    const second = first.slice(0, 300).map((e, i) => (i === 5 ? { ...e, name: "O'Brien; DROP TABLE extensions" } : i === 6 ? { ...e, ha1_md5: 'c'.repeat(32) } : i === 9 ? { ...e, name: '' } : e));
    second.push(ext(9000, 'New'));
    assert.deepEqual(await syncExtensions(db, second), { added: 1, updated: 3, removed: 300 });
    const stored = await loadExtensions(db);
    assert.equal(stored.length, 301);
    assert.deepEqual(new Map(stored.map((e) => [e.number, e])), new Map(second.map((e) => [e.number, e])));
    assert.equal(stored.find((e) => e.number === '2009')?.name, '', 'an empty name is not the same as none');
    assert.deepEqual(await syncExtensions(db, second), { added: 0, updated: 0, removed: 0 });
  } finally {
    await db.close();
  }
});

test('a name holding the shortcut\'s separator characters still syncs exactly', async () => {
  const db = await freshDb();
  try {
    const odd = [ext(1001, 'a\u001fb'), ext(1002, 'c\u001ed')];
    assert.deepEqual(await syncExtensions(db, odd), { added: 2, updated: 0, removed: 0 });
    assert.deepEqual(await syncExtensions(db, odd), { added: 0, updated: 0, removed: 0 });
    assert.deepEqual(await syncExtensions(db, [ext(1001, 'a\u001fb'), ext(1002, 'c\u001fd')]), { added: 0, updated: 1, removed: 0 });
    assert.equal((await loadExtensions(db)).find((e) => e.number === '1002')?.name, 'c\u001fd');
    assert.deepEqual(await syncExtensions(db, []), { added: 0, updated: 0, removed: 2 });
  } finally {
    await db.close();
  }
});
