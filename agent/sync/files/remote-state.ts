// State flowing back to where a file came from: when a forwarded voicemail is heard or
// deleted at its home site, the site that recorded it is told, so that its own copy
// follows. Changes are stored at the home site until the origin acknowledges them
// (sent again while it is reachable), and applied at the origin once per change id,
// never older over newer.
import type { Logger } from 'pino';
import type { Database } from '../../store/db.ts';
import type { GroupCommitter, Statement } from '../../store/group-commit.ts';
import type { PeerLink } from '../peer-link.ts';
import { encode, topics, type FileStateAck, type FileStateChange, type RemoteFileState } from '../protocol.ts';
import { FileTransferError } from './errors.ts';

/** A change the home site made to a file this site forwarded. */
export interface RemoteStateChange {
  id: string;
  /** The home site. */
  from: string;
  type: string;
  state: RemoteFileState;
  at: number;
}

/** Statements that apply the change locally; they commit with its "applied" mark. */
export type RemoteStateHandler = (change: RemoteStateChange) => Statement[] | Promise<Statement[]>;

export interface RemoteStatesOptions {
  link: PeerLink;
  db: Database;
  committer: GroupCommitter;
  logger: Logger;
  reachable: (site: string) => boolean;
  /** The origin of a file we received (our receiver's table). */
  incoming: (id: string) => Promise<{ from: string; type: string; state: string } | undefined>;
}

export class RemoteStates {
  readonly #o: RemoteStatesOptions;
  readonly #handlers = new Map<string, RemoteStateHandler>();
  #chain: Promise<void> = Promise.resolve();

  constructor(options: RemoteStatesOptions) {
    this.#o = options;
  }

  handle(type: string, handler: RemoteStateHandler): void {
    this.#handlers.set(type, handler);
  }

  /** Home side: the file `id` we received changed state; tell its origin (durably). */
  async set(id: string, state: RemoteFileState, at = Date.now()): Promise<{ change: string; to: string }> {
    const file = await this.#o.incoming(id);
    if (!file) throw new FileTransferError('ENOTFOUND', `no received file with id ${id}`);
    const change = crypto.randomUUID();
    await this.#o.committer.submit([{ sql: 'INSERT INTO file_state_out (change, transfer, to_site, state, at) VALUES (?, ?, ?, ?, ?)', params: [change, id, file.from, state, at] }]);
    this.flush(file.from);
    return { change, to: file.from };
  }

  /** Sends every pending change to reachable origins (on a timer and on reachability). */
  flush(only?: string): void {
    this.#chain = this.#chain.then(() => this.#flush(only)).catch((err: unknown) => this.#o.logger.error({ err }, 'could not send file state changes'));
  }

  async #flush(only?: string): Promise<void> {
    if (!this.#o.link.linkUp) return;
    const rows = await this.#o.db.all<{ change: string; transfer: string; to_site: string; state: RemoteFileState; at: number }>('SELECT * FROM file_state_out ORDER BY at');
    for (const r of rows) {
      if ((only !== undefined && r.to_site !== only) || !this.#o.reachable(r.to_site)) continue;
      const msg: FileStateChange = { ...this.#o.link.headers.next('files'), kind: 'state', transfer: r.transfer, from: this.#o.link.site, to: r.to_site, change: r.change, state: r.state, at: r.at };
      await this.#o.link.publish(topics.fileStatus(this.#o.link.site, r.to_site), encode(msg)).catch(() => undefined);
    }
  }

  /** Home side: the origin applied a change. */
  async onAck(ack: FileStateAck): Promise<void> {
    await this.#o.committer.submit([{ sql: 'DELETE FROM file_state_out WHERE change = ? AND to_site = ?', params: [ack.change, ack.from] }]);
  }

  /** Origin side: a change from the home site of a file we forwarded. */
  async onChange(msg: FileStateChange): Promise<void> {
    const log = this.#o.logger;
    const applied = await this.#o.db.get<{ change: string }>('SELECT change FROM file_state_in WHERE change = ?', [msg.change]);
    if (!applied) {
      const sent = await this.#o.db.get<{ type: string }>('SELECT type FROM file_transfers_out WHERE id = ? AND to_site = ?', [msg.transfer, msg.from]);
      if (!sent) {
        log.warn({ event: 'files.state_unknown', id: msg.transfer, from: msg.from }, 'state change for a file we never sent; acknowledged and ignored');
      } else {
        const handler = this.#handlers.get(sent.type);
        if (!handler) {
          // Not acknowledged: the home site sends it again once a handler is set.
          log.debug({ event: 'files.state_no_handler', type: sent.type }, 'no handler for remote state changes of this type yet');
          return;
        }
        const newest = await this.#o.db.get<{ at: number | null }>('SELECT MAX(at) AS at FROM file_state_in WHERE transfer = ?', [msg.transfer]);
        // An older change arriving after a newer one (a resend) is recorded, not applied.
        const stale = newest?.at != null && newest.at > msg.at;
        const statements = stale ? [] : await handler({ id: msg.transfer, from: msg.from, type: sent.type, state: msg.state, at: msg.at });
        await this.#o.committer.submit([
          ...statements,
          { sql: 'INSERT INTO file_state_in (change, transfer, from_site, state, at, applied_at) VALUES (?, ?, ?, ?, ?, ?)', params: [msg.change, msg.transfer, msg.from, msg.state, msg.at, Date.now()] },
        ]);
        log.info({ event: 'files.remote_state', id: msg.transfer, from: msg.from, state: msg.state, stale }, `forwarded file ${msg.state} at its home site`);
      }
    }
    const ack: FileStateAck = { ...this.#o.link.headers.next('files'), kind: 'state_ack', transfer: msg.transfer, from: this.#o.link.site, to: msg.from, change: msg.change };
    await this.#o.link.publish(topics.fileData(this.#o.link.site, msg.from), encode(ack)).catch(() => undefined);
  }
}
