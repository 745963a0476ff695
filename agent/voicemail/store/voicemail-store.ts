// Messages on disk and in SQLite. Layout under <state_dir>/voicemail:
//   <mailbox>/<id>.wav                 a message (its folder is a column, not a directory)
//   <mailbox>/.<id>.wav.<hex>.tmp      a recording in progress (WavFileWriter)
//   <mailbox>/greetings/<kind>.wav     greetings (greetings.ts)
// A deposit is: pending row committed → audio to a temporary file → fsync →
// rename → fsync folder → one transaction turns the row into an INBOX message.
// Deletion unlinks the file (and fsyncs the folder) before deleting the row, so a
// crash can leave a row without a file (dropped at start) but never a file that a
// deleted message left behind. reconcile.ts repairs every in-between state.
import { randomBytes } from 'node:crypto';
import { mkdir, open, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Database } from '../../store/db.ts';
import type { GroupCommitter } from '../../store/group-commit.ts';
import { FOLDERS, VoicemailStoreError, type DepositReason, type Folder, type MailboxCounts, type StoredMessage } from './types.ts';

const MAILBOX_RE = /^[0-9]{2,15}$/;

interface MessageRow {
  id: string;
  mailbox: string;
  folder: string;
  caller: string;
  caller_name: string | null;
  reason: string;
  received_at: number;
  duration_ms: number;
  file: string;
}

export interface PendingDeposit {
  id: string;
  mailbox: string;
  /** Final absolute path of the WAV. */
  file: string;
  receivedAt: number;
}

