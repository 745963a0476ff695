// RTP/RTCP socket pairs: RTP on an even port, RTCP on the next odd one (RFC 3550
// §11), taken from a configured range or, without one, from the OS (tests).
import dgram from 'node:dgram';
import net from 'node:net';
import { PortsExhaustedError } from './errors.ts';

export interface PortRange {
  /** First port of the range (rounded up to even). */
  min: number;
  /** Last port of the range; the last pair is (max-1, max) when max is odd. */
  max: number;
}

export interface SocketPair {
  rtp: dgram.Socket;
  rtcp: dgram.Socket;
  port: number;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

// The last address checked: a session sends every packet to the same string.
let lastLiteral = '';
let lastFamily = 0;

/**
 * dgram resolves the destination of every send through `lookup`; the default
 * defers even an IP literal to the next tick. Ours answers IP literals at once
 * (and remembers the last one, sparing a regular expression per packet), which
 * saves a tick and a closure per packet on the relay path.
 */
function literalLookup(hostname: string, options: unknown, callback: LookupCallback): void {
  if (hostname !== lastLiteral) {
    const family = net.isIP(hostname);
    if (family === 0) {
      callback(Object.assign(new Error(`not an IP address: ${hostname}`), { code: 'EINVAL' }), '', 0);
      return;
    }
    lastLiteral = hostname;
    lastFamily = family;
  }
  callback(null, hostname, lastFamily);
}

function bindSocket(type: 'udp4' | 'udp6', address: string, port: number): Promise<dgram.Socket | undefined> {
  return new Promise((resolve) => {
    // The Node typings want the dns.lookup overloads; ours is a subset that
    // answers IP literals only, which is all RTP ever sends to.
    const socket = dgram.createSocket({ type, lookup: literalLookup as unknown as typeof import('node:dns').lookup });
    const onError = (): void => {
      socket.close();
      resolve(undefined);
    };
    socket.once('error', onError);
    socket.bind({ port, address, exclusive: true }, () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // Already closed.
  }
}

/**
 * Hands out socket pairs. With a range it walks even ports round-robin, so a port
 * just released is reused last (a late packet for the old call then meets no one
 * rather than the next call); ports other programs hold are skipped. Without a
 * range it asks the OS and retries until it gets an even port whose successor is
 * free.
 */
export class PortPool {
  readonly range: PortRange | undefined;
  readonly address: string;
  readonly #inUse = new Set<number>();
  #cursor = 0;

  constructor(address: string, range?: PortRange) {
    this.address = address;
    this.range = range;
  }

  get inUse(): number {
    return this.#inUse.size;
  }

  /** Number of pairs the range holds (Infinity without a range). */
  get capacity(): number {
    if (!this.range) return Infinity;
    const first = this.range.min + (this.range.min % 2);
    return Math.max(0, Math.floor((this.range.max - first + 1) / 2));
  }

  async allocate(): Promise<SocketPair> {
    const type = net.isIPv6(this.address) ? 'udp6' : 'udp4';
    if (!this.range) return this.#allocateEphemeral(type);
    const first = this.range.min + (this.range.min % 2);
    const pairs = this.capacity;
    for (let attempt = 0; attempt < pairs; attempt++) {
      const port = first + 2 * ((this.#cursor + attempt) % pairs);
      if (this.#inUse.has(port)) continue;
      // Reserve before the awaits so that concurrent allocations skip it.
      this.#inUse.add(port);
      const rtp = await bindSocket(type, this.address, port);
      const rtcp = rtp ? await bindSocket(type, this.address, port + 1) : undefined;
      if (rtp && rtcp) {
        this.#cursor = (this.#cursor + attempt + 1) % pairs;
        return { rtp, rtcp, port };
      }
      if (rtp) closeQuietly(rtp);
      this.#inUse.delete(port);
    }
    throw new PortsExhaustedError(`no free RTP port pair in ${this.range.min}-${this.range.max}`);
  }

  async #allocateEphemeral(type: 'udp4' | 'udp6'): Promise<SocketPair> {
    for (let attempt = 0; attempt < 64; attempt++) {
      const rtp = await bindSocket(type, this.address, 0);
      if (!rtp) break;
      const port = rtp.address().port;
      if (port % 2 === 0 && port < 65535) {
        const rtcp = await bindSocket(type, this.address, port + 1);
        if (rtcp) {
          this.#inUse.add(port);
          return { rtp, rtcp, port };
        }
      }
      closeQuietly(rtp);
    }
    throw new PortsExhaustedError(`no even RTP port pair from the OS on ${this.address}`);
  }

  /** Closes both sockets and returns the pair to the pool. */
  release(pair: SocketPair): void {
    closeQuietly(pair.rtp);
    closeQuietly(pair.rtcp);
    this.#inUse.delete(pair.port);
  }
}
