// Drains the outbox to the controller: per stream in seq order, with up to `window`
// messages awaiting the controller's ack, retrying until acknowledged. A drain that
// waited for each ack before the next message could not be fast (one round trip
// plus one controller commit per message); a window keeps the pipe full while the
// order of first transmission stays the stream's order.
import type { Logger } from 'pino';
import type { Outbox, OutboxMessage } from './outbox.ts';
import { PROTOCOL_VERSION, STREAMS, topics, type StreamName, type UpMessage } from './protocol.ts';

export interface DrainerOptions {
  site: string;
  outbox: Outbox;
  /** Publishes one message (QoS 1); may reject when the link drops. */
  publish: (topic: string, payload: Buffer) => Promise<void>;
  window: number;
  ackTimeoutMs: number;
  /** How often an idle drainer looks for messages written without a kick(). */
  pollMs?: number;
  /**
   * Acknowledged ids are deleted from the outbox together, at most this long after
   * the first of them was acked (default 50 ms), or at once when `ackBatchMax` are
   * waiting. A delete is a commit and an fsync; one per controller ack (one per
   * window) doubled the fsyncs on the disk during a drain.
   */
  ackDelayMs?: number;
  ackBatchMax?: number;
  logger: Logger;
}

interface InFlight {
  msg: OutboxMessage;
  sentAt: number;
}

/** Rows read ahead from the store per stream, so a freed window slot never waits on a query. */
const READ_AHEAD = 500;

interface StreamState {
  /** seq of the last message read from the outbox in this run; the next read starts after it. */
  lastRead: number;
  /** Read, not yet sent, in seq order. */
  buffer: OutboxMessage[];
  inflight: Map<string, InFlight>;
  pumping: boolean;
  again: boolean;
}

export interface DrainStats {
  sent: number;
  resent: number;
  acked: number;
}

export class Drainer {
  readonly #o: DrainerOptions;
  readonly #streams = new Map<StreamName, StreamState>();
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  #ackQueue: string[] = [];
  #ackFlush: Promise<void> | undefined;
  #ackTimer: NodeJS.Timeout | undefined;
  readonly #stats: DrainStats = { sent: 0, resent: 0, acked: 0 };

  constructor(options: DrainerOptions) {
    this.#o = options;
    for (const s of STREAMS) this.#streams.set(s, { lastRead: 0, buffer: [], inflight: new Map(), pumping: false, again: false });
  }

  get running(): boolean {
    return this.#running;
  }

