// A small SIP client over UDP for tests and the benchmark: builds REGISTER and
// OPTIONS requests as text, answers digest challenges (MD5 and SHA-256, RFC 7616 /
// RFC 8760 — SIPp 3.6.1 does MD5 only), and exchanges datagrams from a socket bound
// to a chosen loopback address (127.0.0.0/8: each test peer its own source).
//
// NOTE: this file was rebuilt after an accidental overwrite (see the harness
// helper's report); its API is the one test/integration/defence.test.ts uses.
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';

/** A parsed `Digest ...` challenge from WWW-Authenticate. */
export interface Challenge {
  realm: string;
  nonce: string;
  /** As offered; MD5 when the challenge names none. */
  algorithm: string;
  qop?: string;
  opaque?: string;
  stale?: string;
  /** Every parameter, lower-case names. */
  params: Record<string, string>;
}

function randomToken(bytes = 8): string {
  return randomBytes(bytes).toString('hex');
}

/** Every value of a header in a message, by case-insensitive name. */
export function headerValuesOf(message: string, name: string): string[] {
  const head = message.split('\r\n\r\n')[0] ?? '';
  const out: string[] = [];
  const lower = name.toLowerCase();
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === lower) out.push(line.slice(colon + 1).trim());
  }
  return out;
}

export function parseDigestChallenge(value: string): Challenge | undefined {
  if (!/^\s*Digest\s/i.test(value)) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value.replace(/^\s*Digest\s+/i, ''))) !== null) {
    const key = m[1];
    if (key) params[key.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? '');
  }
  const challenge: Challenge = {
    realm: params['realm'] ?? '',
    nonce: params['nonce'] ?? '',
    algorithm: params['algorithm'] ?? 'MD5',
    params,
  };
  if (params['qop'] !== undefined) challenge.qop = params['qop'];
  if (params['opaque'] !== undefined) challenge.opaque = params['opaque'];
  if (params['stale'] !== undefined) challenge.stale = params['stale'];
  return challenge;
}

/** The digest challenges of a 401/407, in the order the server offered them. */
export function challengesOf(response: string): Challenge[] {
  return [...headerValuesOf(response, 'WWW-Authenticate'), ...headerValuesOf(response, 'Proxy-Authenticate')]
    .map(parseDigestChallenge)
    .filter((c): c is Challenge => c !== undefined);
}

export interface AuthorizationInput {
  challenge: Challenge;
  username: string;
  password: string;
  method: string;
  uri: string;
  nonceCount?: number;
  cnonce?: string;
}

/** An Authorization value answering `challenge` with its algorithm (qop=auth when offered). */
export function authorization(a: AuthorizationInput): string {
  const algorithm = a.challenge.algorithm.toUpperCase();
  const hashName = algorithm === 'SHA-256' ? 'sha256' : algorithm === 'MD5' ? 'md5' : undefined;
  if (!hashName) throw new Error(`unsupported digest algorithm ${a.challenge.algorithm}`);
  const h = (s: string): string => createHash(hashName).update(s).digest('hex');
  const ha1 = h(`${a.username}:${a.challenge.realm}:${a.password}`);
  const ha2 = h(`${a.method}:${a.uri}`);
  const parts = [
    `username="${a.username}"`,
    `realm="${a.challenge.realm}"`,
    `nonce="${a.challenge.nonce}"`,
    `uri="${a.uri}"`,
  ];
  const useQop = a.challenge.qop !== undefined && a.challenge.qop.split(',').map((q) => q.trim()).includes('auth');
  if (useQop) {
    const nc = (a.nonceCount ?? 1).toString(16).padStart(8, '0');
    const cnonce = a.cnonce ?? randomToken();
    parts.push(`response="${h(`${ha1}:${a.challenge.nonce}:${nc}:${cnonce}:auth:${ha2}`)}"`, `cnonce="${cnonce}"`, 'qop=auth', `nc=${nc}`);
  } else {
    parts.push(`response="${h(`${ha1}:${a.challenge.nonce}:${ha2}`)}"`);
  }
  parts.push(`algorithm=${a.challenge.algorithm}`);
  if (a.challenge.opaque !== undefined) parts.push(`opaque="${a.challenge.opaque}"`);
  return `Digest ${parts.join(', ')}`;
}

interface CommonRequest {
  domain: string;
  localPort: number;
  /** The address the peer sends from (its Via and Contact host). */
  host?: string;
  callId?: string;
  cseq?: number;
  userAgent?: string;
  extraHeaders?: string[];
}

function via(host: string, port: number): string {
  // rport: answer where the datagram came from (RFC 3581).
  return `Via: SIP/2.0/UDP ${host}:${port};branch=z9hG4bK${randomToken()};rport`;
}

function finish(lines: string[], r: CommonRequest): string {
  lines.push(`User-Agent: ${r.userAgent ?? 'branchline-test-client'}`, ...(r.extraHeaders ?? []), 'Content-Length: 0', '', '');
  return lines.join('\r\n');
}

export interface RegisterRequestInput extends CommonRequest {
  user: string;
  expires?: number;
  /** The Contact header value; <sip:user@host:localPort> when absent; "*" for all. */
  contact?: string;
  /** An Authorization header value. */
  auth?: string;
}

