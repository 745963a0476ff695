// The transport layer's shared contract (RFC 3261 18): both transports behind one
// interface, the errors they raise, the Via rules that belong to the transport
// (received/rport on the way in, 18.2.1 and RFC 3581; where a response goes,
// 18.2.2), and a log limiter so a flood of garbage cannot fill the disk.

import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Endpoint, TransportName, Via } from './types.ts';

/** start() could not bind a socket. Names the transport, host:port and the OS reason. */
export class SipBindError extends Error {
  readonly code = 'EBIND';
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
  /** The OS error code (EADDRINUSE, EADDRNOTAVAIL, EACCES...). */
  readonly osCode: string | undefined;

  constructor(transport: TransportName, host: string, port: number, cause: unknown) {
    const osCode = errorCode(cause);
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`cannot bind SIP ${transport.toUpperCase()} to ${formatHostPort(host, port)}: ${reason}`, { cause });
    this.name = 'SipBindError';
    this.transport = transport;
    this.host = host;
    this.port = port;
    this.osCode = osCode;
  }
}

/** A message could not be handed to the network (no such transport, connect failed, socket error). */
export class SipTransportError extends Error {
  readonly code = 'ETRANSPORT';
  readonly destination: Endpoint;

  constructor(message: string, destination: Endpoint, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SipTransportError';
    this.destination = destination;
  }
}

export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export interface LocalAddress {
  address: string;
  port: number;
}

/** Called for every complete message a transport receives. */
export type InboundHandler = (bytes: Buffer, source: Endpoint) => void;

export interface Transport {
  readonly name: TransportName;
  /** The bound address once started. */
  readonly localAddress: LocalAddress | undefined;
  onMessage(handler: InboundHandler): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves once the bytes are handed to the OS; rejects with SipTransportError. Never throws. */
  send(bytes: Buffer, destination: Endpoint): Promise<void>;
}

/** Routes each outgoing message to the transport its destination names. */
export class TransportSet {
  private readonly byName: Map<TransportName, Transport>;

  constructor(transports: readonly Transport[]) {
    this.byName = new Map(transports.map((t) => [t.name, t]));
  }

  get(name: TransportName): Transport | undefined {
    return this.byName.get(name);
  }

  all(): Transport[] {
    return [...this.byName.values()];
  }

  send(bytes: Buffer, destination: Endpoint): Promise<void> {
    const transport = this.byName.get(destination.transport);
    if (transport === undefined) {
      return Promise.reject(new SipTransportError(`no ${destination.transport} transport configured`, destination));
    }
    return transport.send(bytes, destination);
  }
}

/** host:port, with IPv6 literals bracketed as in a SIP URI or Via sent-by. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A Via or URI host without IPv6 brackets, lower-cased, for comparison with a socket address. */
export function bareHost(host: string): string {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return h.toLowerCase();
}

/** Sockets on a dual-stack '::' report IPv4 peers as ::ffff:a.b.c.d; SIP wants a.b.c.d. */
export function normalizeAddress(address: string): string {
  if (address.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return address.slice(7);
  return address;
}

function hasParam(via: Via, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(via.params, name);
}

/**
 * RFC 3261 18.2.1 and RFC 3581 4: record where the request really came from in its
 * top Via, so that responses (and the registrar, for NAT) use the real address.
 */
export function stampVia(via: Via, source: Endpoint): void {
  const rport = hasParam(via, 'rport');
  if (rport) via.params['rport'] = String(source.port);
  if (rport || bareHost(via.host) !== source.address.toLowerCase()) via.params['received'] = source.address;
}

/**
 * RFC 3261 18.2.2 and RFC 3581: where a response to a request with this (stamped)
 * top Via goes. The address is always the packet's source (received); the port is
 * the source port when the client asked for rport, else its sent-by port. maddr is
 * ignored on purpose: honouring it would let any packet direct our responses at a
 * third party.
 */
export function responseDestination(via: Via, source: Endpoint): Endpoint {
  const rport = via.params['rport'];
  const port = typeof rport === 'string' && rport !== '' ? source.port : (via.port ?? 5060);
  const dest: Endpoint = { transport: source.transport, address: source.address, port };
  if (source.connectionId !== undefined) dest.connectionId = source.connectionId;
  return dest;
}

/**
 * Logs at most `maxPerWindow` lines per window; the next line logged after some were
 * held back carries their count as `suppressed`. For events a remote party can
 * trigger at will (garbage, refused connections).
 */
export class RateLimitedLog {
  private readonly logger: Logger;
  private readonly maxPerWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private windowStart = 0;
  private count = 0;
  private suppressed = 0;

  constructor(logger: Logger, maxPerWindow = 10, windowMs = 1000, now: () => number = Date.now) {
    this.logger = logger;
    this.maxPerWindow = maxPerWindow;
    this.windowMs = windowMs;
    this.now = now;
  }

  warn(fields: Record<string, unknown>, message: string): void {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      this.windowStart = t;
      this.count = 0;
    }
    if (this.count >= this.maxPerWindow) {
      this.suppressed++;
      return;
    }
    this.count++;
    if (this.suppressed > 0) {
      this.logger.warn({ ...fields, suppressed: this.suppressed }, message);
      this.suppressed = 0;
    } else {
      this.logger.warn(fields, message);
    }
  }
}