/** fsync a directory so that a rename or unlink in it survives a power cut. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class VoicemailStore {
  readonly root: string;
  readonly #db: Database;
  readonly #committer: GroupCommitter;

  constructor(deps: { db: Database; committer: GroupCommitter; root: string }) {
    this.#db = deps.db;
    this.#committer = deps.committer;
    this.root = deps.root;
  }

  mailboxDir(mailbox: string): string {
    if (!MAILBOX_RE.test(mailbox)) throw new VoicemailStoreError('EMAILBOX', `not a mailbox number: ${JSON.stringify(mailbox)}`);
    return path.join(this.root, mailbox);
  }

  /** Step 1 of a deposit: the pending row, durable before any audio is written. */
  async beginDeposit(d: { mailbox: string; caller: string; callerName?: string; reason: DepositReason | 'recovered' }): Promise<PendingDeposit> {
    const dir = this.mailboxDir(d.mailbox);
    await mkdir(dir, { recursive: true });
    const receivedAt = Date.now();
    // Sortable by time, unique without coordination.
    const id = `${receivedAt.toString(36)}-${randomBytes(5).toString('hex')}`;
    const file = `${d.mailbox}/${id}.wav`;
    await this.#committer.submit([
      {
        sql: 'INSERT INTO voicemail_messages (id, mailbox, folder, caller, caller_name, reason, received_at, duration_ms, file, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)',
        params: [id, d.mailbox, 'pending', d.caller, d.callerName ?? null, d.reason, receivedAt, file, receivedAt],
      },
    ]);
    return { id, mailbox: d.mailbox, file: path.join(this.root, file), receivedAt };
  }

  /** The last step: the renamed file becomes an INBOX message, in one transaction. */
  async commitDeposit(id: string, durationMs: number): Promise<void> {
    await this.#committer.submit([
      { sql: "UPDATE voicemail_messages SET folder = 'INBOX', duration_ms = ?, updated_at = ? WHERE id = ? AND folder = 'pending'", params: [Math.round(durationMs), Date.now(), id] },
    ]);
  }

  /** A deposit that kept nothing (too short, caller gone before the tone). */
  async abandonDeposit(id: string): Promise<void> {
    await this.#committer.submit([{ sql: "DELETE FROM voicemail_messages WHERE id = ? AND folder = 'pending'", params: [id] }]);
  }

  /** Every message of a mailbox in a folder (all folders when absent), oldest first. Pending deposits are not messages yet. */
  async list(mailbox: string, folder?: Folder): Promise<StoredMessage[]> {
    const rows =
      folder === undefined
        ? await this.#db.all<MessageRow>("SELECT * FROM voicemail_messages WHERE mailbox = ? AND folder != 'pending' ORDER BY received_at, id", [mailbox])
        : await this.#db.all<MessageRow>('SELECT * FROM voicemail_messages WHERE mailbox = ? AND folder = ? ORDER BY received_at, id', [mailbox, folder]);
    return rows.map((r) => this.#toMessage(r));
  }

  async get(id: string): Promise<StoredMessage | undefined> {
    const row = await this.#db.get<MessageRow>("SELECT * FROM voicemail_messages WHERE id = ? AND folder != 'pending'", [id]);
    return row === undefined ? undefined : this.#toMessage(row);
  }

  async counts(mailbox: string): Promise<MailboxCounts> {
    const rows = await this.#db.all<{ folder: string; n: number }>('SELECT folder, COUNT(*) AS n FROM voicemail_messages WHERE mailbox = ? GROUP BY folder', [mailbox]);
    const by = new Map(rows.map((r) => [r.folder, r.n]));
    const newMessages = by.get('INBOX') ?? 0;
    const oldMessages = (by.get('Old') ?? 0) + (by.get('Saved') ?? 0);
    // A deposit in progress holds a place, so concurrent callers cannot overfill a mailbox.
    return { newMessages, oldMessages, total: newMessages + oldMessages + (by.get('pending') ?? 0) };
  }

  /** Mailboxes that have any message or pending deposit (for the startup scan and MWI). */
  async mailboxesWithMessages(): Promise<string[]> {
    return (await this.#db.all<{ mailbox: string }>('SELECT DISTINCT mailbox FROM voicemail_messages')).map((r) => r.mailbox);
  }

  async move(id: string, folder: Folder): Promise<void> {
    if (!FOLDERS.includes(folder)) throw new VoicemailStoreError('EFOLDER', `no folder ${folder}`);
    await this.#committer.submit([{ sql: "UPDATE voicemail_messages SET folder = ?, updated_at = ? WHERE id = ? AND folder != 'pending'", params: [folder, Date.now(), id] }]);
  }

  /** File first (and its folder entry made durable), then the row. */
  async remove(id: string): Promise<void> {
    const row = await this.#db.get<MessageRow>('SELECT * FROM voicemail_messages WHERE id = ?', [id]);
    if (row === undefined) throw new VoicemailStoreError('ENOMESSAGE', `no message ${id}`);
    const file = path.join(this.root, row.file);
    await unlink(file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await syncDirectory(path.dirname(file));
    await this.#committer.submit([{ sql: 'DELETE FROM voicemail_messages WHERE id = ?', params: [id] }]);
  }

  /** Raw rows for the startup scan, pending ones included. */
  async allRows(): Promise<Array<StoredMessage & { pending: boolean }>> {
    const rows = await this.#db.all<MessageRow>('SELECT * FROM voicemail_messages');
    return rows.map((r) => ({ ...this.#toMessage(r), pending: r.folder === 'pending' }));
  }

  /** Indexes a whole file found on disk that no row knows (reconcile.ts). */
  async indexFound(d: { id: string; mailbox: string; receivedAt: number; durationMs: number }): Promise<void> {
    await this.#committer.submit([
      {
        sql: 'INSERT INTO voicemail_messages (id, mailbox, folder, caller, caller_name, reason, received_at, duration_ms, file, updated_at) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)',
        params: [d.id, d.mailbox, 'INBOX', '', 'recovered', d.receivedAt, Math.round(d.durationMs), `${d.mailbox}/${d.id}.wav`, Date.now()],
      },
    ]);
  }

  async deleteRow(id: string): Promise<void> {
    await this.#committer.submit([{ sql: 'DELETE FROM voicemail_messages WHERE id = ?', params: [id] }]);
  }

  #toMessage(r: MessageRow): StoredMessage {
    const m: StoredMessage = {
      id: r.id,
      mailbox: r.mailbox,
      folder: r.folder as Folder,
      caller: r.caller,
      reason: r.reason,
      receivedAt: r.received_at,
      durationMs: r.duration_ms,
      file: path.join(this.root, r.file),
    };
    if (r.caller_name !== null) m.callerName = r.caller_name;
    return m;
  }
}
