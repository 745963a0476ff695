import { mkdirSync } from 'node:fs';
import path from 'node:path';
import sqlite3 from 'sqlite3';

export type SqlValue = string | number | null | bigint | Buffer;
export type Row = Record<string, SqlValue>;

export class StoreError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A small promise layer over one sqlite3 connection. The connection runs in
 * serialized mode so statements execute in the order they were issued, which is
 * what makes BEGIN ... COMMIT batches from the group committer safe.
 */
export class Database {
  readonly file: string;
  #db: sqlite3.Database | undefined;

  constructor(file: string) {
    this.file = file;
  }

  static async open(file: string, opts: { readonly?: boolean } = {}): Promise<Database> {
    const db = new Database(file);
    await db.#open(opts.readonly ?? false);
    return db;
  }

  async #open(readonly: boolean): Promise<void> {
    if (!readonly) mkdirSync(path.dirname(this.file), { recursive: true });
    const mode = readonly ? sqlite3.OPEN_READONLY : sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE;
    this.#db = await new Promise<sqlite3.Database>((resolve, reject) => {
      const db: sqlite3.Database = new sqlite3.Database(this.file, mode, (err) => {
        if (err) reject(new StoreError('EOPEN', `cannot open store ${this.file}: ${err.message}`, { cause: err }));
        else resolve(db);
      });
    });
    this.#db.serialize();
    await this.exec('PRAGMA busy_timeout = 5000');
    if (!readonly) {
      // WAL with synchronous=FULL: every COMMIT is fsynced before its callback fires,
      // so "committed" means "survives a power cut".
      await this.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON');
    }
  }

  get raw(): sqlite3.Database {
    if (!this.#db) throw new StoreError('ECLOSED', 'store is not open');
    return this.#db;
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.raw.exec(sql, (err) => (err ? reject(err) : resolve())));
  }

  run(sql: string, params: SqlValue[] = []): Promise<{ changes: number; lastID: number }> {
    return new Promise((resolve, reject) =>
      this.raw.run(sql, params, function (this: sqlite3.RunResult, err: Error | null) {
        if (err) reject(err);
        else resolve({ changes: this.changes, lastID: this.lastID });
      }),
    );
  }

  all<T = Row>(sql: string, params: SqlValue[] = []): Promise<T[]> {
    return new Promise((resolve, reject) => this.raw.all(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[]))));
  }

  get<T = Row>(sql: string, params: SqlValue[] = []): Promise<T | undefined> {
    return new Promise((resolve, reject) => this.raw.get(sql, params, (err, row) => (err ? reject(err) : resolve(row as T | undefined))));
  }

  /**
   * Runs statements as one transaction; rolls back and rejects if any fails. The
   * COMMIT/ROLLBACK decision is taken in the last statement's callback, after every
   * earlier statement has reported, so a failure in the middle never commits half.
   * Callers must not interleave other writes (the group committer guarantees that).
   */
  async transaction(statements: ReadonlyArray<{ sql: string; params: SqlValue[] }>): Promise<void> {
    if (statements.length === 0) return;
    const db = this.raw;
    await new Promise<void>((resolve, reject) => {
      let failure: Error | undefined;
      const finish = () => {
        if (failure) {
          const cause = failure;
          db.run('ROLLBACK', () => reject(cause));
          return;
        }
        db.run('COMMIT', (err: Error | null) => {
          if (!err) return resolve();
          db.run('ROLLBACK', () => reject(err));
        });
      };
      db.run('BEGIN IMMEDIATE', (err: Error | null) => {
        if (err) failure = err;
      });
      statements.forEach((s, i) => {
        db.run(s.sql, s.params, (err: Error | null) => {
          if (err && !failure) failure = err;
          if (i === statements.length - 1) finish();
        });
      });
    });
  }

  close(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    if (!db) return Promise.resolve();
    return new Promise((resolve, reject) => db.close((err) => (err ? reject(err) : resolve())));
  }
}
