// Call records (CDRs) in the agent's SQLite store (tables from migration 3). A record
// is written once, when its call ends, and is durable before write() resolves. When
// the agent syncs with a controller, the record's outbox message (stream `records`,
// type `call.record`, docs/protocol.md) is queued in the same transaction, so the
// controller gets every stored record and nothing that was not stored.
import type { CallDisposition, CallLegRecord, CallMode, CallRecord } from '../calls/call-record.ts';
import type { NewOutboxMessage } from '../sync/outbox.ts';
import type { StreamName } from '../sync/protocol.ts';
import type { Database } from './db.ts';
import type { GroupCommitter, Statement } from './group-commit.ts';

/** The stream and message type call records travel on (docs/protocol.md). */
export const CALL_RECORD_STREAM = 'records' satisfies StreamName;
export const CALL_RECORD_TYPE = 'call.record';

/**
 * Where the outbox statements come from: SyncService has this shape. Optional so the
 * store works without sync (tools, tests, a site whose sync failed to start keeps
 * its records locally).
 */
export interface RecordOutbox {
  outboxStatements(msg: NewOutboxMessage): { id: string; statements: Statement[] };
  /** Called after the commit: start sending what was just queued. */
  kick(stream?: StreamName): void;
}

export class CallRecordError extends Error {
  readonly code: 'EINVALID' | 'EDUPLICATE';
  constructor(code: 'EINVALID' | 'EDUPLICATE', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

const DISPOSITIONS: ReadonlySet<CallDisposition> = new Set(['answered', 'busy', 'no-answer', 'unavailable', 'cancelled', 'rejected', 'failed', 'voicemail']);
const DEFAULT_LIST_LIMIT = 100;
const MAX_LIST_LIMIT = 1000;

interface CallRow {
  id: string;
  site_id: string;
  caller: string;
  caller_name: string | null;
  dialed: string;
  answered_by: string | null;
  started_at: number;
  answered_at: number | null;
  ended_at: number;
  disposition: string;
  final_status: number | null;
  reason: string | null;
  emergency: number;
  mode_durations: string;
  media_policy: string;
}

interface LegRow {
  call_id: string;
  leg: string;
  direction: string;
  kind: string;
  party: string;
  sip_call_id: string | null;
  started_at: number;
  answered_at: number | null;
  ended_at: number;
  status: number | null;
  ended_by: string | null;
}

export class CallRecordStore {
  readonly #db: Database;
  readonly #committer: GroupCommitter;
  readonly #outbox: RecordOutbox | undefined;

  constructor(db: Database, committer: GroupCommitter, outbox?: RecordOutbox) {
    this.#db = db;
    this.#committer = committer;
    this.#outbox = outbox;
  }

  /**
   * Stores the record (and queues its outbox message) in one transaction; resolves
   * once it is committed and fsynced. A second write with the same id is refused
   * (EDUPLICATE): a record is final when written.
   */
  async write(record: CallRecord): Promise<void> {
    validateCallRecord(record);
    const statements = recordStatements(record);
    if (this.#outbox) {
      // The record's id is also its message id: the controller deduplicates by it.
      statements.push(...this.#outbox.outboxStatements({ stream: CALL_RECORD_STREAM, type: CALL_RECORD_TYPE, id: record.id, ts: record.endedAt, data: record }).statements);
    }
    try {
      await this.#committer.submit(statements);
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT' && (await this.#exists(record.id))) {
        throw new CallRecordError('EDUPLICATE', `call record ${record.id} is already stored`, { cause: err });
      }
      throw err;
    }
    this.#outbox?.kick(CALL_RECORD_STREAM);
  }

  async get(id: string): Promise<CallRecord | undefined> {
    const row = await this.#db.get<CallRow>('SELECT * FROM calls WHERE id = ?', [id]);
    if (!row) return undefined;
    const legs = await this.#db.all<LegRow>('SELECT * FROM call_legs WHERE call_id = ? ORDER BY rowid', [id]);
    return fromRows(row, legs);
  }

  /**
   * Records in start order, oldest first. With `since` (epoch ms): the first `limit`
   * calls that started at or after it, for readers that page forward. Without: the
   * latest `limit` calls. `limit` defaults to 100 and is capped at 1000.
   */
  async list(options: { since?: number; limit?: number } = {}): Promise<CallRecord[]> {
    const limit = Math.min(Math.max(1, Math.floor(options.limit ?? DEFAULT_LIST_LIMIT)), MAX_LIST_LIMIT);
    if (!Number.isFinite(limit)) throw new CallRecordError('EINVALID', `list limit must be a number, got ${String(options.limit)}`);
    let rows: CallRow[];
    if (options.since !== undefined) {
      if (!Number.isFinite(options.since)) throw new CallRecordError('EINVALID', `list since must be epoch milliseconds, got ${String(options.since)}`);
      rows = await this.#db.all<CallRow>('SELECT * FROM calls WHERE started_at >= ? ORDER BY started_at, rowid LIMIT ?', [options.since, limit]);
    } else {
      rows = (await this.#db.all<CallRow>('SELECT * FROM calls ORDER BY started_at DESC, rowid DESC LIMIT ?', [limit])).reverse();
    }
    if (rows.length === 0) return [];
    const ids = rows.map((r) => r.id);
    const legs = await this.#db.all<LegRow>(`SELECT * FROM call_legs WHERE call_id IN (${ids.map(() => '?').join(',')}) ORDER BY rowid`, ids);
    const byCall = new Map<string, LegRow[]>();
    for (const leg of legs) {
      let list = byCall.get(leg.call_id);
      if (!list) byCall.set(leg.call_id, (list = []));
      list.push(leg);
    }
    return rows.map((r) => fromRows(r, byCall.get(r.id) ?? []));
  }

  async #exists(id: string): Promise<boolean> {
    return (await this.#db.get('SELECT 1 AS one FROM calls WHERE id = ?', [id])) !== undefined;
  }
}

/** The statements that store one record; exported for producers that batch it with more. */
export function recordStatements(r: CallRecord): Statement[] {
  const statements: Statement[] = [
    {
      sql: `INSERT INTO calls (id, site_id, caller, caller_name, dialed, answered_by, started_at, answered_at, ended_at,
              disposition, final_status, reason, emergency, mode_durations, media_policy)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      params: [
        r.id,
        r.siteId,
        r.caller,
        r.callerName ?? null,
        r.dialed,
        r.answeredBy ?? null,
        r.startedAt,
        r.answeredAt ?? null,
        r.endedAt,
        r.disposition,
        r.finalStatus ?? null,
        r.reason ?? null,
        r.emergency ? 1 : 0,
        JSON.stringify(r.modeDurations),
        r.mediaPolicy,
      ],
    },
  ];
  for (const l of r.legs) {
    statements.push({
      sql: `INSERT INTO call_legs (call_id, leg, direction, kind, party, sip_call_id, started_at, answered_at, ended_at, status, ended_by)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      params: [r.id, l.leg, l.direction, l.kind, l.party, l.callId ?? null, l.startedAt, l.answeredAt ?? null, l.endedAt, l.status ?? null, l.endedBy ?? null],
    });
  }
  return statements;
}

function fromRows(r: CallRow, legs: LegRow[]): CallRecord {
  const record: CallRecord = {
    id: r.id,
    siteId: r.site_id,
    caller: r.caller,
    dialed: r.dialed,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    disposition: r.disposition as CallDisposition,
    emergency: r.emergency === 1,
    modeDurations: JSON.parse(r.mode_durations) as Record<CallMode, number>,
    mediaPolicy: r.media_policy as CallRecord['mediaPolicy'],
    legs: legs.map(legFromRow),
  };
  if (r.caller_name !== null) record.callerName = r.caller_name;
  if (r.answered_by !== null) record.answeredBy = r.answered_by;
  if (r.answered_at !== null) record.answeredAt = r.answered_at;
  if (r.final_status !== null) record.finalStatus = r.final_status;
  if (r.reason !== null) record.reason = r.reason;
  return record;
}

function legFromRow(l: LegRow): CallLegRecord {
  const leg: CallLegRecord = {
    leg: l.leg,
    direction: l.direction as CallLegRecord['direction'],
    kind: l.kind as CallLegRecord['kind'],
    party: l.party,
    startedAt: l.started_at,
    endedAt: l.ended_at,
  };
  if (l.sip_call_id !== null) leg.callId = l.sip_call_id;
  if (l.answered_at !== null) leg.answeredAt = l.answered_at;
  if (l.status !== null) leg.status = l.status;
  if (l.ended_by !== null) leg.endedBy = l.ended_by as NonNullable<CallLegRecord['endedBy']>;
  return leg;
}

/**
 * Refuses a record the store could not give back as written: a bug in the producer
 * must surface as a clear error at write time, not as a broken row found later.
 */
export function validateCallRecord(r: CallRecord): void {
  const problems: string[] = [];
  const text = (key: string, v: unknown, optional = false) => {
    if (optional && v === undefined) return;
    if (typeof v !== 'string' || (!optional && v.length === 0)) problems.push(`${key} must be a non-empty string`);
  };
  const time = (key: string, v: unknown, optional = false) => {
    if (optional && v === undefined) return;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) problems.push(`${key} must be epoch milliseconds`);
  };
  text('id', r.id);
  text('siteId', r.siteId);
  text('caller', r.caller);
  text('dialed', r.dialed);
  text('callerName', r.callerName, true);
  text('answeredBy', r.answeredBy, true);
  text('reason', r.reason, true);
  time('startedAt', r.startedAt);
  time('answeredAt', r.answeredAt, true);
  time('endedAt', r.endedAt);
  if (typeof r.startedAt === 'number' && typeof r.endedAt === 'number' && r.endedAt < r.startedAt) problems.push('endedAt is before startedAt');
  if (!DISPOSITIONS.has(r.disposition)) problems.push(`disposition ${JSON.stringify(r.disposition)} is not one of ${[...DISPOSITIONS].join(', ')}`);
  if (r.finalStatus !== undefined && !(Number.isInteger(r.finalStatus) && r.finalStatus >= 100 && r.finalStatus <= 699)) problems.push('finalStatus must be a SIP status 100-699');
  if (typeof r.emergency !== 'boolean') problems.push('emergency must be a boolean');
  if (r.mediaPolicy !== 'direct' && r.mediaPolicy !== 'anchored') problems.push('mediaPolicy must be direct or anchored');
  if (r.modeDurations === null || typeof r.modeDurations !== 'object' || !Object.values(r.modeDurations).every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
    problems.push('modeDurations must map each mode to milliseconds');
  }
  if (!Array.isArray(r.legs)) problems.push('legs must be a list');
  else {
    const seen = new Set<string>();
    r.legs.forEach((l, i) => {
      text(`legs[${i}].leg`, l.leg);
      if (seen.has(l.leg)) problems.push(`legs[${i}].leg ${JSON.stringify(l.leg)} appears twice`);
      seen.add(l.leg);
      if (l.direction !== 'inbound' && l.direction !== 'outbound') problems.push(`legs[${i}].direction must be inbound or outbound`);
      if (l.kind !== 'sip' && l.kind !== 'channel' && l.kind !== 'application') problems.push(`legs[${i}].kind must be sip, channel or application`);
      text(`legs[${i}].party`, l.party);
      text(`legs[${i}].callId`, l.callId, true);
      time(`legs[${i}].startedAt`, l.startedAt);
      time(`legs[${i}].answeredAt`, l.answeredAt, true);
      time(`legs[${i}].endedAt`, l.endedAt);
      if (l.status !== undefined && !(Number.isInteger(l.status) && l.status >= 100 && l.status <= 699)) problems.push(`legs[${i}].status must be a SIP status 100-699`);
      if (l.endedBy !== undefined && !['caller', 'callee', 'system', 'cancel'].includes(l.endedBy)) problems.push(`legs[${i}].endedBy must be caller, callee, system or cancel`);
    });
  }
  if (problems.length > 0) throw new CallRecordError('EINVALID', `call record ${typeof r.id === 'string' ? r.id : '?'} is invalid: ${problems.join('; ')}`);
}
