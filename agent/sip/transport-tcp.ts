// SIP over TCP (RFC 3261 18.3): a listening socket plus the connections we accept
// or open. Each connection has a StreamFramer; a framing error (bad or missing
// Content-Length, oversized message) is answered when the stack can build a reply
// from the header block, then the connection is closed because the stream can no
// longer be split into messages. CRLFCRLF pings are answered with a CRLF pong
// (RFC 5626 3.5.1). Idle connections are closed; accepted connections are capped.
// Responses reuse the connection a request came on (Endpoint.connectionId).

import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { StreamFramer } from './framing.ts';
import type { FramingError } from './framing.ts';
import type { Endpoint } from './types.ts';
import { RateLimitedLog, SipBindError, SipTransportError, errorCode, formatHostPort, normalizeAddress } from './transport.ts';
import type { InboundHandler, LocalAddress, Transport } from './transport.ts';

export interface TcpTransportOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  /** Accepted (inbound) connections held at once; more are refused. Outbound ones have the same cap of their own. */
  maxConnections: number;
  /** A connection with no traffic either way for this long is closed. */
  idleTimeoutMs: number;
  /** Outbound connection attempts give up after this long. Default 10 s. */
  connectTimeoutMs?: number;
  logger: Logger;
  /** Called for each message or connection refused here. */
  onDrop?: (reason: string) => void;
}

/** Builds the reply for a framing error (or none); the connection is closed after it is written. */
export type FramingErrorHandler = (error: FramingError, source: Endpoint) => Buffer | undefined;
export type ConnectionClosedHandler = (endpoint: Endpoint) => void;

const PONG = Buffer.from('\r\n', 'latin1');
/** After we end a connection, how long the peer gets to read our last reply before it is destroyed. */
const LINGER_MS = 1000;
/** After a framing error, how long answers to the messages framed before it may still be written. */
const ANSWER_GRACE_MS = 250;
/** Queued output beyond this many messages' worth means the peer is not reading. */
const MAX_QUEUED_MESSAGES = 16;

interface Connection {
  readonly id: number;
  readonly socket: Socket;
  readonly framer: StreamFramer;
  readonly remote: Endpoint;
  readonly remoteKey: string;
  readonly inbound: boolean;
  /** Settles when an outbound connection is established (at once for inbound ones). */
  readonly ready: Promise<void>;
  closing: boolean;
  linger: NodeJS.Timeout | undefined;
}

export class TcpTransport implements Transport {
  readonly name = 'tcp' as const;
  private readonly opts: TcpTransportOptions;
  private readonly log: Logger;
  private readonly noisyLog: RateLimitedLog;
  private server: Server | undefined;
  private bound: LocalAddress | undefined;
  private readonly connections = new Map<number, Connection>();
  private readonly byRemote = new Map<string, number>();
  private nextId = 1;
  private inboundCount = 0;
  private outboundCount = 0;
  private handler: InboundHandler = () => {};
  private framingErrorHandler: FramingErrorHandler = () => undefined;
  private closedHandler: ConnectionClosedHandler = () => {};

