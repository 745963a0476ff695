// Distributed voicemail (docs/sync.md#distributed-voicemail): a message taken here for
// a mailbox homed at a peer site is stored like any other and handed to its home site
// with the file transfer between sites (agent/sync/files) whenever that site is
// reachable; the home site indexes it exactly once (the transfer's guarantee) and
// lights the lamp; when it is heard, marked new again or deleted there, the change
// flows back and this site's copy follows.
//
//   origin (site A)                               home (site B)
//   voicemail.deposited (guest) → forwardFile ──▶ index: row in voicemail_messages
//                                                 voicemail.counts → state changed?
//   onRemoteState: Old / INBOX / deleted     ◀── setRemoteState(heard|unheard|deleted)
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { MailboxConfig } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { Database } from '../store/db.ts';
import type { GroupCommitter, Statement } from '../store/group-commit.ts';
import type { FileHandler, ReceivedFile } from '../sync/files/receiver.ts';
import type { RemoteStateChange, RemoteStateHandler } from '../sync/files/remote-state.ts';
import type { ForwardRequest, ForwardResult } from '../sync/files/sender.ts';
import type { RemoteFileState } from '../sync/protocol.ts';
import type { Voicemail } from './voicemail.ts';

/** What forwarding needs of the file transfer (FileTransfers). */
export interface VoicemailFiles {
  forwardFile(to: string, file: string, req: ForwardRequest): Promise<ForwardResult>;
  handle(type: string, handler: FileHandler & { onRemoteState?: RemoteStateHandler }): void;
  setRemoteState(id: string, state: RemoteFileState): Promise<{ change: string; to: string }>;
}

export interface VoicemailForwardingOptions {
  voicemail: Voicemail;
  files: VoicemailFiles;
  /** The peer site that is home for a mailbox number, or undefined (ours, or nobody's). */
  homeOf: (mailbox: string) => string | undefined;
  /** Settings for messages taken for peers' mailboxes (the site's mailbox defaults). */
  guestMailbox: MailboxConfig;
  bus: EventBus;
  db: Database;
  committer: GroupCommitter;
  logger: Logger;
}

/** The file type on the wire. */
export const VOICEMAIL_FILE = 'voicemail';

/** What travels with the file: enough to index it at home without asking back. */
interface VoicemailMeta {
  mailbox: string;
  caller: string;
  callerName?: string;
  reason: string;
  receivedAt: number;
  durationMs: number;
}

function metaOf(file: Pick<ReceivedFile, 'meta'>): VoicemailMeta {
  const m = file.meta;
  const text = (k: string): string => (typeof m[k] === 'string' ? (m[k] as string) : '');
  const num = (k: string): number => (typeof m[k] === 'number' && Number.isFinite(m[k]) ? (m[k] as number) : 0);
  return { mailbox: text('mailbox'), caller: text('caller'), ...(text('callerName') ? { callerName: text('callerName') } : {}), reason: text('reason') || 'unavailable', receivedAt: num('receivedAt'), durationMs: num('durationMs') };
}

export class VoicemailForwarding {
  readonly #o: VoicemailForwardingOptions;
  readonly #offs: Array<() => void> = [];
  /** State reports, one at a time: two count changes must not report one change twice. */
  #reports: Promise<void> = Promise.resolve();

