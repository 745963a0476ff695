// One MQTT connection, for a site, the controller or a branchctl client: connects in
// the background and keeps reconnecting, re-subscribes after every connect, and
// says plainly when it is up or down. Everything above it speaks protocol.ts.
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { SyncError } from './errors.ts';
import { QOS } from './protocol.ts';

/** A broker URL as logs and messages show it: a user:password written into it stays out. */
export function brokerUrlForLogs(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
}

export interface LinkOptions {
  url: string;
  clientId: string;
  protocolVersion: 4 | 5;
  /** Seconds. */
  keepalive: number;
  reconnectPeriodMs: number;
  connectTimeoutMs: number;
  username?: string;
  password?: string;
  tls?: TlsFiles;
  /** Built again before every connection attempt, so it can carry fresh fields. */
  will?: () => { topic: string; payload: Buffer; retain: boolean };
  logger: Logger;
}

export interface PublishOptions {
  retain?: boolean;
  /** MQTT 5 only; dropped on 3.1.1. */
  properties?: { responseTopic?: string; correlationData?: Buffer };
}

export type MessageHandler = (topic: string, payload: Buffer, packet: IPublishPacket) => void;

function readPem(file: string | undefined, what: string): Buffer | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new SyncError('ETLS', `cannot read the ${what} file ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Packets written while one read from the socket is handled go out in one write.
 * MQTT.js handles the packets of a read one per tick and corks the socket only
 * around each packet it writes, so every PUBACK for a QoS 1 message received was a
 * syscall of its own (the controller during a drain: ~10,000 writev, ~6 % of its
 * CPU). Corking on each read and uncorking after the I/O phase (setImmediate) sends
 * them together; TCP_NODELAY then sends them at once.
 */
function coalesceWrites(stream: unknown): void {
  const s = stream as { cork?: () => void; uncork?: () => void; prependListener?: (e: 'data', l: () => void) => void };
  if (typeof s.cork !== 'function' || typeof s.uncork !== 'function' || typeof s.prependListener !== 'function') return;
  let corked = false;
  s.prependListener('data', () => {
    if (corked) return;
    corked = true;
    s.cork?.();
    setImmediate(() => {
      corked = false;
      s.uncork?.();
    });
  });
}

export class MqttLink {
  readonly options: LinkOptions;
  #client: MqttClient | undefined;
  readonly #filters = new Set<string>();
  readonly #handlers = new Set<MessageHandler>();
  readonly #upListeners = new Set<() => void>();
  readonly #downListeners = new Set<(reason: string) => void>();
  #up = false;
  #lastError: string | undefined;

  constructor(options: LinkOptions) {
    this.options = options;
  }

  get connected(): boolean {
    return this.#up;
  }

  onUp(listener: () => void): () => void {
    this.#upListeners.add(listener);
    return () => this.#upListeners.delete(listener);
  }

  onDown(listener: (reason: string) => void): () => void {
    this.#downListeners.add(listener);
    return () => this.#downListeners.delete(listener);
  }

  onMessage(handler: MessageHandler): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /** Starts connecting; never waits for the broker (it may be unreachable for days). */
  start(): void {
    const o = this.options;
    const opts: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: o.protocolVersion,
      keepalive: o.keepalive,
      reconnectPeriod: o.reconnectPeriodMs,
      connectTimeout: o.connectTimeoutMs,
      clean: true,
      // We re-subscribe ourselves on every connect, after a clean session too.
      resubscribe: false,
      // Nothing waits in MQTT.js's memory while offline: the outbox is the queue.
      queueQoSZero: false,
      // Off: with it, mqtt-packet pre-builds 65,536 two-byte Buffers on the first packet
      // (~6.5 MB of V8 heap, for the agent's embedded broker too: they share the module);
      // without it each packet id is encoded on the fly (docs/benchmarks.md, image).
      writeCache: false,
    };
    if (o.username !== undefined) opts.username = o.username;
    if (o.password !== undefined) opts.password = o.password;
    if (o.tls) {
      const ca = readPem(o.tls.ca, 'CA');
      const cert = readPem(o.tls.cert, 'client certificate');
      const key = readPem(o.tls.key, 'client key');
      if (ca) opts.ca = ca;
      if (cert) opts.cert = cert;
      if (key) opts.key = key;
      opts.rejectUnauthorized = o.tls.rejectUnauthorized;
    }
    if (o.will) opts.will = { ...o.will(), qos: QOS };
    const client = mqtt.connect(o.url, opts);
    this.#client = client;

    client.on('connect', () => {
      // Small messages both ways (acks, windowed publishes): without TCP_NODELAY,
      // Nagle and delayed ACKs stall each round trip by up to 40 ms.
      const stream = client.stream as unknown as { setNoDelay?: (on: boolean) => void };
      stream.setNoDelay?.(true);
      coalesceWrites(client.stream);
      this.#up = true;
      this.#lastError = undefined;
      if (this.#filters.size > 0) {
        client.subscribe([...this.#filters], { qos: QOS }, (err) => {
          if (err) o.logger.error({ event: 'mqtt.subscribe_failed', err }, 'subscribe failed');
        });
      }
      o.logger.info({ event: 'mqtt.connected', url: brokerUrlForLogs(o.url), clientId: o.clientId }, 'MQTT link up');
      for (const l of [...this.#upListeners]) this.#safe(() => l());
    });
    client.on('close', () => {
      // A fresh will for the next attempt (MQTT.js reads options.will on each connect).
      if (o.will) client.options.will = { ...o.will(), qos: QOS };
      if (!this.#up) return;
      this.#up = false;
      const reason = this.#lastError ?? 'connection closed';
      o.logger.warn({ event: 'mqtt.disconnected', url: brokerUrlForLogs(o.url), reason }, 'MQTT link down');
      for (const l of [...this.#downListeners]) this.#safe(() => l(reason));
    });
    client.on('error', (err) => {
      this.#lastError = err.message;
      o.logger.debug({ event: 'mqtt.error', err: err.message }, 'MQTT error');
    });
    client.on('message', (topic, payload, packet) => {
      for (const h of [...this.#handlers]) this.#safe(() => h(topic, payload, packet));
    });
  }

  #safe(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.options.logger.error({ err }, 'MQTT listener failed');
    }
  }

  /** Adds subscriptions; they are renewed on every (re)connect. */
  subscribe(filters: string[]): Promise<void> {
    for (const f of filters) this.#filters.add(f);
    const client = this.#client;
    if (!client || !this.#up) return Promise.resolve();
    return new Promise((resolve, reject) => {
      client.subscribe(filters, { qos: QOS }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * QoS 1 publish; resolves at the broker's PUBACK. Rejects with ENOTCONNECTED when
   * the link is down: callers own their retries (the outbox, a command's timeout).
   */
  publish(topic: string, payload: Buffer, opts: PublishOptions = {}): Promise<void> {
    const client = this.#client;
    if (!client || !this.#up) return Promise.reject(new SyncError('ENOTCONNECTED', `MQTT link to ${brokerUrlForLogs(this.options.url)} is down`));
    const publishOpts: mqtt.IClientPublishOptions = { qos: QOS, retain: opts.retain ?? false };
    if (this.options.protocolVersion === 5 && opts.properties) publishOpts.properties = opts.properties;
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, publishOpts, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Closes the connection. With `graceful`, in-flight publishes finish first and the
   * broker does not send the Last Will (the caller published its own farewell).
   */
  stop(opts: { graceful?: boolean } = {}): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (!client) return Promise.resolve();
    const wasUp = this.#up;
    this.#up = false;
    return new Promise((resolve) => {
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        if (wasUp) for (const l of [...this.#downListeners]) this.#safe(() => l('stopped'));
        resolve();
      };
      // A graceful end waits for in-flight acks; a dead broker must not hold a stop.
      const timer = setTimeout(() => client.end(true, {}, done), 2000);
      client.end(!(opts.graceful ?? true), {}, done);
    });
  }
}
