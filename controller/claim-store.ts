// The controller's claim records, in their own SQLite file beside controller.sqlite:
// issued claim tokens (only their hashes), claims from appliances, and the broker
// credentials of claimed sites (only Mosquitto hashes). No plaintext secret is stored:
// an approved device's credentials are kept sealed to that device's key.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Database } from '../agent/store/db.ts';
import type { ClaimStatus } from '../provisioning/claim/protocol.ts';

export const claimStoreFile = 'claims.sqlite';

const schema = `
  CREATE TABLE IF NOT EXISTS claim_tokens (
    token_hash TEXT PRIMARY KEY,
    site       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_by    TEXT
  );
  CREATE TABLE IF NOT EXISTS claims (
    serial      TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    site        TEXT NOT NULL,
    token_hash  TEXT NOT NULL,
    sign_key    TEXT NOT NULL,
    box_key     TEXT NOT NULL,
    agent       TEXT NOT NULL,
    hardware    TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    decided_at  INTEGER,
    reason      TEXT,
    grant_sealed TEXT
  );
  CREATE TABLE IF NOT EXISTS site_credentials (
    site          TEXT PRIMARY KEY,
    serial        TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
  );
`;

export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface TokenRow {
  token_hash: string;
  site: string;
  created_at: number;
  expires_at: number;
  used_by: string | null;
}

export interface ClaimRow {
  serial: string;
  status: ClaimStatus;
  site: string;
  token_hash: string;
  sign_key: string;
  box_key: string;
  agent: string;
  hardware: string;
  first_seen: number;
  last_seen: number;
  decided_at: number | null;
  reason: string | null;
  grant_sealed: string | null;
}

export class ClaimStore {
  readonly #db: Database;

  private constructor(db: Database) {
    this.#db = db;
  }

  static async open(stateDir: string): Promise<ClaimStore> {
    const db = await Database.open(path.join(stateDir, claimStoreFile));
    await db.exec(schema);
    return new ClaimStore(db);
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  async addToken(hash: string, site: string, expiresAt: number): Promise<void> {
    await this.#db.run('INSERT INTO claim_tokens (token_hash, site, created_at, expires_at) VALUES (?, ?, ?, ?)', [hash, site, Date.now(), expiresAt]);
  }

  token(hash: string): Promise<TokenRow | undefined> {
    return this.#db.get<TokenRow>('SELECT * FROM claim_tokens WHERE token_hash = ?', [hash]);
  }

  claim(serial: string): Promise<ClaimRow | undefined> {
    return this.#db.get<ClaimRow>('SELECT * FROM claims WHERE serial = ?', [serial]);
  }

  claims(): Promise<ClaimRow[]> {
    return this.#db.all<ClaimRow>('SELECT * FROM claims ORDER BY first_seen');
  }

  /** A first claim: stores it pending and binds the token to the serial, in one transaction. */
  async addClaim(row: Omit<ClaimRow, 'status' | 'decided_at' | 'reason' | 'grant_sealed'>): Promise<void> {
    await this.#db.transaction([
      {
        sql: `INSERT INTO claims (serial, status, site, token_hash, sign_key, box_key, agent, hardware, first_seen, last_seen)
              VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?)`,
        params: [row.serial, row.site, row.token_hash, row.sign_key, row.box_key, row.agent, row.hardware, row.first_seen, row.last_seen],
      },
      { sql: 'UPDATE claim_tokens SET used_by = ? WHERE token_hash = ? AND used_by IS NULL', params: [row.serial, row.token_hash] },
    ]);
  }

  async seen(serial: string, agent: string, hardware: string): Promise<void> {
    await this.#db.run('UPDATE claims SET last_seen = ?, agent = ?, hardware = ? WHERE serial = ?', [Date.now(), agent, hardware, serial]);
  }

  /** Approval: the sealed grant and the site's broker credentials, in one transaction. */
  async approve(serial: string, site: string, grantSealed: string, passwordHash: string): Promise<void> {
    const now = Date.now();
    await this.#db.transaction([
      { sql: "UPDATE claims SET status = 'approved', site = ?, decided_at = ?, reason = NULL, grant_sealed = ? WHERE serial = ?", params: [site, now, grantSealed, serial] },
      {
        sql: `INSERT INTO site_credentials (site, serial, password_hash, created_at) VALUES (?, ?, ?, ?)
              ON CONFLICT(site) DO UPDATE SET serial = excluded.serial, password_hash = excluded.password_hash, created_at = excluded.created_at`,
        params: [site, serial, passwordHash, now],
      },
    ]);
  }

  /** Rejection (or revocation of an approved box): its broker credentials go with it. */
  async reject(serial: string, reason: string): Promise<void> {
    await this.#db.transaction([
      { sql: "UPDATE claims SET status = 'rejected', decided_at = ?, reason = ?, grant_sealed = NULL WHERE serial = ?", params: [Date.now(), reason, serial] },
      { sql: 'DELETE FROM site_credentials WHERE serial = ?', params: [serial] },
    ]);
  }

  siteCredentials(): Promise<Array<{ site: string; serial: string; password_hash: string }>> {
    return this.#db.all('SELECT site, serial, password_hash FROM site_credentials ORDER BY site');
  }
}
