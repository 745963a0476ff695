// The controller's own store: SQLite in the state directory (one file, WAL, fsync
// on commit). Ingested messages are keyed by their id, so a message sent twice is
// stored once; the fleet's state (site states, config versions) lives beside them.
import path from 'node:path';
import { Database, StoreError, type SqlValue } from '../agent/store/db.ts';
import type { RecordRow, SiteSummary, StreamName, UpMessage } from '../agent/sync/protocol.ts';
import { recordRow, siteSummary, SITES_QUERY, type FleetStore, type IngestResult, type MessageRow, type SiteRow, type SiteStateUpdate } from './fleet-store.ts';

export type { IngestResult } from './fleet-store.ts';

export const controllerStoreFile = 'controller.sqlite';

const migrations: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE sites (
        site            TEXT PRIMARY KEY,
        state           TEXT NOT NULL DEFAULT 'offline',
        state_since     INTEGER,
        agent           TEXT,
        boot            TEXT,
        config_version  INTEGER NOT NULL DEFAULT 0,
        reported        TEXT,
        desired_version INTEGER NOT NULL DEFAULT 0,
        desired_config  TEXT,
        last_seen       INTEGER,
        telemetry       TEXT,
        telemetry_ts    INTEGER
      );
      CREATE TABLE messages (
        id          TEXT PRIMARY KEY,
        site        TEXT NOT NULL,
        stream      TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        boot        TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        type        TEXT NOT NULL,
        data        TEXT NOT NULL,
        received_at INTEGER NOT NULL
      );
      CREATE INDEX messages_site_stream_seq ON messages(site, stream, seq);
    `,
  },
];

/** Rows per multi-row INSERT: 9 parameters each, far below SQLite's limit. */
const ROWS_PER_STATEMENT = 400;
/** Data longer than this (characters of JSON) is bound as a parameter, not inlined. */
const INLINE_MAX = 16 * 1024;
const MARK_BEFORE = { sql: 'UPDATE temp.ingest_mark SET before = total_changes() WHERE k = 1', params: [] };
const MARK_AFTER = { sql: 'UPDATE temp.ingest_mark SET after = total_changes() WHERE k = 1', params: [] };

/** The fleet store in SQLite: the default (see fleet-store.ts). */
export class ControllerStore implements FleetStore {
  readonly kind = 'sqlite' as const;
  readonly #db: Database;
  /** Every write goes through this chain: one transaction at a time on the connection. */
  #chain: Promise<unknown> = Promise.resolve();

  private constructor(db: Database) {
    this.#db = db;
  }

  static async open(stateDir: string): Promise<ControllerStore> {
    const db = await Database.open(path.join(stateDir, controllerStoreFile));
    // Several instances (`--share`) may open the same file at once: each migration is
    // checked and applied under the write lock, so only one of them applies it.
    await db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
    for (const m of migrations) {
      await db.exec('BEGIN IMMEDIATE');
      try {
        const done = await db.get<{ n: number }>('SELECT COUNT(*) AS n FROM schema_migrations WHERE version = ?', [m.version]);
        if (!done?.n) await db.exec(`${m.sql}; INSERT INTO schema_migrations (version, applied_at) VALUES (${m.version}, ${Date.now()});`);
        await db.exec('COMMIT');
      } catch (err) {
        await db.exec('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
    // The ingest commit's change counter (see ingest): per connection, in memory.
    await db.exec("PRAGMA temp_store = MEMORY; CREATE TEMP TABLE ingest_mark (k INTEGER PRIMARY KEY, before INTEGER NOT NULL, after INTEGER NOT NULL); INSERT INTO temp.ingest_mark VALUES (1, 0, 0)");
    return new ControllerStore(db);
  }

  close(): Promise<void> {
    return this.#chain.then(() => this.#db.close());
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  /** Runs statements in one transaction and returns each one's change count. */
  #transaction(statements: Array<{ sql: string; params: SqlValue[] }>): Promise<number[]> {
    const raw = this.#db.raw;
    return new Promise((resolve, reject) => {
      const changes: number[] = [];
      let failure: Error | undefined;
      raw.run('BEGIN IMMEDIATE', (err: Error | null) => {
        if (err) failure = err;
      });
      for (const s of statements) {
        raw.run(s.sql, s.params, function (this: { changes: number }, err: Error | null) {
          if (err && !failure) failure = err;
          changes.push(err ? 0 : this.changes);
        });
      }
      // Serialized connection: this callback runs after every statement above has
      // reported, so the COMMIT/ROLLBACK decision sees all of them.
      raw.get('SELECT 1', () => {
        if (failure) {
          const cause = failure;
          raw.run('ROLLBACK', () => reject(cause));
          return;
        }
        raw.run('COMMIT', (err: Error | null) => {
          if (err) raw.run('ROLLBACK', () => reject(err));
          else resolve(changes);
        });
      });
    });
  }

  /**
   * Commits a batch of up messages; duplicates (an id already stored) are ignored.
   * Telemetry is not kept as history: each site's latest sample replaces the last.
   */
  ingest(messages: readonly UpMessage[], now = Date.now()): Promise<IngestResult> {
    return this.#serial(async () => {
      const stored = messages.filter((m) => m.stream !== 'telemetry');
      // Small rows (call records, events) go into the SQL text as literals; large ones
      // (a voicemail's audio) are bound as parameters: SQLite parsing a multi-megabyte
      // literal cost more than the bind (25 voicemails of 214 kB: ~90 vs ~55 ms).
      const small: Array<{ m: UpMessage; data: string }> = [];
      const large: Array<{ m: UpMessage; data: string }> = [];
      for (const m of stored) {
        const data = JSON.stringify(m.data);
        (data.length > INLINE_MAX ? large : small).push({ m, data });
      }
      const inserts: Array<{ sql: string; params: SqlValue[] }> = [];
      for (const rows of [small, large]) {
        for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
          const chunk = rows.slice(i, i + ROWS_PER_STATEMENT);
          const params: SqlValue[] = [];
          for (const { m, data } of chunk) params.push(m.id, m.site, m.stream, m.seq, m.boot, m.ts, m.type, data, now);
          inserts.push({
            sql: `INSERT OR IGNORE INTO messages (id, site, stream, seq, boot, ts, type, data, received_at) VALUES ${chunk.map(() => '(?,?,?,?,?,?,?,?,?)').join(',')}`,
            params,
          });
        }
      }
      const others: Array<{ sql: string; params: SqlValue[] }> = [];
      const sites = new Set(messages.map((m) => m.site));
      for (const site of sites) {
        others.push({ sql: 'INSERT INTO sites (site, last_seen) VALUES (?, ?) ON CONFLICT(site) DO UPDATE SET last_seen = excluded.last_seen', params: [site, now] });
      }
      for (const m of messages) {
        if (m.stream !== 'telemetry') continue;
        others.push({
          sql: 'UPDATE sites SET telemetry = ?, telemetry_ts = ? WHERE site = ? AND (telemetry_ts IS NULL OR telemetry_ts <= ?)',
          params: [JSON.stringify(m.data), m.ts, m.site, m.ts],
        });
      }
      if (large.length === 0) {
        try {
          // One script for the whole commit (Database.transaction inlines the values):
          // one trip to SQLite's worker thread instead of a prepare, run and finalize
          // per statement, which the drain benchmark measured as most of a commit's
          // wall time on a busy controller. The rows the INSERT OR IGNOREs really
          // added are counted with total_changes() marks around them, in a
          // per-connection temp table read after the commit.
          await this.#db.transaction([...others, MARK_BEFORE, ...inserts, MARK_AFTER]);
          const mark = await this.#db.get<{ n: number }>('SELECT after - before - 1 AS n FROM temp.ingest_mark WHERE k = 1');
          const inserted = stored.length === 0 ? 0 : (mark?.n ?? 0);
          return { inserted, duplicates: stored.length - inserted };
        } catch (err) {
          // A value SQL text cannot carry (a NUL in a string) is refused before
          // anything runs: bind the parameters instead.
          if (!(err instanceof StoreError)) throw err;
        }
      }
      // Large rows (one prepare and run per statement) and the NUL case.
      const changes = await this.#transaction([...inserts, ...others]);
      const inserted = changes.slice(0, inserts.length).reduce((a, b) => a + b, 0);
      return { inserted, duplicates: stored.length - inserted };
    });
  }

  setSiteState(s: SiteStateUpdate, now = Date.now()): Promise<void> {
    return this.#serial(async () => {
      await this.#transaction([
        {
          sql: `INSERT INTO sites (site, state, state_since, agent, boot, config_version, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(site) DO UPDATE SET state = excluded.state, state_since = excluded.state_since, agent = excluded.agent,
                  boot = excluded.boot, config_version = excluded.config_version, last_seen = excluded.last_seen`,
          params: [s.site, s.state, s.since, s.agent, s.boot, s.config_version, now],
        },
      ]);
    });
  }

  setReported(site: string, version: number, reported: unknown): Promise<void> {
    return this.#serial(async () => {
      await this.#transaction([
        {
          sql: `INSERT INTO sites (site, config_version, reported) VALUES (?, ?, ?)
                ON CONFLICT(site) DO UPDATE SET config_version = excluded.config_version, reported = excluded.reported`,
          params: [site, version, JSON.stringify(reported)],
        },
      ]);
    });
  }

  /**
   * Sets the desired config of a site to the next version. With `baseVersion`, only
   * if that is still the current version (optimistic concurrency); returns the new
   * version, or `{ conflict }` with the current one.
   */
  pushDesired(site: string, config: Record<string, unknown>, baseVersion?: number): Promise<{ version: number } | { conflict: number }> {
    return this.#serial(async () => {
      // Read and write under one write lock: another instance sharing the file may push too.
      await this.#db.exec('BEGIN IMMEDIATE');
      try {
        const row = await this.#db.get<{ v: number }>('SELECT desired_version AS v FROM sites WHERE site = ?', [site]);
        const current = row?.v ?? 0;
        if (baseVersion !== undefined && baseVersion !== current) {
          await this.#db.exec('ROLLBACK');
          return { conflict: current };
        }
        const version = current + 1;
        await this.#db.run(
          `INSERT INTO sites (site, desired_version, desired_config) VALUES (?, ?, ?)
           ON CONFLICT(site) DO UPDATE SET desired_version = excluded.desired_version, desired_config = excluded.desired_config`,
          [site, version, JSON.stringify(config)],
        );
        await this.#db.exec('COMMIT');
        return { version };
      } catch (err) {
        await this.#db.exec('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  async desired(site: string): Promise<{ version: number; config: Record<string, unknown> } | undefined> {
    const row = await this.#db.get<{ v: number; c: string | null }>('SELECT desired_version AS v, desired_config AS c FROM sites WHERE site = ?', [site]);
    if (!row || row.c === null) return undefined;
    return { version: row.v, config: JSON.parse(row.c) as Record<string, unknown> };
  }

  async sites(): Promise<SiteSummary[]> {
    return (await this.#db.all<SiteRow>(SITES_QUERY)).map(siteSummary);
  }

  async messages(site: string, stream: StreamName, opts: { limit?: number; afterSeq?: number } = {}): Promise<RecordRow[]> {
    const rows = await this.#db.all<MessageRow>(
      'SELECT id, site, seq, boot, ts, type, data, received_at FROM messages WHERE site = ? AND stream = ? AND seq > ? ORDER BY seq LIMIT ?',
      [site, stream, opts.afterSeq ?? 0, opts.limit ?? 1_000_000],
    );
    return rows.map(recordRow);
  }

  async count(site: string, stream: StreamName): Promise<number> {
    const row = await this.#db.get<{ n: number }>('SELECT COUNT(*) AS n FROM messages WHERE site = ? AND stream = ?', [site, stream]);
    return row?.n ?? 0;
  }

  async telemetry(site: string): Promise<unknown> {
    const row = await this.#db.get<{ t: string | null }>('SELECT telemetry AS t FROM sites WHERE site = ?', [site]);
    return row?.t ? (JSON.parse(row.t) as unknown) : null;
  }
}

