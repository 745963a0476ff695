// The durable outbox: everything a site must deliver to the controller waits here
// until the controller says it committed it. A message is written in the same
// SQLite transaction as the record it carries (outboxStatements), so a record is
// never stored without its message nor the reverse.
import type { Database } from '../store/db.ts';
import type { GroupCommitter, Statement } from '../store/group-commit.ts';
import { SHEDDING_ORDER, STREAMS, type StreamName } from './protocol.ts';

/** One queued message, as stored. `data` is the JSON text of the payload's data. */
export interface OutboxMessage {
  id: string;
  stream: StreamName;
  seq: number;
  type: string;
  boot: string;
  ts: number;
  data: string;
  bytes: number;
}

export interface NewOutboxMessage {
  stream: StreamName;
  type: string;
  data: unknown;
  /** Defaults to a fresh UUID. */
  id?: string;
  /** Defaults to now. */
  ts?: number;
}

export type OutboxDepth = Record<StreamName, { count: number; bytes: number }>;

export interface ShedResult {
  /** Messages deleted, per stream. */
  shed: Partial<Record<StreamName, number>>;
  /** Bytes still queued after shedding (may exceed the quota: records are never shed). */
  bytes: number;
}

/** What the drainer and the sync service need from an outbox. */
export interface Outbox {
  /** Queues one message in its own transaction; resolves once it is durable. */
  add(msg: NewOutboxMessage): Promise<{ id: string }>;
  /** Queued messages of a stream with seq > afterSeq, in seq order. */
  pending(stream: StreamName, afterSeq: number, limit: number): Promise<OutboxMessage[]>;
  /** Removes acknowledged messages; unknown ids are ignored. */
  ack(ids: readonly string[]): Promise<void>;
  depth(): Promise<OutboxDepth>;
  /** Deletes the oldest sheddable messages until at most maxBytes are queued. */
  shed(maxBytes: number): Promise<ShedResult>;
}

export class OutboxError extends Error {
  readonly code: 'EOUTBOXDATA';
  constructor(code: 'EOUTBOXDATA', message: string) {
    super(message);
    this.code = code;
  }
}

function emptyDepth(): OutboxDepth {
  const d = {} as OutboxDepth;
  for (const s of STREAMS) d[s] = { count: 0, bytes: 0 };
  return d;
}

function serialize(msg: NewOutboxMessage): { id: string; ts: number; data: string; bytes: number } {
  const data = JSON.stringify(msg.data ?? null);
  if (data === undefined) throw new OutboxError('EOUTBOXDATA', `outbox data for ${msg.type} is not serializable`);
  return { id: msg.id ?? crypto.randomUUID(), ts: msg.ts ?? Date.now(), data, bytes: Buffer.byteLength(data) };
}

/**
 * The statements that queue one message. Callers add them to the batch that writes
 * the record the message carries (GroupCommitter.submit), so both commit or neither.
 * The stream's sequence number is taken inside the same transaction.
 */
export function outboxStatements(boot: string, msg: NewOutboxMessage): { id: string; statements: Statement[] } {
  const s = serialize(msg);
  return {
    id: s.id,
    statements: [
      {
        sql: 'INSERT INTO sync_streams (stream, seq) VALUES (?, 1) ON CONFLICT(stream) DO UPDATE SET seq = seq + 1',
        params: [msg.stream],
      },
      {
        sql: `INSERT INTO sync_outbox (msg_id, stream, seq, type, boot, ts, data, bytes)
              VALUES (?, ?, (SELECT seq FROM sync_streams WHERE stream = ?), ?, ?, ?, ?, ?)`,
        params: [s.id, msg.stream, msg.stream, msg.type, boot, s.ts, s.data, s.bytes],
      },
    ],
  };
}

/** The outbox in the agent's SQLite store (tables from migration 2). */
export class SqliteOutbox implements Outbox {
  readonly #db: Database;
  readonly #committer: GroupCommitter;
  readonly #boot: string;

  constructor(db: Database, committer: GroupCommitter, boot: string) {
    this.#db = db;
    this.#committer = committer;
    this.#boot = boot;
  }

  async add(msg: NewOutboxMessage): Promise<{ id: string }> {
    const { id, statements } = outboxStatements(this.#boot, msg);
    await this.#committer.submit(statements);
    return { id };
  }

  async pending(stream: StreamName, afterSeq: number, limit: number): Promise<OutboxMessage[]> {
    const rows = await this.#db.all<{ msg_id: string; seq: number; type: string; boot: string; ts: number; data: string; bytes: number }>(
      'SELECT msg_id, seq, type, boot, ts, data, bytes FROM sync_outbox WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?',
      [stream, afterSeq, limit],
    );
    return rows.map((r) => ({ id: r.msg_id, stream, seq: r.seq, type: r.type, boot: r.boot, ts: r.ts, data: r.data, bytes: r.bytes }));
  }