export function registerRequest(r: RegisterRequestInput): string {
  const host = r.host ?? '127.0.0.1';
  const lines = [
    `REGISTER sip:${r.domain} SIP/2.0`,
    via(host, r.localPort),
    'Max-Forwards: 70',
    `From: <sip:${r.user}@${r.domain}>;tag=${randomToken(4)}`,
    `To: <sip:${r.user}@${r.domain}>`,
    `Call-ID: ${r.callId ?? randomToken(12)}`,
    `CSeq: ${r.cseq ?? 1} REGISTER`,
    `Contact: ${r.contact ?? `<sip:${r.user}@${host}:${r.localPort}>`}`,
    `Expires: ${r.expires ?? 600}`,
  ];
  if (r.auth) lines.push(`Authorization: ${r.auth}`);
  return finish(lines, r);
}

export interface OptionsRequestInput extends CommonRequest {
  user?: string;
}

export function optionsRequest(r: OptionsRequestInput): string {
  const host = r.host ?? '127.0.0.1';
  const user = r.user ?? 'probe';
  return finish(
    [
      `OPTIONS sip:${r.domain} SIP/2.0`,
      via(host, r.localPort),
      'Max-Forwards: 70',
      `From: <sip:${user}@${r.domain}>;tag=${randomToken(4)}`,
      `To: <sip:${r.domain}>`,
      `Call-ID: ${r.callId ?? randomToken(12)}`,
      `CSeq: ${r.cseq ?? 1} OPTIONS`,
      `Contact: <sip:${user}@${host}:${r.localPort}>`,
    ],
    r,
  );
}

function statusCode(message: string): number | undefined {
  const m = /^SIP\/2\.0 ([0-9]{3})/.exec(message);
  return m ? Number(m[1]) : undefined;
}

/** One UDP socket on a loopback address; received messages queue until read. */
export class UdpPeer {
  readonly host: string;
  readonly #socket: dgram.Socket;
  readonly #queue: string[] = [];
  #waiter: ((message: string) => void) | undefined;
  #port = 0;

  constructor(host: string, socket: dgram.Socket) {
    this.host = host;
    this.#socket = socket;
  }

  static async open(host = '127.0.0.1'): Promise<UdpPeer> {
    const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const peer = new UdpPeer(host, socket);
    peer.#port = socket.address().port;
    socket.on('message', (msg) => {
      const text = msg.toString('latin1');
      const waiter = peer.#waiter;
      if (waiter) {
        peer.#waiter = undefined;
        waiter(text);
      } else {
        peer.#queue.push(text);
      }
    });
    return peer;
  }

  get port(): number {
    return this.#port;
  }

  /** Sends to `to`:port; the server is on 127.0.0.1 whatever address the peer has. */
  send(message: string, port: number, to = '127.0.0.1'): void {
    this.#socket.send(message, port, to);
  }

  /** The next message received (queued first), or undefined after timeoutMs. */
  next(timeoutMs = 2000): Promise<string | undefined> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.#waiter = (message) => {
        clearTimeout(timer);
        resolve(message);
      };
    });
  }

  /**
   * Sends a request and returns the first final response (provisional ones are
   * skipped), or undefined if none came within timeoutMs. No retransmission:
   * loopback does not lose datagrams, and a silent server must look silent.
   */
  async exchange(message: string, port: number, timeoutMs = 2000): Promise<string | undefined> {
    this.#queue.length = 0;
    this.send(message, port);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      const got = await this.next(left);
      if (got === undefined) return undefined;
      const code = statusCode(got);
      if (code === undefined || code >= 200) return got;
    }
  }

  close(): void {
    this.#waiter = undefined;
    this.#socket.close();
  }
}

export interface RegisterWithAuthInput {
  user: string;
  password: string;
  domain: string;
  expires?: number;
  contact?: string;
  userAgent?: string;
  /** Answer the challenge with this algorithm; the first one offered when absent. */
  algorithm?: 'MD5' | 'SHA-256';
  timeoutMs?: number;
}

/**
 * REGISTER, then answer the 401 with credentials: the final response to the second
 * REGISTER (or the first answer if it was not a 401), undefined if the server did not
 * answer. Throws when the requested algorithm is not offered.
 */
export async function registerWithAuth(peer: UdpPeer, port: number, r: RegisterWithAuthInput): Promise<string | undefined> {
  const callId = randomToken(12);
  const base = {
    user: r.user,
    domain: r.domain,
    localPort: peer.port,
    host: peer.host,
    callId,
    ...(r.expires !== undefined ? { expires: r.expires } : {}),
    ...(r.contact !== undefined ? { contact: r.contact } : {}),
    ...(r.userAgent !== undefined ? { userAgent: r.userAgent } : {}),
  };
  const first = await peer.exchange(registerRequest({ ...base, cseq: 1 }), port, r.timeoutMs);
  if (first === undefined || statusCode(first) !== 401) return first;
  const offered = challengesOf(first);
  const challenge = r.algorithm ? offered.find((c) => c.algorithm.toUpperCase() === r.algorithm) : offered[0];
  if (!challenge) throw new Error(`no ${r.algorithm ?? 'digest'} challenge in: ${first.split('\r\n\r\n')[0]}`);
  const auth = authorization({ challenge, username: r.user, password: r.password, method: 'REGISTER', uri: `sip:${r.domain}` });
  return peer.exchange(registerRequest({ ...base, cseq: 2, auth }), port, r.timeoutMs);
}