  get stats(): DrainStats {
    return { ...this.#stats };
  }

  get inFlight(): number {
    let n = 0;
    for (const s of this.#streams.values()) n += s.inflight.size;
    return n;
  }

  /** The controller is reachable: send everything not yet acknowledged, from the start. */
  resume(): void {
    if (this.#running) return;
    this.#running = true;
    for (const s of this.#streams.values()) {
      s.lastRead = 0;
      s.buffer = [];
      s.inflight.clear();
    }
    const tick = Math.max(20, Math.min(this.#o.pollMs ?? 1000, this.#o.ackTimeoutMs / 2));
    this.#timer = setInterval(() => this.#onTick(), tick);
    this.#timer.unref();
    // Acks still waiting to be deleted would be read and sent again: let them land first.
    void this.settled().then(() => this.kick());
  }

  /** The link or the controller is gone: stop sending; unacked messages stay queued. */
  pause(): void {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const s of this.#streams.values()) {
      s.inflight.clear();
      s.buffer = [];
    }
  }

  /** New messages were queued. */
  kick(stream?: StreamName): void {
    if (!this.#running) return;
    if (stream) void this.#pump(stream);
    else for (const s of STREAMS) void this.#pump(s);
  }

  /** The controller committed these ids. */
  onAck(ids: readonly string[]): void {
    const touched = new Set<StreamName>();
    for (const id of ids) {
      for (const [name, s] of this.#streams) {
        if (s.inflight.delete(id)) {
          touched.add(name);
          break;
        }
      }
      this.#ackQueue.push(id);
    }
    this.#stats.acked += ids.length;
    this.#scheduleAckFlush();
    for (const s of touched) void this.#pump(s);
  }

  /** Resolves once every ack received so far has been written (deleted from the outbox). */
  async settled(): Promise<void> {
    for (;;) {
      if (this.#ackFlush) await this.#ackFlush;
      else if (this.#ackQueue.length > 0) this.#flushAcks();
      else return;
    }
  }

  #scheduleAckFlush(): void {
    if (this.#ackQueue.length >= (this.#o.ackBatchMax ?? 2000)) {
      this.#flushAcks();
      return;
    }
    if (this.#ackTimer || this.#ackFlush) return;
    this.#ackTimer = setTimeout(() => this.#flushAcks(), this.#o.ackDelayMs ?? 50);
  }

  #flushAcks(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#ackFlush || this.#ackQueue.length === 0) return;
    const ids = this.#ackQueue;
    this.#ackQueue = [];
    this.#ackFlush = this.#o.outbox
      .ack(ids)
      .catch((err: unknown) => {
        // Not fatal: the rows stay and are sent again; the controller deduplicates.
        this.#o.logger.error({ event: 'sync.ack_failed', err }, 'could not delete acknowledged outbox messages');
      })
      .finally(() => {
        this.#ackFlush = undefined;
        if (this.#ackQueue.length > 0) this.#scheduleAckFlush();
      });
  }

  async #pump(stream: StreamName): Promise<void> {
    const s = this.#streams.get(stream) as StreamState;
    if (s.pumping) {
      s.again = true;
      return;
    }
    s.pumping = true;
    try {
      do {
        s.again = false;
        while (this.#running && s.inflight.size < this.#o.window) {
          if (s.buffer.length === 0) {
            const rows = await this.#o.outbox.pending(stream, s.lastRead, Math.max(READ_AHEAD, this.#o.window));
            if (!this.#running || rows.length === 0) break;
            s.buffer = rows;
            s.lastRead = (rows[rows.length - 1] as OutboxMessage).seq;
          }
          const batch = s.buffer.splice(0, this.#o.window - s.inflight.size);
          const now = Date.now();
          for (const msg of batch) {
            s.inflight.set(msg.id, { msg, sentAt: now });
            this.#send(msg);
          }
          this.#stats.sent += batch.length;
        }
      } while (s.again && this.#running);
    } catch (err) {
      this.#o.logger.error({ event: 'sync.drain_failed', stream, err }, 'outbox drain failed; retrying');
    } finally {
      s.pumping = false;
    }
  }

  #send(msg: OutboxMessage): void {
    const head: Omit<UpMessage<unknown>, 'data'> = {
      v: PROTOCOL_VERSION,
      id: msg.id,
      stream: msg.stream,
      seq: msg.seq,
      boot: msg.boot,
      ts: msg.ts,
      site: this.#o.site,
      type: msg.type,
    };
    // The stored data is already JSON: splice it in rather than parse and re-encode.
    const json = JSON.stringify(head);
    const payload = Buffer.from(`${json.slice(0, -1)},"data":${msg.data}}`);
    this.#o.publish(topics.up(this.#o.site, msg.stream), payload).catch(() => {
      // The link dropped: pause() follows, and the message is sent again on resume.
    });
  }

  #onTick(): void {
    const now = Date.now();
    for (const [name, s] of this.#streams) {
      let oldest = Infinity;
      for (const f of s.inflight.values()) oldest = Math.min(oldest, f.sentAt);
      if (oldest !== Infinity && now - oldest >= this.#o.ackTimeoutMs) {
        // Go back: send every unacked message of the stream again, in order.
        const again = [...s.inflight.values()].sort((a, b) => a.msg.seq - b.msg.seq);
        this.#o.logger.warn({ event: 'sync.resend', stream: name, count: again.length, fromSeq: again[0]?.msg.seq }, 'no ack in time; sending again');
        for (const f of again) {
          f.sentAt = now;
          this.#send(f.msg);
        }
        this.#stats.resent += again.length;
      }
      // Catches messages queued by callers that did not kick().
      void this.#pump(name);
    }
  }
}
