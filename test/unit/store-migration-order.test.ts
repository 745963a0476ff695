import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Database } from '../../agent/store/db.ts';
import { latestSchemaVersion, migrate } from '../../agent/store/migrations.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bl-migrate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a migration that landed after a higher version is still applied to an existing store', async () => {
  const db = await Database.open(path.join(dir, 'store.sqlite'));
  await migrate(db);
  // As if the store had been migrated by a build that had version 5 but not yet 3.
  await db.exec('DROP TABLE call_legs; DROP TABLE calls; DROP TABLE feature_state; DELETE FROM schema_migrations WHERE version = 3');
  assert.deepEqual(await migrate(db), { from: latestSchemaVersion, to: latestSchemaVersion });
  const tables = (await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")).map((t) => t.name);
  for (const table of ['calls', 'call_legs', 'feature_state', 'trunk_usage_hourly']) assert.ok(tables.includes(table), `${table} exists`);
  const versions = (await db.all<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).map((r) => r.version);
  assert.ok(versions.includes(3) && versions.includes(5));
  await db.close();
});
