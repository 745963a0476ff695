// The sending side of file transfer between sites. forwardFile() records the file
// (path, size, SHA-256 of the whole and of every chunk) in SQLite and returns; the
// file goes when its site is reachable: a manifest, then chunks with up to `window`
// awaiting the receiver's status, resumed from the receiver's `have` after any
// disconnect or restart of either side. One transfer at a time per destination, in
// the order they were queued. The file must stay in place until delivered.
import { open, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Database } from '../../store/db.ts';
import type { GroupCommitter } from '../../store/group-commit.ts';
import type { PeerLink } from '../peer-link.ts';
import { encode, isSiteId, topics, type FileChunk, type FileManifest, type FileStatus, type OutgoingFileSummary } from '../protocol.ts';
import { digestFile, sha256 } from './digest.ts';
import { FileTransferError, isTransferId } from './errors.ts';

export interface FileSenderOptions {
  link: PeerLink;
  db: Database;
  committer: GroupCommitter;
  logger: Logger;
  reachable: (site: string) => boolean;
  chunkSize: number;
  window: number;
  statusTimeoutMs: number;
}

export interface ForwardRequest {
  /** The id the receiver indexes the file by (a voicemail message id). */
  id: string;
  /** What the file is (`voicemail`): the receiver's handler for this type takes it. */
  type: string;
  meta?: Record<string, unknown>;
}

export interface ForwardResult {
  id: string;
  size: number;
  sha256: string;
  chunks: number;
  /** False when the same id and content were already queued or delivered. */
  queued: boolean;
}

export type TransferOutcome = { id: string; to: string; state: 'delivered' } | { id: string; to: string; state: 'failed'; error: string };

interface OutRow {
  id: string;
  to_site: string;
  type: string;
  meta: string;
  file: string;
  size: number;
  sha256: string;
  chunk_size: number;
  chunks: string;
  state: 'queued' | 'delivered' | 'failed';
  acked: number;
  attempts: number;
  error: string | null;
}

interface Session {
  row: OutRow;
  chunks: string[];
  fh: FileHandle;
  /** Chunks the receiver has. */
  base: number;
  /** Next chunk to send. */
  next: number;
  awaitingManifest: boolean;
  lastActivity: number;
  pumping: boolean;
  again: boolean;
  closed: boolean;
  sentChunks: number;
}

export class FileSender {
  readonly #o: FileSenderOptions;
  readonly #sessions = new Map<string, Session>();
  readonly #opening = new Set<string>();
  readonly #listeners = new Set<(outcome: TransferOutcome) => void>();
  #stopped = false;

  constructor(options: FileSenderOptions) {
    this.#o = options;
  }

