// The receiving side of file transfer between sites. Chunks are taken in order,
// each checked against its digest in the manifest and written to `<destination>.part`;
// when all are there the file is fsynced, checked whole (SHA-256), renamed into place
// and indexed by the handler for its type: the handler's statements and the mark
// "indexed" commit in one transaction, so a file is indexed exactly once by its id,
// whatever is resent or restarted. After a restart, the part file is checked chunk by
// chunk and the transfer resumes after the last good one.
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Database } from '../../store/db.ts';
import type { GroupCommitter, Statement } from '../../store/group-commit.ts';
import type { PeerLink } from '../peer-link.ts';
import { encode, topics, type ErrorBody, type FileChunk, type FileManifest, type FileStatus, type IncomingFileSummary } from '../protocol.ts';
import { digestFile, sha256 } from './digest.ts';
import { isTransferId } from './errors.ts';

/** A file that arrived whole and verified. */
export interface ReceivedFile {
  id: string;
  from: string;
  type: string;
  meta: Record<string, unknown>;
  /** Where it is now (absolute). */
  path: string;
  size: number;
  sha256: string;
}

export interface FileHandler {
  /** Where the file goes (absolute path). Default: `<incoming dir>/<from site>/<id>`. */
  destination?(file: Omit<ReceivedFile, 'path'>): string;
  /**
   * The statements that index the file (e.g. insert the voicemail row). They commit in
   * the same transaction as the transfer's "indexed" mark: once, or not at all. Throw
   * to refuse for now (the sender retries later).
   */
  index(file: ReceivedFile): Statement[] | Promise<Statement[]>;
  /** After the commit: tell whoever cares (MWI, events). */
  indexed?(file: ReceivedFile): void;
}

export interface FileReceiverOptions {
  link: PeerLink;
  db: Database;
  committer: GroupCommitter;
  logger: Logger;
  /** Default home of received files. */
  incomingDir: string;
  /** Larger files are rejected (ETOOBIG). */
  maxBytes: number;
}

interface InRow {
  id: string;
  from_site: string;
  type: string;
  meta: string;
  size: number;
  sha256: string;
  chunk_size: number;
  chunks: string;
  path: string;
  state: 'receiving' | 'indexed' | 'rejected';
  error: string | null;
}

interface Session {
  manifest: FileManifest;
  dest: string;
  part: string;
  fh: FileHandle | undefined;
  have: number;
  /** The file is whole, verified and renamed; only the index is missing. */
  placed: boolean;
  /** The `have` at which we last reported a gap or a bad chunk (one report per position). */
  reportedAt: number;
  lastActivity: number;
}

/** A transfer silent this long gives back its file handle; the part file stays for a resume. */
const IDLE_SESSION_MS = 10 * 60 * 1000;
/** Transfers whose chunks came without a manifest, remembered to rate-limit the request for it. */
const MAX_NO_MANIFEST_REPORTS = 1000;

export class FileReceiver {
  readonly #o: FileReceiverOptions;
  readonly #handlers = new Map<string, FileHandler>();
  readonly #sessions = new Map<string, Session>();
  /** Everything about one transfer id runs in order. */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #noManifestReported = new Map<string, number>();

  constructor(options: FileReceiverOptions) {
    this.#o = options;
  }

  /** Takes files of `type`. Until a handler is set, such files wait at their sender. */
  handle(type: string, handler: FileHandler): void {
    this.#handlers.set(type, handler);
  }