  constructor(options: VoicemailForwardingOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    const { voicemail, files, bus } = this.#o;
    voicemail.acceptGuests((mailbox) => (this.#guestHome(mailbox) !== undefined ? this.#o.guestMailbox : undefined));
    files.handle(VOICEMAIL_FILE, {
      destination: (f) => this.#destination(f),
      index: (f) => this.#index(f),
      indexed: (f) => void this.#indexed(f),
      onRemoteState: (c) => this.#applyRemote(c),
    });
    this.#offs.push(
      bus.on('voicemail.deposited', (m) => {
        const home = this.#guestHome(m.mailbox);
        if (home !== undefined) void this.#forward(home, m.messageId, m.file, { mailbox: m.mailbox, caller: m.caller, ...(m.callerName ? { callerName: m.callerName } : {}), reason: m.reason, receivedAt: m.receivedAt, durationMs: m.durationMs });
      }),
      bus.on('voicemail.counts', ({ mailbox }) => {
        if (voicemail.isOwnMailbox(mailbox)) this.#report(mailbox);
      }),
    );
    await this.#sweep();
  }

  stop(): void {
    for (const off of this.#offs.splice(0)) off();
  }

  /** A peer's mailbox (not ours): where its messages go. */
  #guestHome(mailbox: string): string | undefined {
    if (this.#o.voicemail.isOwnMailbox(mailbox)) return undefined;
    return this.#o.homeOf(mailbox);
  }

  async #forward(home: string, id: string, file: string, meta: VoicemailMeta): Promise<void> {
    try {
      const r = await this.#o.files.forwardFile(home, file, { id, type: VOICEMAIL_FILE, meta: { ...meta } });
      if (r.queued) this.#o.logger.info({ event: 'voicemail.forward_queued', id, mailbox: meta.mailbox, to: home, bytes: r.size }, `voicemail ${id} for ${meta.mailbox} queued for ${home}`);
    } catch (err) {
      this.#o.logger.error({ event: 'voicemail.forward_failed', id, to: home, err }, `could not queue voicemail ${id} for ${home}: ${(err as Error).message}`);
    }
  }

  /**
   * At start: guests' messages taken before a crash that came between the deposit's
   * commit and the forward's (forwardFile is idempotent by id, so a repeat is harmless).
   */
  async #sweep(): Promise<void> {
    const rows = await this.#o.db.all<{ id: string; mailbox: string }>(
      "SELECT m.id, m.mailbox FROM voicemail_messages m WHERE m.folder != 'pending' AND NOT EXISTS (SELECT 1 FROM file_transfers_out t WHERE t.id = m.id)",
    );
    for (const r of rows) {
      const home = this.#guestHome(r.mailbox);
      if (home === undefined) continue;
      const m = await this.#o.voicemail.store.get(r.id);
      if (m !== undefined) await this.#forward(home, m.id, m.file, { mailbox: m.mailbox, caller: m.caller, ...(m.callerName ? { callerName: m.callerName } : {}), reason: m.reason, receivedAt: m.receivedAt, durationMs: m.durationMs });
    }
  }

  // ---- at the home site --------------------------------------------------------

  #destination(f: Omit<ReceivedFile, 'path'>): string {
    const { mailbox } = metaOf(f);
    // A bad mailbox is refused in index(); until then the file waits in the incoming dir.
    if (!this.#o.voicemail.isOwnMailbox(mailbox)) return path.join(this.#o.voicemail.store.root, '.incoming', `${f.id}.wav`);
    return path.join(this.#o.voicemail.store.mailboxDir(mailbox), `${f.id}.wav`);
  }

  #index(f: ReceivedFile): Statement[] {
    const meta = metaOf(f);
    // Thrown: refused for now; the sender keeps it and retries (a config may be catching up).
    if (!this.#o.voicemail.isOwnMailbox(meta.mailbox)) throw new Error(`voicemail ${f.id} from ${f.from}: ${JSON.stringify(meta.mailbox)} is not a mailbox of this site`);
    const now = Date.now();
    return [
      {
        sql: 'INSERT INTO voicemail_messages (id, mailbox, folder, caller, caller_name, reason, received_at, duration_ms, file, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        params: [f.id, meta.mailbox, 'INBOX', meta.caller, meta.callerName ?? null, meta.reason, meta.receivedAt || now, Math.round(meta.durationMs), path.relative(this.#o.voicemail.store.root, f.path), now],
      },
      { sql: 'INSERT INTO voicemail_forwarded_state (id, origin, reported) VALUES (?, ?, ?)', params: [f.id, f.from, 'unheard'] },
    ];
  }

  async #indexed(f: ReceivedFile): Promise<void> {
    const m = await this.#o.voicemail.store.get(f.id);
    if (m === undefined) return;
    this.#o.logger.info({ event: 'voicemail.received', id: f.id, mailbox: m.mailbox, from: f.from }, `voicemail for ${m.mailbox} received from ${f.from}`);
    this.#o.voicemail.messageIndexed(m);
  }

  /** A mailbox's counts changed here: tell the origins of its forwarded messages what changed. */
  #report(mailbox: string): void {
    this.#reports = this.#reports.then(() => this.#reportNow(mailbox)).catch((err: unknown) => this.#o.logger.error({ event: 'voicemail.report_failed', mailbox, err }, 'could not report voicemail state to its origin'));
  }

  async #reportNow(mailbox: string): Promise<void> {
    const rows = await this.#o.db.all<{ id: string; reported: string; folder: string | null; mailbox: string | null }>(
      'SELECT s.id, s.reported, m.folder, m.mailbox FROM voicemail_forwarded_state s LEFT JOIN voicemail_messages m ON m.id = s.id WHERE m.mailbox = ? OR m.id IS NULL',
      [mailbox],
    );
    for (const r of rows) {
      const now: RemoteFileState = r.folder === null ? 'deleted' : r.folder === 'INBOX' ? 'unheard' : 'heard';
      if (now === r.reported) continue;
      // Durable at the transfer first: a crash before our mark reports it again, which
      // the origin applies idempotently (a folder set twice, a row deleted once).
      await this.#o.files.setRemoteState(r.id, now);
      await this.#o.committer.submit([
        now === 'deleted'
          ? { sql: 'DELETE FROM voicemail_forwarded_state WHERE id = ?', params: [r.id] }
          : { sql: 'UPDATE voicemail_forwarded_state SET reported = ? WHERE id = ?', params: [now, r.id] },
      ]);
      this.#o.logger.info({ event: 'voicemail.state_reported', id: r.id, state: now }, `voicemail ${r.id} ${now}: origin told`);
    }
  }

  // ---- back at the origin --------------------------------------------------------

  async #applyRemote(c: RemoteStateChange): Promise<Statement[]> {
    this.#o.logger.info({ event: 'voicemail.remote_state', id: c.id, state: c.state, from: c.from }, `voicemail ${c.id} ${c.state} at ${c.from}`);
    switch (c.state) {
      case 'heard':
        return [{ sql: "UPDATE voicemail_messages SET folder = 'Old', updated_at = ? WHERE id = ? AND folder = 'INBOX'", params: [Date.now(), c.id] }];
      case 'unheard':
        return [{ sql: "UPDATE voicemail_messages SET folder = 'INBOX', updated_at = ? WHERE id = ? AND folder != 'pending'", params: [Date.now(), c.id] }];
      case 'deleted': {
        // File first, as VoicemailStore.remove does: a crash leaves a row without a file
        // (dropped at start), never a file the startup scan would index again.
        const m = await this.#o.voicemail.store.get(c.id);
        if (m !== undefined) {
          await unlink(m.file).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
          });
        }
        return [{ sql: 'DELETE FROM voicemail_messages WHERE id = ?', params: [c.id] }];
      }
    }
  }
}