  onOutcome(listener: (outcome: TransferOutcome) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Queues `file` for `to`; resolves once the transfer is recorded durably. */
  async forwardFile(to: string, file: string, req: ForwardRequest): Promise<ForwardResult> {
    if (!isSiteId(to)) throw new FileTransferError('EBADARGS', `forwardFile: ${JSON.stringify(to)} is not a site id`);
    if (to === this.#o.link.site) throw new FileTransferError('EBADARGS', 'forwardFile: the file is already at its home site');
    if (typeof req.id !== 'string' || !isTransferId(req.id)) throw new FileTransferError('EBADARGS', `forwardFile: id ${JSON.stringify(req.id)} must be 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)`);
    if (typeof req.type !== 'string' || req.type === '') throw new FileTransferError('EBADARGS', 'forwardFile: "type" is required');
    const absolute = path.resolve(file);
    try {
      const st = await stat(absolute);
      if (!st.isFile()) throw new Error('not a regular file');
    } catch (err) {
      throw new FileTransferError('ENOFILE', `forwardFile: cannot read ${absolute}: ${(err as Error).message}`, { cause: err });
    }
    const digest = await digestFile(absolute, this.#o.chunkSize);
    const held = await this.#o.db.get<OutRow>('SELECT * FROM file_transfers_out WHERE id = ?', [req.id]);
    if (held) {
      if (held.to_site === to && held.sha256 === digest.sha256) return { id: req.id, size: held.size, sha256: held.sha256, chunks: JSON.parse(held.chunks).length as number, queued: false };
      throw new FileTransferError('EDUPLICATE', `forwardFile: id ${req.id} is already used for another file or site`);
    }
    const now = Date.now();
    await this.#o.committer.submit([
      {
        sql: `INSERT INTO file_transfers_out (id, to_site, type, meta, file, size, sha256, chunk_size, chunks, state, acked, attempts, created_at, updated_at)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, 0, ?, ?)`,
        params: [req.id, to, req.type, JSON.stringify(req.meta ?? {}), absolute, digest.size, digest.sha256, this.#o.chunkSize, JSON.stringify(digest.chunks), now, now],
      },
    ]);
    this.#o.logger.info({ event: 'files.queued', id: req.id, to, type: req.type, size: digest.size, chunks: digest.chunks.length }, 'file queued for a peer');
    this.kick(to);
    return { id: req.id, size: digest.size, sha256: digest.sha256, chunks: digest.chunks.length, queued: true };
  }

  /**
   * Reachability or the link changed, or something was queued: open a session for
   * every reachable site with queued files, close those whose site went away.
   */
  kick(site?: string): void {
    if (this.#stopped) return;
    for (const [to, s] of this.#sessions) {
      if (!this.#o.reachable(to)) this.#close(s, 'peer unreachable');
    }
    this.#background(this.#openSessions(site), 'open sessions');
  }

  /** Called on a timer: resend the manifest where the receiver fell silent. */
  tick(now = Date.now()): void {
    for (const s of this.#sessions.values()) {
      if (now - s.lastActivity >= this.#o.statusTimeoutMs) {
        this.#o.logger.info({ event: 'files.resume', id: s.row.id, to: s.row.to_site, from: s.base }, 'no status in time; sending the manifest again');
        this.#background(this.#sendManifest(s), 'send manifest');
      }
    }
  }

  onStatus(status: FileStatus): void {
    const s = this.#sessions.get(status.from);
    if (!s || s.row.id !== status.transfer) {
      // A late answer about a transfer we are not sending now: only "complete" is news.
      if (status.state === 'complete') this.#background(this.#finish(status.from, status.transfer, { state: 'delivered' }, undefined), 'finish transfer');
      return;
    }
    s.lastActivity = Date.now();
    if (status.state === 'complete') {
      this.#background(this.#finish(s.row.to_site, s.row.id, { state: 'delivered' }, s), 'finish transfer');
      return;
    }
    if (status.state === 'rejected') {
      const error = status.error ? `${status.error.code}: ${status.error.message}` : 'rejected';
      this.#background(this.#finish(s.row.to_site, s.row.id, { state: 'failed', error }, s), 'finish transfer');
      return;
    }
    const have = Math.max(0, Math.min(status.have, s.chunks.length));
    const code = status.error?.code;
    if (code === 'ENOMANIFEST') {
      this.#background(this.#sendManifest(s), 'send manifest');
      return;
    }
    if (code === 'ENOHANDLER' || code === 'EINDEX') {
      // The receiver cannot take it yet; the timer asks again.
      this.#o.logger.info({ event: 'files.receiver_not_ready', id: s.row.id, to: s.row.to_site, code }, 'receiver not ready; will retry');
      return;
    }
    if (s.awaitingManifest || code === 'ECHUNKHASH' || code === 'EGAP' || have < s.base) {
      if (code) this.#o.logger.warn({ event: 'files.rewind', id: s.row.id, to: s.row.to_site, code, have }, `receiver reported ${code}; resending from chunk ${have}`);
      s.awaitingManifest = false;
      s.base = have;
      s.next = have;
    } else if (have > s.base) {
      s.base = have;
      if (s.next < have) s.next = have;
    }
    this.#saveAcked(s);
    this.#background(this.#pump(s), 'send chunks');
  }

  async list(): Promise<OutgoingFileSummary[]> {
    const rows = await this.#o.db.all<OutRow>('SELECT * FROM file_transfers_out ORDER BY created_at');
    return rows.map((r) => ({
      transfer: r.id,
      to: r.to_site,
      type: r.type,
      size: r.size,
      state: r.state === 'queued' && this.#sessions.get(r.to_site)?.row.id === r.id ? 'sending' : r.state,
      acked_chunks: r.acked,
      chunks: (JSON.parse(r.chunks) as string[]).length,
      error: r.error,
    }));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const s of [...this.#sessions.values()]) this.#close(s, 'stopping');
  }

  // ---- sessions --------------------------------------------------------------------

  async #openSessions(only?: string): Promise<void> {
    const rows = await this.#o.db.all<{ to_site: string }>("SELECT DISTINCT to_site FROM file_transfers_out WHERE state = 'queued'");
    for (const { to_site: to } of rows) {
      if (only !== undefined && to !== only) continue;
      if (this.#sessions.has(to) || this.#opening.has(to) || !this.#o.reachable(to) || this.#stopped) continue;
      this.#opening.add(to);
      try {
        await this.#openNext(to);
      } finally {
        this.#opening.delete(to);
      }
    }
  }

  async #openNext(to: string): Promise<void> {
    for (;;) {
      const row = await this.#o.db.get<OutRow>("SELECT * FROM file_transfers_out WHERE to_site = ? AND state = 'queued' ORDER BY created_at, rowid LIMIT 1", [to]);
      if (!row || this.#stopped || !this.#o.reachable(to)) return;
      let fh: FileHandle;
      try {
        fh = await open(row.file, 'r');
      } catch (err) {
        await this.#finish(to, row.id, { state: 'failed', error: `ESOURCE: cannot open ${row.file}: ${(err as Error).message}` }, undefined);
        continue;
      }
      const s: Session = {
        row,
        chunks: JSON.parse(row.chunks) as string[],
        fh,
        base: row.acked,
        next: row.acked,
        awaitingManifest: true,
        lastActivity: Date.now(),
        pumping: false,
        again: false,
        closed: false,
        sentChunks: 0,
      };
      this.#sessions.set(to, s);
      this.#o.logger.info({ event: 'files.sending', id: row.id, to, size: row.size, chunks: s.chunks.length, acked: row.acked, attempt: row.attempts + 1 }, 'sending a file to a peer');
      await this.#sendManifest(s);
      return;
    }
  }

  #close(s: Session, why: string): void {
    if (s.closed) return;
    s.closed = true;
    if (this.#sessions.get(s.row.to_site) === s) this.#sessions.delete(s.row.to_site);
    void s.fh.close().catch(() => undefined);
    this.#o.logger.debug({ event: 'files.session_closed', id: s.row.id, to: s.row.to_site, why }, 'file session closed');
  }

  async #sendManifest(s: Session): Promise<void> {
    const { row } = s;
    s.awaitingManifest = true;
    s.lastActivity = Date.now();
    const manifest: FileManifest = {
      ...this.#o.link.headers.next('files'),
      kind: 'manifest',
      transfer: row.id,
      from: this.#o.link.site,
      to: row.to_site,
      type: row.type,
      meta: JSON.parse(row.meta) as Record<string, unknown>,
      size: row.size,
      sha256: row.sha256,
      chunk_size: row.chunk_size,
      chunks: s.chunks,
    };
    await this.#o.committer.submit([{ sql: 'UPDATE file_transfers_out SET attempts = attempts + 1, updated_at = ? WHERE id = ?', params: [Date.now(), row.id] }]).catch(() => undefined);
    await this.#o.link.publish(topics.fileData(this.#o.link.site, row.to_site), encode(manifest)).catch(() => {
      // Link down: kick() follows when it returns.
    });
  }

  async #pump(s: Session): Promise<void> {
    if (s.pumping) {
      s.again = true;
      return;
    }
    s.pumping = true;
    try {
      do {
        s.again = false;
        while (!s.closed && !s.awaitingManifest && s.next < s.chunks.length && s.next < s.base + this.#o.window) {
          const index = s.next++;
          const chunk = await this.#readChunk(s, index);
          if (!chunk) return;
          s.sentChunks++;
          this.#o.link.publish(topics.fileData(this.#o.link.site, s.row.to_site), encode(chunk)).catch(() => {
            // Lost with the link: resumed from the receiver's `have`.
          });
        }
      } while (s.again && !s.closed);
    } finally {
      s.pumping = false;
    }
  }

  async #readChunk(s: Session, index: number): Promise<FileChunk | undefined> {
    const { row } = s;
    const offset = index * row.chunk_size;
    const length = Math.min(row.chunk_size, row.size - offset);
    const buf = Buffer.alloc(length);
    let read = 0;
    try {
      while (read < length) {
        const r = await s.fh.read(buf, read, length - read, offset + read);
        if (r.bytesRead === 0) break;
        read += r.bytesRead;
      }
    } catch (err) {
      if (s.closed) return undefined;
      throw err;
    }
    if (read !== length || sha256(buf) !== s.chunks[index]) {
      await this.#finish(row.to_site, row.id, { state: 'failed', error: `ESOURCE: ${row.file} changed after it was queued (chunk ${index})` }, s);
      return undefined;
    }
    return { ...this.#o.link.headers.next('files'), kind: 'chunk', transfer: row.id, from: this.#o.link.site, to: row.to_site, index, data: buf.toString('base64') };
  }

  /** A step nobody awaits: its failure (the store closing under it, a read error) is logged, never left unhandled. */
  #background(step: Promise<void>, what: string): void {
    step.catch((err: unknown) => this.#o.logger.error({ event: 'files.send_failed', what, err }, `file transfer step failed: ${what}`));
  }

  #saveAcked(s: Session): void {
    if (s.base <= s.row.acked) return;
    s.row.acked = s.base;
    this.#o.committer.submit([{ sql: 'UPDATE file_transfers_out SET acked = MAX(acked, ?), updated_at = ? WHERE id = ?', params: [s.base, Date.now(), s.row.id] }]).catch((err: unknown) => {
      this.#o.logger.warn({ event: 'files.ack_store_failed', err }, 'could not store transfer progress');
    });
  }

  async #finish(to: string, id: string, outcome: { state: 'delivered' } | { state: 'failed'; error: string }, s: Session | undefined): Promise<void> {
    const result = await this.#o.db.get<{ state: string }>('SELECT state FROM file_transfers_out WHERE id = ? AND to_site = ?', [id, to]);
    if (s) this.#close(s, outcome.state);
    if (!result || result.state !== 'queued') {
      if (s) this.#background(this.#openSessions(to), 'open sessions');
      return;
    }
    const error = outcome.state === 'failed' ? outcome.error : null;
    await this.#o.committer.submit([
      {
        sql: `UPDATE file_transfers_out SET state = ?, error = ?, acked = CASE WHEN ? = 'delivered' THEN json_array_length(chunks) ELSE acked END, updated_at = ? WHERE id = ?`,
        params: [outcome.state, error, outcome.state, Date.now(), id],
      },
    ]);
    if (outcome.state === 'delivered') this.#o.logger.info({ event: 'files.delivered', id, to, chunksSent: s?.sentChunks ?? 0 }, 'file delivered and indexed at its home site');
    else this.#o.logger.warn({ event: 'files.failed', id, to, error }, 'file transfer failed for good');
    const o: TransferOutcome = outcome.state === 'delivered' ? { id, to, state: 'delivered' } : { id, to, state: 'failed', error: outcome.error };
    for (const l of [...this.#listeners]) {
      try {
        l(o);
      } catch (err) {
        this.#o.logger.error({ err }, 'transfer outcome listener failed');
      }
    }
    this.#background(this.#openSessions(to), 'open sessions');
  }
}