  async ack(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    // SQLite's default limit on bound parameters is 32766; stay well below it.
    const statements: Statement[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      statements.push({ sql: `DELETE FROM sync_outbox WHERE msg_id IN (${chunk.map(() => '?').join(',')})`, params: [...chunk] });
    }
    // Through the committer: every write on the connection must be, and a burst of
    // acks then costs one fsync.
    await this.#committer.submit(statements);
  }

  async depth(): Promise<OutboxDepth> {
    const d = emptyDepth();
    const rows = await this.#db.all<{ stream: string; n: number; b: number }>('SELECT stream, COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM sync_outbox GROUP BY stream');
    for (const r of rows) {
      if (r.stream in d) d[r.stream as StreamName] = { count: r.n, bytes: r.b };
    }
    return d;
  }

  async shed(maxBytes: number): Promise<ShedResult> {
    const depth = await this.depth();
    let total = Object.values(depth).reduce((a, s) => a + s.bytes, 0);
    const shed: Partial<Record<StreamName, number>> = {};
    for (const stream of SHEDDING_ORDER) {
      if (total <= maxBytes) break;
      // Oldest first: walk the stream in seq order and cut where enough bytes are freed.
      const rows = await this.#db.all<{ seq: number; bytes: number }>('SELECT seq, bytes FROM sync_outbox WHERE stream = ? ORDER BY seq', [stream]);
      let cut = 0;
      let count = 0;
      for (const r of rows) {
        if (total <= maxBytes) break;
        total -= r.bytes;
        cut = r.seq;
        count++;
      }
      if (count === 0) continue;
      await this.#committer.submit([{ sql: 'DELETE FROM sync_outbox WHERE stream = ? AND seq <= ?', params: [stream, cut] }]);
      shed[stream] = count;
    }
    return { shed, bytes: total };
  }
}

/**
 * The same contract in memory: for tests and for tools that must not touch a disk.
 * Not durable, by definition.
 */
export class MemoryOutbox implements Outbox {
  readonly #boot: string;
  readonly #streams = new Map<StreamName, OutboxMessage[]>();
  readonly #seq = new Map<StreamName, number>();
  readonly #byId = new Map<string, OutboxMessage>();

  constructor(boot: string) {
    this.#boot = boot;
  }

  async add(msg: NewOutboxMessage): Promise<{ id: string }> {
    const s = serialize(msg);
    if (this.#byId.has(s.id)) throw new OutboxError('EOUTBOXDATA', `duplicate outbox id ${s.id}`);
    const seq = (this.#seq.get(msg.stream) ?? 0) + 1;
    this.#seq.set(msg.stream, seq);
    const row: OutboxMessage = { id: s.id, stream: msg.stream, seq, type: msg.type, boot: this.#boot, ts: s.ts, data: s.data, bytes: s.bytes };
    let list = this.#streams.get(msg.stream);
    if (!list) this.#streams.set(msg.stream, (list = []));
    list.push(row);
    this.#byId.set(row.id, row);
    return { id: row.id };
  }

  async pending(stream: StreamName, afterSeq: number, limit: number): Promise<OutboxMessage[]> {
    const list = this.#streams.get(stream) ?? [];
    const out: OutboxMessage[] = [];
    for (const row of list) {
      if (row.seq <= afterSeq) continue;
      out.push({ ...row });
      if (out.length >= limit) break;
    }
    return out;
  }

  async ack(ids: readonly string[]): Promise<void> {
    for (const id of new Set(ids)) {
      const row = this.#byId.get(id);
      if (!row) continue;
      this.#byId.delete(id);
      const list = this.#streams.get(row.stream);
      if (list) list.splice(list.indexOf(row), 1);
    }
  }

  async depth(): Promise<OutboxDepth> {
    const d = emptyDepth();
    for (const [stream, list] of this.#streams) d[stream] = { count: list.length, bytes: list.reduce((a, r) => a + r.bytes, 0) };
    return d;
  }

  async shed(maxBytes: number): Promise<ShedResult> {
    const depth = await this.depth();
    let total = Object.values(depth).reduce((a, s) => a + s.bytes, 0);
    const shed: Partial<Record<StreamName, number>> = {};
    for (const stream of SHEDDING_ORDER) {
      const list = this.#streams.get(stream) ?? [];
      let count = 0;
      while (total > maxBytes && list.length > 0) {
        const row = list.shift() as OutboxMessage;
        this.#byId.delete(row.id);
        total -= row.bytes;
        count++;
      }
      if (count > 0) shed[stream] = count;
    }
    return { shed, bytes: total };
  }
}
