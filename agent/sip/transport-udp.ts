// SIP over UDP (RFC 3261 18.1/18.2 on datagrams): one socket, IPv4 or IPv6 by the
// bind address. One datagram is one message. Datagrams over maxMessageBytes and
// keep-alives made only of CR/LF bytes (RFC 5626 3.5.1 style, sent by many phones
// over UDP too) are dropped before any parsing. Socket errors are logged, never
// thrown: an 'error' event without a listener would kill the process.

import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import type { LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Endpoint } from './types.ts';
import { RateLimitedLog, SipBindError, SipTransportError, errorCode, normalizeAddress } from './transport.ts';
import type { InboundHandler, LocalAddress, Transport } from './transport.ts';

export interface UdpTransportOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  logger: Logger;
  /** Called for each datagram dropped here (size, keep-alive excluded). */
  onDrop?: (reason: string) => void;
}

const CR = 0x0d;
const LF = 0x0a;
/** Socket buffers sized for REGISTER bursts after a power cut (all phones at once). */
const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

/**
 * dgram resolves the destination of every send, even an IP literal, through
 * dns.lookup, which answers a literal on the next tick: one extra tick per datagram.
 * Responses always go to a literal (the request's source address), so answer those
 * at once and leave names to dns.lookup.
 */
function literalFirstLookup(hostname: string, options: LookupOneOptions, callback: LookupCallback): void {
  const family = isIP(hostname);
  if (family !== 0) callback(null, hostname, family);
  else dnsLookup(hostname, options, callback);
}

function isOnlyLineBreaks(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b !== CR && b !== LF) return false;
  }
  return true;
}

export class UdpTransport implements Transport {
  readonly name = 'udp' as const;
  private readonly opts: UdpTransportOptions;
  private readonly log: Logger;
  private readonly garbageLog: RateLimitedLog;
  private socket: Socket | undefined;
  private handler: InboundHandler = () => {};
  private bound: LocalAddress | undefined;

  constructor(opts: UdpTransportOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ transport: 'udp' });
    this.garbageLog = new RateLimitedLog(this.log);
  }

  get localAddress(): LocalAddress | undefined {
    return this.bound;
  }

  onMessage(handler: InboundHandler): void {
    this.handler = handler;
  }

  start(): Promise<void> {
    const { host, port } = this.opts;
    const socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', lookup: literalFirstLookup });
    this.socket = socket;
    return new Promise<void>((resolve, reject) => {
      const onBindError = (err: Error): void => {
        this.socket = undefined;
        socket.close();
        reject(new SipBindError('udp', host, port, err));
      };
      socket.once('error', onBindError);
      socket.bind({ address: host, port, exclusive: true }, () => {
        socket.off('error', onBindError);
        socket.on('error', (err) => this.log.error({ err }, 'UDP socket error'));
        socket.on('message', (msg, rinfo) => this.receive(msg, rinfo.address, rinfo.port));
        try {
          socket.setRecvBufferSize(SOCKET_BUFFER_BYTES);
          socket.setSendBufferSize(SOCKET_BUFFER_BYTES);
        } catch (err) {
          this.log.debug({ err }, 'could not enlarge UDP socket buffers');
        }
        const a = socket.address();
        this.bound = { address: a.address, port: a.port };
        this.log.info({ address: a.address, port: a.port }, 'SIP UDP listening');
        resolve();
      });
    });
  }

  stop(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    this.bound = undefined;
    if (socket === undefined) return Promise.resolve();
    return new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  send(bytes: Buffer, destination: Endpoint): Promise<void> {
    const socket = this.socket;
    if (socket === undefined) return Promise.reject(new SipTransportError('UDP transport is not running', destination));
    return new Promise<void>((resolve, reject) => {
      try {
        socket.send(bytes, destination.port, destination.address, (err) => {
          if (err) reject(new SipTransportError(`UDP send to ${destination.address}:${destination.port} failed: ${errorCode(err) ?? err.message}`, destination, err));
          else resolve();
        });
      } catch (err) {
        // dgram throws synchronously on a malformed address or port.
        reject(new SipTransportError(`UDP send to ${destination.address}:${destination.port} refused`, destination, err));
      }
    });
  }

  private receive(msg: Buffer, address: string, port: number): void {
    if (msg.length > this.opts.maxMessageBytes) {
      this.opts.onDrop?.('too large');
      this.garbageLog.warn({ address, port, bytes: msg.length, limit: this.opts.maxMessageBytes }, 'dropped UDP datagram over the size limit');
      return;
    }
    if (isOnlyLineBreaks(msg)) return; // keep-alive
    const source: Endpoint = { transport: 'udp', address: normalizeAddress(address), port };
    try {
      this.handler(msg, source);
    } catch (err) {
      // The stack catches its own errors; this is the last line before process death.
      this.log.error({ err, address, port }, 'unexpected error handling a UDP datagram');
    }
  }
}
