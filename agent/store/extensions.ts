import type { Database } from './db.ts';

export interface StoredExtension {
  number: string;
  name: string | null;
  realm: string;
  ha1_md5: string;
  ha1_sha256: string;
}

/**
 * Makes the extensions table match the config: the config file is the source, the
 * store keeps only HA1 digests (never a password). Extensions removed from the config
 * lose their bindings by cascade. Returns how many rows changed.
 */
export async function syncExtensions(db: Database, wanted: readonly StoredExtension[]): Promise<{ added: number; updated: number; removed: number }> {
  const existing = new Map((await db.all<StoredExtension>('SELECT number, name, realm, ha1_md5, ha1_sha256 FROM extensions')).map((e) => [e.number, e]));
  const now = Date.now();
  const statements: { sql: string; params: (string | number | null)[] }[] = [];
  let added = 0;
  let updated = 0;
  for (const ext of wanted) {
    const old = existing.get(ext.number);
    existing.delete(ext.number);
    if (old && old.name === ext.name && old.realm === ext.realm && old.ha1_md5 === ext.ha1_md5 && old.ha1_sha256 === ext.ha1_sha256) continue;
    if (old) updated++;
    else added++;
    statements.push({
      sql: `INSERT INTO extensions (number, name, realm, ha1_md5, ha1_sha256, updated_at) VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT(number) DO UPDATE SET name = excluded.name, realm = excluded.realm, ha1_md5 = excluded.ha1_md5,
              ha1_sha256 = excluded.ha1_sha256, updated_at = excluded.updated_at`,
      params: [ext.number, ext.name, ext.realm, ext.ha1_md5, ext.ha1_sha256, now],
    });
  }
  for (const number of existing.keys()) statements.push({ sql: 'DELETE FROM extensions WHERE number = ?', params: [number] });
  await db.transaction(statements);
  return { added, updated, removed: existing.size };
}

export function loadExtensions(db: Database): Promise<StoredExtension[]> {
  return db.all<StoredExtension>('SELECT number, name, realm, ha1_md5, ha1_sha256 FROM extensions ORDER BY number');
}