  onData(msg: FileManifest | FileChunk): void {
    const id = msg.transfer;
    const prev = this.#chains.get(id) ?? Promise.resolve();
    const next = prev
      .then(() => (msg.kind === 'manifest' ? this.#onManifest(msg) : this.#onChunk(msg)))
      .catch((err: unknown) => {
        this.#o.logger.error({ event: 'files.receive_failed', id, from: msg.from, err }, 'file receive step failed');
      })
      .finally(() => {
        if (this.#chains.get(id) === next) this.#chains.delete(id);
      });
    this.#chains.set(id, next);
  }

  async list(): Promise<IncomingFileSummary[]> {
    const rows = await this.#o.db.all<InRow>('SELECT * FROM file_transfers_in ORDER BY created_at');
    return rows.map((r) => ({
      transfer: r.id,
      from: r.from_site,
      type: r.type,
      size: r.size,
      state: r.state,
      have: r.state === 'indexed' ? (JSON.parse(r.chunks) as string[]).length : (this.#sessions.get(r.id)?.have ?? 0),
      chunks: (JSON.parse(r.chunks) as string[]).length,
    }));
  }

  /** The row of a received file (for remote state changes). */
  async incoming(id: string): Promise<{ from: string; type: string; state: string } | undefined> {
    const row = await this.#o.db.get<InRow>('SELECT * FROM file_transfers_in WHERE id = ?', [id]);
    return row ? { from: row.from_site, type: row.type, state: row.state } : undefined;
  }

  /** Closes transfers whose sender fell silent (it resumes from the part file later). */
  sweep(now = Date.now()): void {
    for (const [id, s] of this.#sessions) {
      if (now - s.lastActivity < IDLE_SESSION_MS || this.#chains.has(id)) continue;
      this.#sessions.delete(id);
      void s.fh?.close().catch(() => undefined);
      this.#o.logger.info({ event: 'files.idle', id, from: s.manifest.from, have: s.have }, 'incoming file idle; its part file waits for the sender');
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#chains.values()]);
    for (const s of this.#sessions.values()) await s.fh?.close().catch(() => undefined);
    this.#sessions.clear();
  }

  // ---- steps -----------------------------------------------------------------------

  async #onManifest(m: FileManifest): Promise<void> {
    const log = this.#o.logger;
    this.#noManifestReported.delete(m.transfer);
    if (!isTransferId(m.transfer)) return this.#status(m, 'rejected', 0, { code: 'EBADARGS', message: `transfer id ${JSON.stringify(m.transfer)} is not a safe file name` });
    const row = await this.#o.db.get<InRow>('SELECT * FROM file_transfers_in WHERE id = ?', [m.transfer]);
    if (row) {
      if (row.from_site !== m.from) return this.#status(m, 'rejected', 0, { code: 'EDUPLICATE', message: `id ${m.transfer} was received from another site` });
      if (row.sha256 !== m.sha256 || row.size !== m.size) return this.#status(m, 'rejected', 0, { code: 'EDUPLICATE', message: `id ${m.transfer} was received with other content` });
      if (row.state === 'indexed') return this.#status(m, 'complete', m.chunks.length);
      if (row.state === 'rejected') return this.#status(m, 'rejected', 0, { code: 'EFILEHASH', message: row.error ?? 'rejected' });
    }
    const handler = this.#handlers.get(m.type);
    if (!handler) return this.#status(m, 'receiving', 0, { code: 'ENOHANDLER', message: `no handler for files of type ${JSON.stringify(m.type)} yet` });
    if (m.size > this.#o.maxBytes) return this.#status(m, 'rejected', 0, { code: 'ETOOBIG', message: `${m.size} bytes is over the limit of ${this.#o.maxBytes}` });

    let session = this.#sessions.get(m.transfer);
    if (!session) {
      const base = { id: m.transfer, from: m.from, type: m.type, meta: m.meta, size: m.size, sha256: m.sha256 };
      const dest = path.resolve(handler.destination?.(base) ?? path.join(this.#o.incomingDir, m.from, m.transfer));
      if (!row) {
        const now = Date.now();
        await this.#o.committer.submit([
          {
            sql: `INSERT INTO file_transfers_in (id, from_site, type, meta, size, sha256, chunk_size, chunks, path, state, created_at, updated_at)
                  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'receiving', ?, ?)`,
            params: [m.transfer, m.from, m.type, JSON.stringify(m.meta), m.size, m.sha256, m.chunk_size, JSON.stringify(m.chunks), dest, now, now],
          },
        ]);
      }
      session = await this.#openSession(m, dest);
      this.#sessions.set(m.transfer, session);
      log.info({ event: 'files.receiving', id: m.transfer, from: m.from, size: m.size, chunks: m.chunks.length, have: session.have }, session.have > 0 ? `resuming a file at chunk ${session.have}` : 'receiving a file');
    }
    session.reportedAt = -1;
    session.lastActivity = Date.now();
    if (session.placed || session.have === m.chunks.length) {
      await this.#complete(session, handler);
      return;
    }
    await this.#status(m, 'receiving', session.have);
  }

  async #openSession(m: FileManifest, dest: string): Promise<Session> {
    const part = `${dest}.part`;
    await mkdir(path.dirname(dest), { recursive: true });
    // Crashed after the rename, before the index committed: the file is in place.
    const placed = await stat(dest).then(
      (st) => st.isFile() && st.size === m.size,
      () => false,
    );
    if (placed && (await digestFile(dest, m.chunk_size)).sha256 === m.sha256) {
      return { manifest: m, dest, part, fh: undefined, have: m.chunks.length, placed: true, reportedAt: -1, lastActivity: Date.now() };
    }
    let fh: FileHandle;
    try {
      fh = await open(part, 'r+');
    } catch {
      fh = await open(part, 'w+');
    }
    // What survived a crash: every chunk, in order, that matches its digest.
    let have = 0;
    // Never larger than the file: chunk_size comes from the peer's manifest.
    const buf = Buffer.alloc(Math.min(m.chunk_size, m.size));
    for (; have < m.chunks.length; have++) {
      const length = Math.min(m.chunk_size, m.size - have * m.chunk_size);
      const { bytesRead } = await fh.read(buf, 0, length, have * m.chunk_size);
      if (bytesRead !== length || sha256(buf.subarray(0, length)) !== m.chunks[have]) break;
    }
    await fh.truncate(have * m.chunk_size);
    return { manifest: m, dest, part, fh, have, placed: false, reportedAt: -1, lastActivity: Date.now() };
  }

  async #onChunk(c: FileChunk): Promise<void> {
    const s = this.#sessions.get(c.transfer);
    if (!s) {
      // We restarted (or never saw the manifest): ask for it, once a second at most.
      const last = this.#noManifestReported.get(c.transfer) ?? 0;
      if (Date.now() - last < 1000) return;
      // Chunks of unknown transfers must not grow this map without end.
      if (this.#noManifestReported.size >= MAX_NO_MANIFEST_REPORTS) this.#noManifestReported.clear();
      this.#noManifestReported.set(c.transfer, Date.now());
      const row = await this.#o.db.get<InRow>('SELECT state FROM file_transfers_in WHERE id = ?', [c.transfer]);
      if (row?.state === 'indexed') return this.#statusFor(c, 'complete', 0);
      return this.#statusFor(c, 'receiving', 0, { code: 'ENOMANIFEST', message: 'send the manifest first' });
    }
    const m = s.manifest;
    if (s.placed || c.from !== m.from) return;
    s.lastActivity = Date.now();
    if (c.index < s.have) return this.#status(m, 'receiving', s.have);
    if (c.index > s.have) {
      if (s.reportedAt === s.have) return;
      s.reportedAt = s.have;
      return this.#status(m, 'receiving', s.have, { code: 'EGAP', message: `chunk ${c.index} arrived before chunk ${s.have}` });
    }
    const data = Buffer.from(c.data, 'base64');
    const length = Math.min(m.chunk_size, m.size - c.index * m.chunk_size);
    if (data.length !== length || sha256(data) !== m.chunks[c.index]) {
      this.#o.logger.warn({ event: 'files.bad_chunk', id: m.transfer, from: m.from, index: c.index, bytes: data.length }, 'a chunk did not match its digest; asking for it again');
      s.reportedAt = s.have;
      return this.#status(m, 'receiving', s.have, { code: 'ECHUNKHASH', message: `chunk ${c.index} does not match its SHA-256` });
    }
    await (s.fh as FileHandle).write(data, 0, length, c.index * m.chunk_size);
    s.have++;
    if (s.have < m.chunks.length) return this.#status(m, 'receiving', s.have);
    const handler = this.#handlers.get(m.type);
    if (handler) await this.#complete(s, handler);
  }

  async #complete(s: Session, handler: FileHandler): Promise<void> {
    const m = s.manifest;
    const log = this.#o.logger;
    if (!s.placed) {
      const fh = s.fh as FileHandle;
      await fh.sync();
      await fh.close();
      s.fh = undefined;
      const whole = await digestFile(s.part, m.chunk_size);
      if (whole.sha256 !== m.sha256) {
        await rm(s.part, { force: true });
        this.#sessions.delete(m.transfer);
        const error = `the file's SHA-256 ${whole.sha256} is not the manifest's ${m.sha256}`;
        await this.#o.committer.submit([{ sql: "UPDATE file_transfers_in SET state = 'rejected', error = ?, updated_at = ? WHERE id = ?", params: [error, Date.now(), m.transfer] }]);
        log.error({ event: 'files.bad_file', id: m.transfer, from: m.from }, error);
        return this.#status(m, 'rejected', 0, { code: 'EFILEHASH', message: error });
      }
      await rename(s.part, s.dest);
      // The rename is durable only once the directory entry is.
      const dir = await open(path.dirname(s.dest), 'r');
      await dir.sync().finally(() => dir.close());
      s.placed = true;
    }
    const file: ReceivedFile = { id: m.transfer, from: m.from, type: m.type, meta: m.meta, path: s.dest, size: m.size, sha256: m.sha256 };
    let statements: Statement[];
    try {
      statements = await handler.index(file);
    } catch (err) {
      log.warn({ event: 'files.index_refused', id: m.transfer, err }, 'the handler could not index the file yet');
      return this.#status(m, 'receiving', m.chunks.length, { code: 'EINDEX', message: (err as Error).message });
    }
    await this.#o.committer.submit([
      ...statements,
      { sql: "UPDATE file_transfers_in SET state = 'indexed', path = ?, updated_at = ? WHERE id = ?", params: [s.dest, Date.now(), m.transfer] },
    ]);
    this.#sessions.delete(m.transfer);
    log.info({ event: 'files.indexed', id: m.transfer, from: m.from, type: m.type, size: m.size, path: s.dest }, 'file received, verified and indexed');
    try {
      handler.indexed?.(file);
    } catch (err) {
      log.error({ err }, 'file indexed listener failed');
    }
    await this.#status(m, 'complete', m.chunks.length);
  }

  #status(m: FileManifest, state: FileStatus['state'], have: number, error?: ErrorBody): Promise<void> {
    return this.#statusFor(m, state, have, error);
  }

  async #statusFor(about: { transfer: string; from: string }, state: FileStatus['state'], have: number, error?: ErrorBody): Promise<void> {
    const me = this.#o.link.site;
    const status: FileStatus = { ...this.#o.link.headers.next('files'), kind: 'status', transfer: about.transfer, from: me, to: about.from, state, have, ...(error ? { error } : {}) };
    if (state === 'rejected') this.#o.logger.warn({ event: 'files.rejected', id: about.transfer, from: about.from, code: error?.code }, `file refused: ${error?.message ?? ''}`);
    await this.#o.link.publish(topics.fileStatus(me, about.from), encode(status)).catch(() => {
      // Link down: the sender asks again.
    });
  }
}
