// The fleet store in PostgreSQL (`branchctl serve --database postgres://…`): the same
// tables and guarantees as the SQLite store, for controller instances on several
// hosts. Message ids are the primary key (INSERT … ON CONFLICT DO NOTHING), config
// versions are read and written under a row lock, and migrations run once under an
// advisory lock, so any number of instances can share one database.
import pg from 'pg';
import type { RecordRow, SiteSummary, StreamName, UpMessage } from '../agent/sync/protocol.ts';
import { recordRow, siteSummary, SITES_QUERY, type FleetStore, type IngestResult, type MessageRow, type SiteRow, type SiteStateUpdate } from './fleet-store.ts';

const migrations: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE sites (
        site            TEXT PRIMARY KEY,
        state           TEXT NOT NULL DEFAULT 'offline',
        state_since     BIGINT,
        agent           TEXT,
        boot            TEXT,
        config_version  INTEGER NOT NULL DEFAULT 0,
        reported        TEXT,
        desired_version INTEGER NOT NULL DEFAULT 0,
        desired_config  TEXT,
        last_seen       BIGINT,
        telemetry       TEXT,
        telemetry_ts    BIGINT
      );
      CREATE TABLE messages (
        id          TEXT PRIMARY KEY,
        site        TEXT NOT NULL,
        stream      TEXT NOT NULL,
        seq         BIGINT NOT NULL,
        boot        TEXT NOT NULL,
        ts          BIGINT NOT NULL,
        type        TEXT NOT NULL,
        data        TEXT NOT NULL,
        received_at BIGINT NOT NULL
      );
      CREATE INDEX messages_site_stream_seq ON messages (site, stream, seq);
    `,
  },
];

/** Any number for pg_advisory_xact_lock, the same in every instance: "branchline migrations". */
const MIGRATION_LOCK = 7_302_118_845;
/** Rows per multi-row INSERT: 9 parameters each, far below PostgreSQL's 65,535. */
const ROWS_PER_STATEMENT = 400;

// BIGINT (and COUNT) come back from pg as strings by default; our values (ms since the
// epoch, sequence numbers, counts) fit a double exactly.
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

export class PostgresFleetStore implements FleetStore {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  static async open(url: string): Promise<PostgresFleetStore> {
    const pool = new pg.Pool({ connectionString: url, max: 4, types });
    // An idle client that loses its server must not crash the controller.
    pool.on('error', () => undefined);
    const store = new PostgresFleetStore(pool);
    try {
      await store.#tx(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        await c.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
        const done = new Set((await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
        for (const m of migrations) {
          if (done.has(m.version)) continue;
          await c.query(m.sql);
          await c.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [m.version, Date.now()]);
        }
      });
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return store;
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  async #tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.#pool.connect();
    try {
      await c.query('BEGIN');
      const result = await fn(c);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  ingest(messages: readonly UpMessage[], now = Date.now()): Promise<IngestResult> {
    // One lock order for every instance (ids, then sites, sorted): two instances
    // committing overlapping batches wait for each other instead of deadlocking.
    const stored = messages.filter((m) => m.stream !== 'telemetry').sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const sites = [...new Set(messages.map((m) => m.site))].sort();
    const telemetry = messages.filter((m) => m.stream === 'telemetry');
    return this.#tx(async (c) => {
      let inserted = 0;
      for (let i = 0; i < stored.length; i += ROWS_PER_STATEMENT) {
        const chunk = stored.slice(i, i + ROWS_PER_STATEMENT);
        const params: Array<string | number> = [];
        const rows = chunk.map((m, j) => {
          params.push(m.id, m.site, m.stream, m.seq, m.boot, m.ts, m.type, JSON.stringify(m.data), now);
          return `(${Array.from({ length: 9 }, (_, k) => `$${j * 9 + k + 1}`).join(',')})`;
        });
        const r = await c.query(`INSERT INTO messages (id, site, stream, seq, boot, ts, type, data, received_at) VALUES ${rows.join(',')} ON CONFLICT (id) DO NOTHING`, params);
        inserted += r.rowCount ?? 0;
      }
      for (const site of sites) {
        await c.query('INSERT INTO sites (site, last_seen) VALUES ($1, $2) ON CONFLICT (site) DO UPDATE SET last_seen = EXCLUDED.last_seen', [site, now]);
      }
      for (const m of telemetry) {
        await c.query('UPDATE sites SET telemetry = $1, telemetry_ts = $2 WHERE site = $3 AND (telemetry_ts IS NULL OR telemetry_ts <= $2)', [JSON.stringify(m.data), m.ts, m.site]);
      }
      return { inserted, duplicates: stored.length - inserted };
    });
  }

  async setSiteState(s: SiteStateUpdate, now = Date.now()): Promise<void> {
    await this.#pool.query(
      `INSERT INTO sites (site, state, state_since, agent, boot, config_version, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (site) DO UPDATE SET state = EXCLUDED.state, state_since = EXCLUDED.state_since, agent = EXCLUDED.agent,
         boot = EXCLUDED.boot, config_version = EXCLUDED.config_version, last_seen = EXCLUDED.last_seen`,
      [s.site, s.state, s.since, s.agent, s.boot, s.config_version, now],
    );
  }

  async setReported(site: string, version: number, reported: unknown): Promise<void> {
    await this.#pool.query(
      `INSERT INTO sites (site, config_version, reported) VALUES ($1, $2, $3)
       ON CONFLICT (site) DO UPDATE SET config_version = EXCLUDED.config_version, reported = EXCLUDED.reported`,
      [site, version, JSON.stringify(reported)],
    );
  }

  pushDesired(site: string, config: Record<string, unknown>, baseVersion?: number): Promise<{ version: number } | { conflict: number }> {
    return this.#tx(async (c) => {
      await c.query('INSERT INTO sites (site) VALUES ($1) ON CONFLICT (site) DO NOTHING', [site]);
      // The row lock makes concurrent pushes (other instances too) take turns.
      const row = (await c.query<{ v: number }>('SELECT desired_version AS v FROM sites WHERE site = $1 FOR UPDATE', [site])).rows[0];
      const current = row?.v ?? 0;
      if (baseVersion !== undefined && baseVersion !== current) return { conflict: current };
      const version = current + 1;
      await c.query('UPDATE sites SET desired_version = $2, desired_config = $3 WHERE site = $1', [site, version, JSON.stringify(config)]);
      return { version };
    });
  }

  async desired(site: string): Promise<{ version: number; config: Record<string, unknown> } | undefined> {
    const row = (await this.#pool.query<{ v: number; c: string | null }>('SELECT desired_version AS v, desired_config AS c FROM sites WHERE site = $1', [site])).rows[0];
    if (!row || row.c === null) return undefined;
    return { version: row.v, config: JSON.parse(row.c) as Record<string, unknown> };
  }

  async sites(): Promise<SiteSummary[]> {
    return (await this.#pool.query<SiteRow>(SITES_QUERY)).rows.map(siteSummary);
  }

  async messages(site: string, stream: StreamName, opts: { limit?: number; afterSeq?: number } = {}): Promise<RecordRow[]> {
    const rows = (
      await this.#pool.query<MessageRow>(
        'SELECT id, site, seq, boot, ts, type, data, received_at FROM messages WHERE site = $1 AND stream = $2 AND seq > $3 ORDER BY seq LIMIT $4',
        [site, stream, opts.afterSeq ?? 0, opts.limit ?? 1_000_000],
      )
    ).rows;
    return rows.map(recordRow);
  }

  async count(site: string, stream: StreamName): Promise<number> {
    const row = (await this.#pool.query<{ n: number }>('SELECT COUNT(*) AS n FROM messages WHERE site = $1 AND stream = $2', [site, stream])).rows[0];
    return row?.n ?? 0;
  }

  async telemetry(site: string): Promise<unknown> {
    const row = (await this.#pool.query<{ t: string | null }>('SELECT telemetry AS t FROM sites WHERE site = $1', [site])).rows[0];
    return row?.t ? (JSON.parse(row.t) as unknown) : null;
  }
}
