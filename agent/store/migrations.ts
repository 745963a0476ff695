import type { Database } from './db.ts';

/**
 * Migrations only ever add (tables, columns, indexes): an older build must still read
 * the file after an A/B rollback. Each runs once, in order, inside a transaction.
 */
const migrations: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'extensions and registrar bindings',
    sql: `
      CREATE TABLE extensions (
        number      TEXT PRIMARY KEY,
        name        TEXT,
        realm       TEXT NOT NULL,
        ha1_md5     TEXT NOT NULL,
        ha1_sha256  TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
      );
      CREATE TABLE bindings (
        extension     TEXT NOT NULL REFERENCES extensions(number) ON DELETE CASCADE,
        contact       TEXT NOT NULL,
        instance      TEXT,
        call_id       TEXT NOT NULL,
        cseq          INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        q             REAL,
        source        TEXT NOT NULL,
        path          TEXT,
        user_agent    TEXT,
        registered_at INTEGER NOT NULL,
        PRIMARY KEY (extension, contact)
      );
      -- No index on expires_at: expiry runs from the registrar's in-memory table, and
      -- every refresh would pay for maintaining it.
    `,
  },
  {
    // agent/sync: the outbox (drained in seq order per stream), the per-stream
    // sequence counters, small sync state (applied config version, health mode) and
    // the answers to recent commands (commands are idempotent by id).
    version: 2,
    name: 'sync outbox and state',
    sql: `
      CREATE TABLE sync_streams (
        stream TEXT PRIMARY KEY,
        seq    INTEGER NOT NULL
      );
      CREATE TABLE sync_outbox (
        msg_id TEXT PRIMARY KEY,
        stream TEXT NOT NULL,
        seq    INTEGER NOT NULL,
        type   TEXT NOT NULL,
        boot   TEXT NOT NULL,
        ts     INTEGER NOT NULL,
        data   TEXT NOT NULL,
        bytes  INTEGER NOT NULL,
        UNIQUE (stream, seq)
      );
      CREATE TABLE sync_state (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE sync_commands (
        id       TEXT PRIMARY KEY,
        response TEXT NOT NULL,
        at       INTEGER NOT NULL
      );
    `,
  },
  {
    // agent/store/call-records.ts: one row per call (CDR) and one per leg, written
    // once when the call ends. mode_durations is JSON ({"bridged": ms, ...}) so that a
    // new call mode needs no migration. agent/store/feature-state.ts: what feature
    // codes (*78 DND, *72 forward...) changed per extension; NULL in a column means
    // "as the config says", '' in a forward column means "off by feature code".
    version: 3,
    name: 'call records and feature-code state',
    sql: `
      CREATE TABLE calls (
        id             TEXT PRIMARY KEY,
        site_id        TEXT NOT NULL,
        caller         TEXT NOT NULL,
        caller_name    TEXT,
        dialed         TEXT NOT NULL,
        answered_by    TEXT,
        started_at     INTEGER NOT NULL,
        answered_at    INTEGER,
        ended_at       INTEGER NOT NULL,
        disposition    TEXT NOT NULL,
        final_status   INTEGER,
        reason         TEXT,
        emergency      INTEGER NOT NULL,
        mode_durations TEXT NOT NULL,
        media_policy   TEXT NOT NULL
      );
      CREATE INDEX calls_started_at ON calls (started_at);
      CREATE TABLE call_legs (
        call_id     TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
        leg         TEXT NOT NULL,
        direction   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        party       TEXT NOT NULL,
        sip_call_id TEXT,
        started_at  INTEGER NOT NULL,
        answered_at INTEGER,
        ended_at    INTEGER NOT NULL,
        status      INTEGER,
        ended_by    TEXT,
        PRIMARY KEY (call_id, leg)
      );
      CREATE TABLE feature_state (
        extension         TEXT PRIMARY KEY REFERENCES extensions(number) ON DELETE CASCADE,
        dnd               INTEGER,
        forward_always    TEXT,
        forward_busy      TEXT,
        forward_no_answer TEXT,
        updated_at        INTEGER NOT NULL
      );
    `,
  },
  {
    // agent/voicemail (docs/voicemail.md). A message row is written as 'pending'
    // before recording starts and becomes INBOX in the transaction that indexes the
    // finished file, so the startup scan can tell a half-done deposit from a whole
    // one. Folders are a column: moving a message never touches its file. Mailbox
    // rows hold a PIN changed by phone (scrypt hash) and the PIN lockout; MWI
    // subscriptions are kept so that NOTIFYs resume after a restart.
    version: 4,
    name: 'voicemail messages, mailboxes and MWI subscriptions',
    sql: `
      CREATE TABLE voicemail_messages (
        id          TEXT PRIMARY KEY,
        mailbox     TEXT NOT NULL,
        folder      TEXT NOT NULL,
        caller      TEXT NOT NULL,
        caller_name TEXT,
        reason      TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        file        TEXT NOT NULL,
        updated_at  INTEGER NOT NULL
      );
      CREATE INDEX voicemail_messages_mailbox ON voicemail_messages (mailbox, folder, received_at);
      CREATE TABLE voicemail_mailboxes (
        mailbox         TEXT PRIMARY KEY,
        pin_hash        TEXT,
        config_pin_hash TEXT,
        pin_failures    INTEGER NOT NULL DEFAULT 0,
        locked_until    INTEGER NOT NULL DEFAULT 0,
        updated_at      INTEGER NOT NULL
      );
      CREATE TABLE mwi_subscriptions (
        id         TEXT PRIMARY KEY,
        mailbox    TEXT NOT NULL,
        dialog     TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      );
    `,
  },
  {
    // agent/trunks/usage-store.ts: channel usage per hour and tenant for capacity
    // planning; tenant '*' is the whole box. Rows are added to, never rewritten.
    version: 5,
    name: 'trunk channel usage per hour',
    sql: `
      CREATE TABLE trunk_usage_hourly (
        hour_start        INTEGER NOT NULL,
        tenant            TEXT NOT NULL,
        attempts_in       INTEGER NOT NULL DEFAULT 0,
        attempts_out      INTEGER NOT NULL DEFAULT 0,
        emergency         INTEGER NOT NULL DEFAULT 0,
        blocked_in        INTEGER NOT NULL DEFAULT 0,
        blocked_out       INTEGER NOT NULL DEFAULT 0,
        queued            INTEGER NOT NULL DEFAULT 0,
        queue_wait_ms     INTEGER NOT NULL DEFAULT 0,
        queue_wait_max_ms INTEGER NOT NULL DEFAULT 0,
        peak_channels     INTEGER NOT NULL DEFAULT 0,
        preempted         INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (hour_start, tenant)
      );
    `,
  },
  {
    // agent/sync/peers.ts: every site's directory as last received (retained, versioned),
    // with its presence, so calls to peers route while the WAN is down and after a
    // restart. agent/sync/files/: files forwarded to peers (sender state: resume from
    // the last acknowledged chunk), files received from them (indexed once, by id), and
    // remote state changes (heard, deleted) to send back until acknowledged.
    version: 7,
    name: 'peers directory and file transfers',
    sql: `
      CREATE TABLE peer_directory (
        site           TEXT PRIMARY KEY,
        version        INTEGER NOT NULL,
        payload        TEXT NOT NULL,
        received_at    INTEGER NOT NULL,
        presence       TEXT NOT NULL DEFAULT 'unknown',
        presence_since INTEGER
      );
      CREATE TABLE file_transfers_out (
        id         TEXT PRIMARY KEY,
        to_site    TEXT NOT NULL,
        type       TEXT NOT NULL,
        meta       TEXT NOT NULL,
        file       TEXT NOT NULL,
        size       INTEGER NOT NULL,
        sha256     TEXT NOT NULL,
        chunk_size INTEGER NOT NULL,
        chunks     TEXT NOT NULL,
        state      TEXT NOT NULL,
        acked      INTEGER NOT NULL DEFAULT 0,
        attempts   INTEGER NOT NULL DEFAULT 0,
        error      TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX file_transfers_out_state ON file_transfers_out (state, to_site, created_at);
      CREATE TABLE file_transfers_in (
        id         TEXT PRIMARY KEY,
        from_site  TEXT NOT NULL,
        type       TEXT NOT NULL,
        meta       TEXT NOT NULL,
        size       INTEGER NOT NULL,
        sha256     TEXT NOT NULL,
        chunk_size INTEGER NOT NULL,
        chunks     TEXT NOT NULL,
        path       TEXT NOT NULL,
        state      TEXT NOT NULL,
        error      TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE file_state_out (
        change   TEXT PRIMARY KEY,
        transfer TEXT NOT NULL,
        to_site  TEXT NOT NULL,
        state    TEXT NOT NULL,
        at       INTEGER NOT NULL
      );
      CREATE TABLE file_state_in (
        change     TEXT PRIMARY KEY,
        transfer   TEXT NOT NULL,
        from_site  TEXT NOT NULL,
        state      TEXT NOT NULL,
        at         INTEGER NOT NULL,
        applied_at INTEGER NOT NULL
      );
      CREATE INDEX file_state_in_transfer ON file_state_in (transfer, at);
    `,
  },
  {
    // agent/voicemail/forwarding.ts: at a voicemail's home site, the state (heard,
    // unheard, deleted) last reported back to the site that recorded it, so each change
    // is sent once.
    version: 8,
    name: 'forwarded voicemail state reported to its origin',
    sql: `
      CREATE TABLE voicemail_forwarded_state (
        id       TEXT PRIMARY KEY,
        origin   TEXT NOT NULL,
        reported TEXT NOT NULL
      );
    `,
  },
];

export const latestSchemaVersion = Math.max(0, ...migrations.map((m) => m.version));

export async function migrate(db: Database): Promise<{ from: number; to: number }> {
  await db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  const row = await db.get<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
  const from = row?.v ?? 0;
  // Versions are reserved by subsystem and may land out of order (5 before 4): apply
  // every one not yet recorded, in version order, not only those above the highest.
  const applied = new Set((await db.all<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version));
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    await db.exec(`BEGIN IMMEDIATE; ${m.sql}; INSERT INTO schema_migrations (version, name, applied_at) VALUES (${m.version}, '${m.name.replace(/'/g, "''")}', ${Date.now()}); COMMIT;`).catch(async (err: unknown) => {
      await db.exec('ROLLBACK').catch(() => undefined);
      throw err;
    });
  }
  return { from, to: Math.max(from, latestSchemaVersion) };
}
