import { existsSync } from 'node:fs';
import path from 'node:path';
import { storeFileName } from '../../agent/agent.ts';
import { loadBindings, type Binding } from '../../agent/store/bindings.ts';
import { Database } from '../../agent/store/db.ts';
import { latestSchemaVersion } from '../../agent/store/migrations.ts';
import type { ExpectedBinding } from '../../image/slots/state.ts';

/** The agent's store, opened read-only beside the running agent (WAL allows it). */
async function withStore<T>(stateDir: string, use: (db: Database) => Promise<T>): Promise<T | null> {
  const file = path.join(stateDir, storeFileName);
  if (!existsSync(file)) return null;
  const db = await Database.open(file, { readonly: true });
  try {
    return await use(db);
  } finally {
    await db.close();
  }
}

export interface SchemaCheck {
  /** The schema version in the store; null when there is no store. */
  found: number | null;
  /** What the running build migrates to. */
  expected: number;
}

export async function storeSchema(stateDir: string): Promise<SchemaCheck> {
  const found = await withStore(stateDir, async (db) => {
    const row = await db.get<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
    return row?.v ?? 0;
  });
  return { found, expected: latestSchemaVersion };
}

export async function liveBindings(stateDir: string, now = Date.now()): Promise<Binding[]> {
  return (await withStore(stateDir, async (db) => (await loadBindings(db, now)).live)) ?? [];
}

/** What pre-reboot records: the registrations post-boot verify must find again. */
export async function snapshotBindings(stateDir: string): Promise<ExpectedBinding[]> {
  return (await liveBindings(stateDir)).map((b) => ({ extension: b.extension, contact: b.contact, expires_at: b.expiresAt }));
}

/**
 * The phones that were registered before the switch and whose registration has not
 * run out since: each must hold a live binding again (restored from the store or
 * refreshed by the phone). Returns the ones missing.
 */
export async function missingBindings(stateDir: string, expected: readonly ExpectedBinding[], now = Date.now()): Promise<ExpectedBinding[]> {
  const due = expected.filter((b) => b.expires_at > now);
  if (due.length === 0) return [];
  const live = new Set((await liveBindings(stateDir, now)).map((b) => `${b.extension}\0${b.contact}`));
  return due.filter((b) => !live.has(`${b.extension}\0${b.contact}`));
}
