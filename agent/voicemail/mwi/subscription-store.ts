// MWI subscriptions survive a restart: each is kept in SQLite with its dialog, so
// after a restart the phone's lamp is brought up to date inside the dialog it still
// believes in. Our CSeq is not written on every NOTIFY; a restored dialog resumes
// CSEQ_RESTART_GAP above the stored value, which keeps it increasing (RFC 3261
// §12.2.1.1 needs higher, not consecutive).
import { Dialog, type DialogInit } from '../../sip/dialog.ts';
import type { Endpoint } from '../../sip/types.ts';
import type { Database } from '../../store/db.ts';
import type { GroupCommitter } from '../../store/group-commit.ts';

export const CSEQ_RESTART_GAP = 10_000;

export interface Subscription {
  mailbox: string;
  dialog: Dialog;
  expiresAt: number;
}

interface StoredDialog extends Omit<DialogInit, 'state' | 'role'> {
  flow?: Endpoint;
}

export class SubscriptionStore {
  readonly #db: Database;
  readonly #committer: GroupCommitter;

  constructor(deps: { db: Database; committer: GroupCommitter }) {
    this.#db = deps.db;
    this.#committer = deps.committer;
  }

  async save(s: Subscription): Promise<void> {
    const d = s.dialog;
    const { role: _role, state: _state, ...kept } = d.snapshot();
    const stored: StoredDialog = { ...kept, ...(d.flow ? { flow: d.flow } : {}) };
    await this.#committer.submit([
      {
        sql: 'INSERT INTO mwi_subscriptions (id, mailbox, dialog, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET dialog = excluded.dialog, expires_at = excluded.expires_at',
        params: [d.id, s.mailbox, JSON.stringify(stored), s.expiresAt],
      },
    ]);
  }

  async remove(id: string): Promise<void> {
    await this.#committer.submit([{ sql: 'DELETE FROM mwi_subscriptions WHERE id = ?', params: [id] }]);
  }

  /** Live subscriptions; expired ones are deleted. */
  async load(now: number): Promise<Subscription[]> {
    await this.#committer.submit([{ sql: 'DELETE FROM mwi_subscriptions WHERE expires_at <= ?', params: [now] }]);
    const rows = await this.#db.all<{ mailbox: string; dialog: string; expires_at: number }>('SELECT mailbox, dialog, expires_at FROM mwi_subscriptions');
    const out: Subscription[] = [];
    for (const row of rows) {
      let stored: StoredDialog;
      try {
        stored = JSON.parse(row.dialog) as StoredDialog;
      } catch {
        continue;
      }
      // JSON loses the null prototype of params; Dialog copies what it needs.
      const dialog = new Dialog({ ...stored, localSeq: stored.localSeq + CSEQ_RESTART_GAP, role: 'uas', state: 'confirmed' });
      // A TCP connection id names a connection of the previous run: keep only the address.
      if (stored.flow) dialog.flow = { transport: stored.flow.transport, address: stored.flow.address, port: stored.flow.port };
      out.push({ mailbox: row.mailbox, dialog, expiresAt: row.expires_at });
    }
    return out;
  }
}