  constructor(opts: TcpTransportOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ transport: 'tcp' });
    this.noisyLog = new RateLimitedLog(this.log);
  }

  get localAddress(): LocalAddress | undefined {
    return this.bound;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  onMessage(handler: InboundHandler): void {
    this.handler = handler;
  }

  onFramingError(handler: FramingErrorHandler): void {
    this.framingErrorHandler = handler;
  }

  onConnectionClosed(handler: ConnectionClosedHandler): void {
    this.closedHandler = handler;
  }

  start(): Promise<void> {
    const { host, port } = this.opts;
    const server = createServer({ noDelay: true });
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      const onBindError = (err: Error): void => {
        this.server = undefined;
        server.close();
        reject(new SipBindError('tcp', host, port, err));
      };
      server.once('error', onBindError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onBindError);
        server.on('error', (err) => this.log.error({ err }, 'TCP server error'));
        server.on('connection', (socket) => this.accept(socket));
        const a = server.address();
        if (a !== null && typeof a === 'object') this.bound = { address: a.address, port: a.port };
        this.log.info({ address: this.bound?.address, port: this.bound?.port }, 'SIP TCP listening');
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.bound = undefined;
    for (const conn of this.connections.values()) {
      clearTimeout(conn.linger);
      conn.socket.destroy();
    }
    this.connections.clear();
    this.byRemote.clear();
    this.inboundCount = 0;
    this.outboundCount = 0;
    if (server === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async send(bytes: Buffer, destination: Endpoint): Promise<void> {
    if (this.server === undefined) throw new SipTransportError('TCP transport is not running', destination);
    const conn = this.connectionFor(destination);
    await conn.ready;
    return this.write(conn, bytes, destination);
  }

  /** Closes one connection now (e.g. a flow the registrar no longer wants). */
  close(connectionId: number): void {
    this.connections.get(connectionId)?.socket.destroy();
  }

  private connectionFor(destination: Endpoint): Connection {
    if (destination.connectionId !== undefined) {
      const conn = this.connections.get(destination.connectionId);
      if (conn !== undefined && !conn.closing) return conn;
    }
    const key = remoteKey(destination.address, destination.port);
    const id = this.byRemote.get(key);
    const existing = id === undefined ? undefined : this.connections.get(id);
    if (existing !== undefined && !existing.closing) return existing;
    return this.open(destination);
  }

  private write(conn: Connection, bytes: Buffer, destination: Endpoint): Promise<void> {
    const { socket } = conn;
    if (conn.closing || socket.destroyed) {
      return Promise.reject(new SipTransportError(`TCP connection to ${formatHostPort(destination.address, destination.port)} is closed`, destination));
    }
    if (socket.writableLength > this.opts.maxMessageBytes * MAX_QUEUED_MESSAGES) {
      this.noisyLog.warn({ connection: conn.id, address: conn.remote.address, port: conn.remote.port, queued: socket.writableLength }, 'closing TCP connection: peer is not reading');
      socket.destroy();
      return Promise.reject(new SipTransportError('TCP peer is not reading', destination));
    }
    return new Promise<void>((resolve, reject) => {
      socket.write(bytes, (err) => {
        if (err) reject(new SipTransportError(`TCP write to ${formatHostPort(destination.address, destination.port)} failed: ${errorCode(err) ?? err.message}`, destination, err));
        else resolve();
      });
    });
  }

  private accept(socket: Socket): void {
    if (this.inboundCount >= this.opts.maxConnections) {
      this.opts.onDrop?.('connection limit');
      this.noisyLog.warn({ address: socket.remoteAddress, port: socket.remotePort, limit: this.opts.maxConnections }, 'refused TCP connection: connection limit reached');
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress;
    const port = socket.remotePort;
    if (address === undefined || port === undefined) {
      socket.destroy(); // already gone
      return;
    }
    this.inboundCount++;
    this.attach(socket, normalizeAddress(address), port, true, Promise.resolve());
  }

  private open(destination: Endpoint): Connection {
    // Responses to requests whose connection closed make us connect back (18.2.2);
    // a peer opening and dropping connections must not make that unbounded.
    if (this.outboundCount >= this.opts.maxConnections) {
      throw new SipTransportError(`outbound TCP connection limit (${this.opts.maxConnections}) reached`, destination);
    }
    this.outboundCount++;
    const socket = connect({ host: destination.address, port: destination.port, noDelay: true });
    socket.setTimeout(this.opts.connectTimeoutMs ?? 10_000);
    const ready = new Promise<void>((resolve, reject) => {
      socket.once('connect', () => {
        socket.setTimeout(this.opts.idleTimeoutMs);
        resolve();
      });
      socket.once('close', () => reject(new SipTransportError(`TCP connect to ${formatHostPort(destination.address, destination.port)} failed`, destination)));
    });
    ready.catch(() => {}); // the sender awaits it; this keeps an unawaited failure from being unhandled
    return this.attach(socket, normalizeAddress(destination.address), destination.port, false, ready);
  }

  private attach(socket: Socket, address: string, port: number, inbound: boolean, ready: Promise<void>): Connection {
    const id = this.nextId++;
    const remote: Endpoint = { transport: 'tcp', address, port, connectionId: id };
    const conn: Connection = {
      id,
      socket,
      framer: new StreamFramer({ maxMessageBytes: this.opts.maxMessageBytes }),
      remote,
      remoteKey: remoteKey(address, port),
      inbound,
      ready,
      closing: false,
      linger: undefined,
    };
    this.connections.set(id, conn);
    this.byRemote.set(conn.remoteKey, id);
    if (inbound) {
      socket.setNoDelay(true);
      socket.setTimeout(this.opts.idleTimeoutMs);
    }
    socket.on('timeout', () => {
      this.log.debug({ connection: id, address, port }, 'closing idle TCP connection');
      socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.receive(conn, chunk));
    socket.on('error', (err) => this.noisyLog.warn({ connection: id, address, port, code: errorCode(err) }, 'TCP connection error'));
    socket.on('close', () => this.forget(conn));
    this.log.debug({ connection: id, address, port, inbound }, 'TCP connection open');
    return conn;
  }

  private forget(conn: Connection): void {
    clearTimeout(conn.linger);
    if (this.connections.get(conn.id) !== conn) return; // stop() already cleared it
    this.connections.delete(conn.id);
    if (this.byRemote.get(conn.remoteKey) === conn.id) this.byRemote.delete(conn.remoteKey);
    if (conn.inbound) this.inboundCount--;
    else this.outboundCount--;
    this.log.debug({ connection: conn.id, address: conn.remote.address, port: conn.remote.port }, 'TCP connection closed');
    try {
      this.closedHandler(conn.remote);
    } catch (err) {
      this.log.error({ err }, 'connection-closed handler failed');
    }
  }

  private receive(conn: Connection, chunk: Buffer): void {
    if (conn.closing) return; // draining until the peer reads our last reply
    for (const event of conn.framer.push(chunk)) {
      if (event.kind === 'message') {
        try {
          this.handler(event.bytes, conn.remote);
        } catch (err) {
          this.log.error({ err, connection: conn.id }, 'unexpected error handling a TCP message');
        }
      } else if (event.kind === 'ping') {
        conn.socket.write(PONG);
      } else {
        this.fail(conn, event.error);
      }
      if (conn.closing) return;
    }
  }

  private fail(conn: Connection, error: FramingError): void {
    this.opts.onDrop?.(error.failure);
    this.noisyLog.warn({ connection: conn.id, address: conn.remote.address, port: conn.remote.port, failure: error.failure }, 'closing TCP connection: unframeable SIP stream');
    let reply: Buffer | undefined;
    try {
      reply = this.framingErrorHandler(error, conn.remote);
    } catch (err) {
      this.log.error({ err }, 'framing error handler failed');
    }
    const { socket } = conn;
    if (reply !== undefined) socket.write(reply);
    // The framer takes nothing more from this stream, but messages framed before the
    // bad bytes are still being answered (a registrar waits for its commit): keep the
    // connection writable for a moment so those answers are not lost, then close.
    conn.linger = setTimeout(() => {
      conn.closing = true;
      socket.end();
      // Keep reading (and discarding) briefly so the peer gets our reply rather than a reset.
      conn.linger = setTimeout(() => socket.destroy(), LINGER_MS);
    }, ANSWER_GRACE_MS);
  }
}

function remoteKey(address: string, port: number): string {
  return `${address.toLowerCase()}|${port}`;
}
