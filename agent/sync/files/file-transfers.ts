// File transfer between sites over MQTT, as the rest of the agent sees it:
// forwardFile() on the sending side, a handler per file type on the receiving side,
// and remote state (heard, deleted) flowing back to the origin. Sends only to peers
// the peers directory calls reachable, and picks up again when they become so.
import path from 'node:path';
import type { Logger } from 'pino';
import type { Database } from '../../store/db.ts';
import type { GroupCommitter } from '../../store/group-commit.ts';
import type { PeerLink } from '../peer-link.ts';
import { filters, parseFileData, parseFileStatus, parseTopic, type IncomingFileSummary, type OutgoingFileSummary, type RemoteFileState } from '../protocol.ts';
import { FileReceiver, type FileHandler } from './receiver.ts';
import { RemoteStates, type RemoteStateHandler } from './remote-state.ts';
import { FileSender, type ForwardRequest, type ForwardResult, type TransferOutcome } from './sender.ts';

export interface FileTransfersOptions {
  link: PeerLink;
  db: Database;
  committer: GroupCommitter;
  logger: Logger;
  /** Whether a peer can be sent to now (the peers directory). */
  reachable: (site: string) => boolean;
  /** Subscribe to reachability changes (the peers directory). */
  onReachabilityChange: (listener: () => void) => () => void;
  /** Received files go under here unless their handler says otherwise. */
  incomingDir: string;
  chunkSize?: number;
  window?: number;
  statusTimeoutMs?: number;
  maxBytes?: number;
}

export const FILE_DEFAULTS = { chunkSize: 64 * 1024, window: 8, statusTimeoutMs: 5000, maxBytes: 256 * 1024 * 1024 } as const;

export class FileTransfers {
  readonly #o: FileTransfersOptions;
  readonly sender: FileSender;
  readonly receiver: FileReceiver;
  readonly #states: RemoteStates;
  readonly #offs: Array<() => void> = [];
  #timer: NodeJS.Timeout | undefined;
  #stateChain: Promise<void> = Promise.resolve();

  constructor(options: FileTransfersOptions) {
    this.#o = options;
    const { link, db, committer, logger, reachable } = options;
    this.sender = new FileSender({
      link,
      db,
      committer,
      logger,
      reachable,
      chunkSize: options.chunkSize ?? FILE_DEFAULTS.chunkSize,
      window: options.window ?? FILE_DEFAULTS.window,
      statusTimeoutMs: options.statusTimeoutMs ?? FILE_DEFAULTS.statusTimeoutMs,
    });
    this.receiver = new FileReceiver({ link, db, committer, logger, incomingDir: path.resolve(options.incomingDir), maxBytes: options.maxBytes ?? FILE_DEFAULTS.maxBytes });
    this.#states = new RemoteStates({ link, db, committer, logger, reachable, incoming: (id) => this.receiver.incoming(id) });
  }

  async start(): Promise<void> {
    const { link } = this.#o;
    this.#offs.push(await link.attach([filters.fileDataTo(link.site), filters.fileStatusTo(link.site)], (topic, payload) => this.#onMessage(topic, payload)));
    this.#offs.push(
      this.#o.onReachabilityChange(() => {
        this.sender.kick();
        this.#states.flush();
      }),
    );
    const every = Math.max(100, Math.floor((this.#o.statusTimeoutMs ?? FILE_DEFAULTS.statusTimeoutMs) / 2));
    this.#timer = setInterval(() => {
      this.sender.tick();
      this.sender.kick();
      this.receiver.sweep();
      this.#states.flush();
    }, every);
    this.#timer.unref();
    this.sender.kick();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    for (const off of this.#offs.splice(0)) off();
    await this.sender.stop();
    await this.receiver.stop();
    await this.#stateChain;
  }

  /**
   * Queues `file` for its home site `to`. Resolves once recorded durably; delivery
   * follows whenever `to` is reachable (onOutcome tells). Idempotent by `id`.
   */
  forwardFile(to: string, file: string, req: ForwardRequest): Promise<ForwardResult> {
    return this.sender.forwardFile(to, file, req);
  }

  onOutcome(listener: (outcome: TransferOutcome) => void): () => void {
    return this.sender.onOutcome(listener);
  }

  /** Receives files of `type` (and, with `onRemoteState`, state changes for those this site sent). */
  handle(type: string, handler: FileHandler & { onRemoteState?: RemoteStateHandler }): void {
    this.receiver.handle(type, handler);
    if (handler.onRemoteState) this.#states.handle(type, handler.onRemoteState);
    // Files of this type may be waiting at their senders: they retry on their own timer.
  }

  /** Home side: a file received from a peer was heard/deleted here; its origin is told. */
  setRemoteState(id: string, state: RemoteFileState, at?: number): Promise<{ change: string; to: string }> {
    return this.#states.set(id, state, at);
  }

  async list(): Promise<{ outgoing: OutgoingFileSummary[]; incoming: IncomingFileSummary[] }> {
    return { outgoing: await this.sender.list(), incoming: await this.receiver.list() };
  }

  #onMessage(topic: string, payload: Buffer): void {
    const me = this.#o.link.site;
    const parsed = parseTopic(topic);
    const log = this.#o.logger;
    try {
      if (parsed?.kind === 'fileData' && parsed.to === me) {
        const msg = parseFileData(payload);
        if (msg.from !== parsed.from || msg.to !== me) throw new Error('envelope does not match the topic');
        if (msg.kind === 'state_ack') this.#serialState(() => this.#states.onAck(msg));
        else this.receiver.onData(msg);
      } else if (parsed?.kind === 'fileStatus' && parsed.to === me) {
        const msg = parseFileStatus(payload);
        if (msg.from !== parsed.from || msg.to !== me) throw new Error('envelope does not match the topic');
        if (msg.kind === 'state') this.#serialState(() => this.#states.onChange(msg));
        else this.sender.onStatus(msg);
      }
    } catch (err) {
      log.warn({ event: 'files.bad_message', topic, err: (err as Error).message }, 'ignored a malformed file-transfer message');
    }
  }

  #serialState(fn: () => Promise<void>): void {
    this.#stateChain = this.#stateChain.then(fn).catch((err: unknown) => this.#o.logger.error({ event: 'files.state_failed', err }, 'file state step failed'));
  }
}
