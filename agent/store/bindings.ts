import type { Database } from './db.ts';
import type { Statement } from './group-commit.ts';

/** One registered contact of an extension (RFC 3261 10.3). */
export interface Binding {
  extension: string;
  /** Contact URI exactly as the phone registered it. */
  contact: string;
  /** +sip.instance (RFC 5626), when the phone sent one. */
  instance: string | null;
  callId: string;
  cseq: number;
  /** Epoch milliseconds. */
  expiresAt: number;
  q: number | null;
  /** Where the REGISTER really came from, `udp:1.2.3.4:5060`: the NAT-safe target. */
  source: string;
  /** Path header values (RFC 3327), in order. */
  path: string[];
  userAgent: string | null;
  registeredAt: number;
}

interface BindingRow {
  extension: string;
  contact: string;
  instance: string | null;
  call_id: string;
  cseq: number;
  expires_at: number;
  q: number | null;
  source: string;
  path: string | null;
  user_agent: string | null;
  registered_at: number;
}

function fromRow(r: BindingRow): Binding {
  return {
    extension: r.extension,
    contact: r.contact,
    instance: r.instance,
    callId: r.call_id,
    cseq: r.cseq,
    expiresAt: r.expires_at,
    q: r.q,
    source: r.source,
    path: r.path ? (JSON.parse(r.path) as string[]) : [],
    userAgent: r.user_agent,
    registeredAt: r.registered_at,
  };
}

export function upsertBinding(b: Binding): Statement {
  return {
    sql: `INSERT INTO bindings (extension, contact, instance, call_id, cseq, expires_at, q, source, path, user_agent, registered_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
          ON CONFLICT(extension, contact) DO UPDATE SET instance = excluded.instance, call_id = excluded.call_id,
            cseq = excluded.cseq, expires_at = excluded.expires_at, q = excluded.q, source = excluded.source,
            path = excluded.path, user_agent = excluded.user_agent, registered_at = excluded.registered_at`,
    params: [b.extension, b.contact, b.instance, b.callId, b.cseq, b.expiresAt, b.q, b.source, b.path.length ? JSON.stringify(b.path) : null, b.userAgent, b.registeredAt],
  };
}

export function deleteBinding(extension: string, contact: string): Statement {
  return { sql: 'DELETE FROM bindings WHERE extension = ? AND contact = ?', params: [extension, contact] };
}

/** The columns of BindingRow, in this order, as the JSON arrays of LOAD_ALL_SQL. */
type BindingTuple = [string, string, string | null, string, number, number, number | null, string, string | null, string | null, number];

// All rows as one JSON text: `sqlite3` builds a JavaScript object per row, which for
// 10,000 bindings took 90-230 ms of a restart; SQLite's JSON and one JSON.parse take
// 13-20 ms (docs/decisions/0010-registrar-memory-start-and-load-shedding.md). Sorted
// here: an ORDER BY inside the aggregate makes SQLite pass each row as a string.
const LOAD_ALL_SQL = `SELECT json_group_array(json_array(extension, contact, instance, call_id, cseq, expires_at, q, source, path, user_agent, registered_at)) AS rows
  FROM bindings`;

/** Bindings still valid at `now`; expired rows are left for the caller to remove. */
export async function loadBindings(db: Database, now: number): Promise<{ live: Binding[]; expired: Binding[] }> {
  const result = await db.get<{ rows: string | null }>(LOAD_ALL_SQL);
  const tuples = JSON.parse(result?.rows ?? '[]') as BindingTuple[];
  // By extension, then oldest first (the registrar replaces the oldest contact).
  tuples.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[10] - b[10]));
  const live: Binding[] = [];
  const expired: Binding[] = [];
  for (const [extension, contact, instance, call_id, cseq, expires_at, q, source, path, user_agent, registered_at] of tuples) {
    const row: BindingRow = { extension, contact, instance, call_id, cseq, expires_at, q, source, path, user_agent, registered_at };
    (expires_at > now ? live : expired).push(fromRow(row));
  }
  return { live, expired };
}
