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
   * Runs statements as one transaction; rolls back and rejects if any fails. The whole
   * batch goes to SQLite as one script with its values inlined as literals: one trip
   * to SQLite's worker thread per transaction instead of a prepare-and-run per
   * statement, which measured ~180 µs of CPU each and was the registrar's bottleneck
   * (docs/benchmarks.md).
   */
  async transaction(statements: ReadonlyArray<{ sql: string; params: SqlValue[] }>): Promise<void> {
    if (statements.length === 0) return;
    let script = 'BEGIN IMMEDIATE;\n';
    for (const s of statements) script += `${inlineParams(s.sql, s.params)};\n`;
    script += 'COMMIT;';
    try {
      await this.exec(script);
    } catch (err) {
      // exec stops at the failing statement with the transaction still open.
      await this.exec('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  close(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    if (!db) return Promise.resolve();
    return new Promise((resolve, reject) => db.close((err) => (err ? reject(err) : resolve())));
  }
}

/** A value as an SQLite literal. Strings are quoted with '' doubled: SQLite has no other escapes. */
export function sqlLiteral(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new StoreError('EVALUE', `cannot store ${value}`);
    return String(value);
  }
  if (typeof value === 'bigint') return value.toString();
  if (Buffer.isBuffer(value)) return `X'${value.toString('hex')}'`;
  if (value.includes('\0')) throw new StoreError('EVALUE', 'cannot store a string with a NUL character as SQL text');
  return `'${value.replace(/'/g, "''")}'`;
}

// The text between the placeholders of each SQL string, by SQL string. The SQL comes
// from code (a few dozen distinct statements), so the cache stays small; it is bounded
// anyway in case a caller builds SQL dynamically.
const splitCache = new Map<string, readonly string[]>();
const SPLIT_CACHE_LIMIT = 256;

/** `sql` cut at each `?` outside quotes: n placeholders give n + 1 pieces. */
function splitAtPlaceholders(sql: string): readonly string[] {
  const cached = splitCache.get(sql);
  if (cached !== undefined) return cached;
  const pieces: string[] = [];
  let start = 0;
  let quote: string | undefined;
  for (let i = 0; i < sql.length; i++) {
    const c = sql[i] as string;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"' || c === '`') {
      quote = c;
    } else if (c === '?') {
      pieces.push(sql.slice(start, i));
      start = i + 1;
    }
  }
  pieces.push(sql.slice(start));
  if (splitCache.size < SPLIT_CACHE_LIMIT) splitCache.set(sql, pieces);
  return pieces;
}

/**
 * Replaces each `?` outside quotes in `sql` with the next parameter as a literal.
 * Works on whole pieces, not character by character: appending one character at a
 * time made a rope of millions of one-character strings for the 10,000-extension
 * sync at start, which V8 promoted to the old generation (~60 MB of heap kept after
 * start).
 */
export function inlineParams(sql: string, params: readonly SqlValue[]): string {
  const pieces = splitAtPlaceholders(sql);
  const placeholders = pieces.length - 1;
  if (params.length < placeholders) throw new StoreError('EPARAMS', `too few parameters for: ${sql.slice(0, 60)}`);
  if (params.length !== placeholders) throw new StoreError('EPARAMS', `${params.length} parameters for ${placeholders} placeholders in: ${sql.slice(0, 60)}`);
  let out = pieces[0] as string;
  for (let i = 0; i < placeholders; i++) out += sqlLiteral(params[i] as SqlValue) + (pieces[i + 1] as string);
  return out;
}
