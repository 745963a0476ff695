// The SIP stack: transports -> parse -> security filter -> transactions -> checks
// -> the TU (registrar, later the call core), and the client side back out.
//
// Every message that arrives takes this path:
//   parseMessage: invalid request with enough left to address a reply -> filter ->
//     the reply the parser names, statelessly; anything else invalid -> dropped,
//     logged (rate-limited)
//   response -> its client transaction, or dropped when none matches
//   request -> top Via stamped with received/rport -> filter ('drop', or a
//     stateless answer) -> ACK: its INVITE transaction, a 2xx awaiting it, or the
//     TU -> retransmission: answered from its transaction -> CANCEL: 200 + 487 on
//     the INVITE -> new transaction -> checkRequest (failures answered through the
//     transaction, so retransmissions and ACKs are absorbed) -> the TU.
// A TU handler that throws (or rejects) gets its request answered 500. Nothing a
// peer sends can throw out of here: every entry point is guarded.

import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { newBranch, newTag } from './branch.ts';
import { parseMessage } from './parse.ts';
import type { ParseOutcome } from './parse.ts';
import { checkRequest } from './request-checks.ts';
import type { CheckFailure, RequestCheckOptions } from './request-checks.ts';
import { makeResponse, serialize } from './serialize.ts';
import type { ResponseExtras } from './serialize.ts';
import { resolveTimers } from './timers.ts';
import type { SipTimers, TimerSettings } from './timers.ts';
import { RateLimitedLog, SipTransportError, TransportSet, errorCode, responseDestination, stampVia } from './transport.ts';
import type { LocalAddress, Transport } from './transport.ts';
import { TcpTransport } from './transport-tcp.ts';
import type { FramingError } from './framing.ts';
import { UdpTransport } from './transport-udp.ts';
import { InviteClientTransaction } from './transactions/client-invite.ts';
import { NonInviteClientTransaction } from './transactions/client-non-invite.ts';
import type { TransactionContext } from './transactions/context.ts';
import { SipRequestError, SipStackStoppedError } from './transactions/errors.ts';
import { ackKeyOfRequest, clientKey, clientKeyOfResponse, serverKey } from './transactions/keys.ts';
import type { Reliable2xx } from './transactions/reliable-2xx.ts';
import { buildCancel } from './transactions/requests.ts';
import { ServerRequest } from './transactions/server-request.ts';
import type { IncomingRequest } from './transactions/server-request.ts';
import type { InviteServerTransaction } from './transactions/server-invite.ts';
import { ServerTransactionTable } from './transactions/server-table.ts';
import type { Endpoint, SipRequest, SipResponse, TransportName, Via } from './types.ts';

export type { IncomingRequest } from './transactions/server-request.ts';
export type { ResponseExtras } from './serialize.ts';
export type { CheckFailure, RequestCheckOptions } from './request-checks.ts';
export { SipBindError, SipTransportError } from './transport.ts';
export { SipRequestError, SipStackStoppedError, SipTimeoutError } from './transactions/errors.ts';
export { Reliable2xx } from './transactions/reliable-2xx.ts';

export const DEFAULT_MAX_MESSAGE_BYTES = 65535;
export const DEFAULT_MAX_TCP_CONNECTIONS = 2048;
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 300_000;

export interface SipStackOptions {
  udp?: { host: string; port: number };
  tcp?: { host: string; port: number };
  /** Whole message (headers + body). Larger: dropped (UDP) / answered 413 or 513 and closed (TCP). Default 65535. */
  maxMessageBytes: number;
  /** Accepted TCP connections held at once. Default 2048. */
  maxTcpConnections?: number;
  /** A TCP connection silent both ways this long is closed. Default 300 s. */
  tcpIdleTimeoutMs?: number;
  /** ms; defaults 500/4000/5000. Tests shorten them. */
  timers?: TimerSettings;
  checks: RequestCheckOptions;
  logger: Logger;
  /** Host for the Via sent-by of requests we send, when bound to a wildcard address. */
  advertisedHost?: string;
}

/** Security hook run before transactions: 'drop' silently, answer statelessly with a CheckFailure, or let through. */
export type RequestFilter = (request: SipRequest, source: Endpoint) => 'drop' | CheckFailure | undefined;
export type RequestHandler = (req: IncomingRequest) => void | Promise<void>;
/** A CANCEL ended an INVITE that was still waiting for its final (it was answered 487). */
export type CancelHandler = (invite: IncomingRequest, cancel: SipRequest) => void;

export interface ClientRequestOptions {
  /** INVITE: 2xx responses after the first (retransmissions, forks) for the dialog layer to ACK. */
  onAdditional2xx?: (response: SipResponse) => void;
}

export interface SipStackStats {
  serverTransactions: number;
  clientTransactions: number;
  tcpConnections: number;
  dropped: number;
  retransmissionsAbsorbed: number;
}

type ClientTransaction = NonInviteClientTransaction | InviteClientTransaction;

class SipStackConfigError extends Error {
  readonly code = 'ECONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'SipStackConfigError';
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

export class SipStack {
  private readonly opts: SipStackOptions;
  private readonly log: Logger;
  private readonly garbageLog: RateLimitedLog;
  private readonly sendLog: RateLimitedLog;
  private timers: SipTimers | undefined;
  private udp: UdpTransport | undefined;
  private tcp: TcpTransport | undefined;
  private transports = new TransportSet([]);
  private ctx: TransactionContext | undefined;
  private server: ServerTransactionTable | undefined;
  private readonly clients = new Map<string, ClientTransaction>();
  private readonly pending2xx = new Map<string, Reliable2xx>();
  private readonly inviteRequests = new WeakMap<InviteServerTransaction, ServerRequest>();
  private readonly openInvites = new Set<ServerRequest>();
  private sentByHost = new Map<TransportName, string>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private running = false;
  private requestHandler: RequestHandler | undefined;
  private cancelHandler: CancelHandler | undefined;
  private closedHandler: ((endpoint: Endpoint) => void) | undefined;
  private filter: RequestFilter | undefined;
  private dropped = 0;
  private absorbed = 0;

  constructor(opts: SipStackOptions) {
    this.opts = opts;
    this.log = opts.logger;
    this.garbageLog = new RateLimitedLog(opts.logger);
    this.sendLog = new RateLimitedLog(opts.logger);
  }

  /** The TU. ACK for non-2xx, retransmissions and CANCEL are handled here and never reach it. */
  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  onCancel(handler: CancelHandler): void {
    this.cancelHandler = handler;
  }

  /** A TCP connection closed (a flow failed, RFC 5626). */
  onConnectionClosed(handler: (endpoint: Endpoint) => void): void {
    this.closedHandler = handler;
  }

  setRequestFilter(filter: RequestFilter): void {
    this.filter = filter;
  }

  get addresses(): { udp?: LocalAddress; tcp?: LocalAddress } {
    const out: { udp?: LocalAddress; tcp?: LocalAddress } = {};
    const udp = this.udp?.localAddress;
    const tcp = this.tcp?.localAddress;
    if (udp !== undefined) out.udp = { ...udp };
    if (tcp !== undefined) out.tcp = { ...tcp };
    return out;
  }

  stats(): SipStackStats {
    return {
      serverTransactions: this.server?.size ?? 0,
      clientTransactions: this.clients.size,
      tcpConnections: this.tcp?.connectionCount ?? 0,
      dropped: this.dropped,
      retransmissionsAbsorbed: this.absorbed,
    };
  }

  async start(): Promise<void> {
    const { opts } = this;
    if (this.running) return;
    if (opts.udp === undefined && opts.tcp === undefined) throw new SipStackConfigError('SIP stack needs a udp or tcp listen address');
    const timers = resolveTimers(opts.timers);
    this.timers = timers;
    const maxMessageBytes = opts.maxMessageBytes > 0 ? opts.maxMessageBytes : DEFAULT_MAX_MESSAGE_BYTES;
    const onDrop = (): void => {
      this.dropped++;
    };
    const transports: Transport[] = [];
    if (opts.udp !== undefined) {
      const udp = new UdpTransport({ ...opts.udp, maxMessageBytes, logger: this.log, onDrop });
      udp.onMessage((bytes, source) => this.receive(bytes, source));
      this.udp = udp;
      transports.push(udp);
    }
    if (opts.tcp !== undefined) {
      const tcp = new TcpTransport({
        ...opts.tcp,
        maxMessageBytes,
        maxConnections: opts.maxTcpConnections ?? DEFAULT_MAX_TCP_CONNECTIONS,
        idleTimeoutMs: opts.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS,
        logger: this.log,
        onDrop,
      });
      tcp.onMessage((bytes, source) => this.receive(bytes, source));
      tcp.onFramingError((error, source) => this.replyToFramingError(error, source));
      tcp.onConnectionClosed((endpoint) => this.closedHandler?.(endpoint));
      this.tcp = tcp;
      transports.push(tcp);
    }
    this.transports = new TransportSet(transports);
    const ctx: TransactionContext = {
      timers,
      log: this.log,
      send: (bytes, destination) => this.transports.send(bytes, destination),
      sendQuietly: (bytes, destination) => {
        this.transports.send(bytes, destination).catch((err: unknown) => {
          this.sendLog.warn({ code: errorCode(err), address: destination.address, port: destination.port, transport: destination.transport }, 'could not send a SIP message');
        });
      },
      countAbsorbed: () => {
        this.absorbed++;
      },
    };
    this.ctx = ctx;
    const now = (): number => performance.now();
    this.server = new ServerTransactionTable(ctx, now);

    try {
      for (const t of transports) await t.start();
    } catch (err) {
      await Promise.all(transports.map((t) => t.stop()));
      this.log.error({ err }, 'SIP stack failed to start');
      throw err;
    }
    this.running = true;
    for (const t of transports) {
      const local = t.localAddress;
      if (local !== undefined) this.sentByHost.set(t.name, this.pickSentBy(local.address));
    }
    this.sweepTimer = setInterval(() => this.server?.sweep(), Math.min(1000, Math.max(50, timers.t1)));
    this.sweepTimer.unref();
    this.log.info({ udp: this.addresses.udp, tcp: this.addresses.tcp, t1: timers.t1, maxMessageBytes }, 'SIP stack started');
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const r of [...this.pending2xx.values()]) r.stop();
    this.pending2xx.clear();
    for (const inv of this.openInvites) inv.settleAck(undefined);
    this.openInvites.clear();
    for (const txn of [...this.clients.values()]) txn.stop();
    this.clients.clear();
    this.server?.stop();
    await Promise.all(this.transports.all().map((t) => t.stop()));
    this.udp = undefined;
    this.tcp = undefined;
    this.transports = new TransportSet([]);
    this.log.info('SIP stack stopped');
  }

  /** Stateless response (RFC 3261 8.2.7), e.g. a digest challenge: no transaction state kept. */
  respondStateless(req: SipRequest, source: Endpoint, status: number, reason: string, extras?: ResponseExtras): void {
    const via = req.headers.via[0];
    if (via === undefined || req.method === 'ACK' || this.ctx === undefined) return;
    const key = serverKey(req);
    const invite = key !== undefined && req.method === 'INVITE' ? this.server?.findInvite(key) : undefined;
    const owner = invite !== undefined ? this.inviteRequests.get(invite) : undefined;
    if (owner !== undefined) {
      owner.respondStateless(status, reason, extras);
      return;
    }
    stampVia(via, source);
    // RFC 3261 8.2.6.2: every response but 100 carries a To tag.
    const tagged = status === 100 || extras?.toTag !== undefined ? extras : { ...extras, toTag: newTag() };
    const response = makeResponse(req, status, reason, tagged);
    this.ctx.sendQuietly(serialize(response), responseDestination(via, source));
  }

  /**
   * Client transaction: resolves with the final response (onProvisional gets each
   * 1xx); rejects with SipTimeoutError (code ETIMEDOUT, a 408) on Timer B/F, with
   * SipTransportError when the request cannot be sent, SipStackStoppedError on
   * stop(). Fills in a Via (our sent-by, a new branch, rport) when there is none,
   * a branch when the top Via has none, and Max-Forwards: 70 when absent.
   */
  request(req: SipRequest, dest: Endpoint, onProvisional?: (r: SipResponse) => void, options?: ClientRequestOptions): Promise<SipResponse> {
    const ctx = this.ctx;
    if (!this.running || ctx === undefined) return Promise.reject(new SipStackStoppedError());
    if (req.method === 'ACK') return Promise.reject(new SipRequestError('ACK is not a transaction: use sendStateless'));
    let branch: string;
    let bytes: Buffer;
    try {
      branch = this.prepareVia(req, dest);
      if (req.headers['max-forwards'] === undefined) req.headers['max-forwards'] = '70';
      if (req.headers.cseq.method !== req.method) throw new SipRequestError(`CSeq method ${req.headers.cseq.method} does not match ${req.method}`);
      bytes = serialize(req);
    } catch (err) {
      return Promise.reject(asError(err));
    }
    const key = clientKey(branch, req.method);
    if (this.clients.has(key)) return Promise.reject(new SipRequestError(`a ${req.method} client transaction with branch ${branch} is already running`));
    return new Promise<SipResponse>((resolve, reject) => {
      let txn: ClientTransaction | undefined;
      const onTerminated = (): void => {
        if (txn !== undefined && this.clients.get(key) === txn) this.clients.delete(key);
      };
      const callbacks = { onProvisional, resolve, reject, onTerminated };
      txn =
        req.method === 'INVITE'
          ? new InviteClientTransaction(key, req, bytes, dest, ctx, { ...callbacks, onAdditional2xx: options?.onAdditional2xx })
          : new NonInviteClientTransaction(key, req.method, bytes, dest, ctx, callbacks);
      this.clients.set(key, txn);
      txn.start();
    });
  }

  /**
   * CANCEL for an INVITE sent with request() (9.1): waits for a provisional
   * response first, as 9.1 asks. Resolves with the CANCEL's final response, or
   * undefined when the INVITE ended (final response, timeout) without one.
   * `headers` are added to the CANCEL.
   */
  async cancel(invite: SipRequest, dest: Endpoint, headers?: Record<string, string>): Promise<SipResponse | undefined> {
    const branch = invite.headers.via[0]?.params['branch'];
    if (typeof branch !== 'string') return undefined;
    const txn = this.clients.get(clientKey(branch, 'INVITE'));
    if (!(txn instanceof InviteClientTransaction)) return undefined;
    if (!(await txn.waitForProvisional())) return undefined;
    const cancel = buildCancel(invite);
    // e.g. Reason (RFC 3326): "Call completed elsewhere" for the losers of a fork.
    for (const [name, value] of Object.entries(headers ?? {})) cancel.headers[name.toLowerCase()] = value;
    return this.request(cancel, dest);
  }

  /** The host we write into Via sent-by (and the call core into Contact) for a transport, once started. */
  advertisedHost(transport: TransportName): string | undefined {
    return this.sentByHost.get(transport);
  }

  /** Sends a request outside any transaction (the ACK for a 2xx, 13.2.2.4). Fills Via like request(). */
  sendStateless(req: SipRequest, dest: Endpoint): Promise<void> {
    if (!this.running) return Promise.reject(new SipStackStoppedError());
    try {
      this.prepareVia(req, dest);
      if (req.headers['max-forwards'] === undefined) req.headers['max-forwards'] = '70';
      return this.transports.send(serialize(req), dest);
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }

  // --- inbound -------------------------------------------------------------

  private receive(bytes: Buffer, source: Endpoint): void {
    if (!this.running) return;
    try {
      const outcome = parseMessage(bytes);
      if (!outcome.ok) {
        this.rejectUnparsable(outcome, source);
        return;
      }
      const msg = outcome.message;
      if (msg.kind === 'response') this.receiveResponse(msg, source);
      else this.receiveRequest(msg, source);
    } catch (err) {
      this.dropped++;
      this.log.error({ err, address: source.address, port: source.port, transport: source.transport }, 'unexpected error handling a SIP message');
    }
  }

  private rejectUnparsable(outcome: Extract<ParseOutcome, { ok: false }>, source: Endpoint): void {
    const partial = outcome.partial;
    const via = partial?.headers.via[0];
    if (outcome.reply !== undefined && partial !== undefined && via !== undefined && partial.method !== 'ACK') {
      stampVia(via, source);
      // A banned or flooding source gets no answer to garbage either.
      if (this.runFilter(partial, source) === 'drop') {
        this.dropped++;
        return;
      }
      const response = makeResponse(partial, outcome.reply.status, outcome.reply.reason);
      this.ctx?.sendQuietly(serialize(response), responseDestination(via, source));
      this.garbageLog.warn({ detail: outcome.detail, status: outcome.reply.status, address: source.address, port: source.port, transport: source.transport }, 'answered an invalid SIP request statelessly');
      return;
    }
    this.dropped++;
    this.garbageLog.warn({ detail: outcome.detail, address: source.address, port: source.port, transport: source.transport }, 'dropped an invalid SIP message');
  }

  private receiveResponse(res: SipResponse, source: Endpoint): void {
    const key = clientKeyOfResponse(res);
    const txn = key === undefined ? undefined : this.clients.get(key);
    if (txn === undefined) {
      this.dropped++;
      this.log.debug({ status: res.status, address: source.address, port: source.port }, 'dropped a response matching no client transaction');
      return;
    }
    txn.receiveResponse(res);
  }

  private receiveRequest(req: SipRequest, source: Endpoint): void {
    const server = this.server;
    const ctx = this.ctx;
    const via = req.headers.via[0];
    if (server === undefined || ctx === undefined || via === undefined) return;
    stampVia(via, source);

    const verdict = this.runFilter(req, source);
    if (verdict === 'drop') {
      this.dropped++;
      return;
    }
    if (verdict !== undefined) {
      if (req.method !== 'ACK') this.respondStateless(req, source, verdict.status, verdict.reason, { headers: verdict.headers ?? {} });
      return;
    }

    const key = serverKey(req);
    if (key === undefined) return;
    if (req.method === 'ACK') {
      this.receiveAck(req, source, key);
      return;
    }
    if (server.absorbRetransmission(key, req, source)) return;

    const destination = responseDestination(via, source);
    const deps = { ctx, table: server, pending2xx: this.pending2xx };
    if (req.method === 'CANCEL') {
      const txn = server.createNonInvite(key, req, source, destination);
      this.receiveCancel(new ServerRequest(req, source, txn, deps), req);
      return;
    }
    let incoming: ServerRequest;
    if (req.method === 'INVITE') {
      const txn = server.createInvite(key, req, source, destination);
      incoming = new ServerRequest(req, source, txn, deps);
      this.inviteRequests.set(txn, incoming);
      this.openInvites.add(incoming);
      void incoming.waitForAck().then(() => this.openInvites.delete(incoming));
    } else {
      incoming = new ServerRequest(req, source, server.createNonInvite(key, req, source, destination), deps);
    }
    const failure = checkRequest(req, this.opts.checks);
    if (failure !== undefined) {
      incoming.respond(failure.status, failure.reason, failure.headers === undefined ? undefined : { headers: failure.headers });
      return;
    }
    this.deliver(incoming);
  }

  private runFilter(req: SipRequest, source: Endpoint): ReturnType<RequestFilter> {
    if (this.filter === undefined) return undefined;
    try {
      return this.filter(req, source);
    } catch (err) {
      this.log.error({ err }, 'request filter failed; request let through');
      return undefined;
    }
  }

  private receiveAck(ack: SipRequest, source: Endpoint, key: string): void {
    const invite = this.server?.findInvite(key);
    if (invite !== undefined && invite.receiveAck()) return;
    const ackKey = ackKeyOfRequest(ack);
    const waiting = this.pending2xx.get(ackKey);
    if (waiting !== undefined) {
      this.pending2xx.delete(ackKey);
      waiting.acknowledge(ack);
      return;
    }
    // An ACK nobody waits for (a retransmitted ACK for a 2xx, or one for a dialog the TU knows).
    if (this.ctx !== undefined && this.server !== undefined) {
      this.deliver(new ServerRequest(ack, source, undefined, { ctx: this.ctx, table: this.server, pending2xx: this.pending2xx }));
    }
  }

  private receiveCancel(cancel: ServerRequest, req: SipRequest): void {
    const inviteKey = serverKey(req, 'INVITE');
    const invite = inviteKey === undefined ? undefined : this.server?.findInvite(inviteKey);
    const owner = invite === undefined ? undefined : this.inviteRequests.get(invite);
    if (owner === undefined) {
      cancel.respond(481, 'Call/Transaction Does Not Exist');
      return;
    }
    cancel.respond(200, 'OK', { toTag: owner.toTag });
    if (!owner.awaitingFinal) return;
    owner.respond(487, 'Request Terminated');
    if (this.cancelHandler === undefined) return;
    try {
      this.cancelHandler(owner, req);
    } catch (err) {
      this.log.error({ err }, 'CANCEL handler failed');
    }
  }

  private deliver(incoming: ServerRequest): void {
    const handler = this.requestHandler;
    if (handler === undefined) {
      if (incoming.request.method !== 'ACK') incoming.respond(503, 'Service Unavailable');
      return;
    }
    const failed = (err: unknown): void => {
      this.log.error({ err, method: incoming.request.method, callId: incoming.request.headers['call-id'] }, 'request handler failed; answered 500');
      if (incoming.awaitingFinal) incoming.respond(500, 'Server Internal Error');
    };
    try {
      const result = handler(incoming);
      if (result !== undefined && typeof (result as Promise<void>).then === 'function') (result as Promise<void>).then(undefined, failed);
    } catch (err) {
      failed(err);
    }
  }

  /** TCP framing failed: answer from the header block when it parses far enough, then the connection closes. */
  private replyToFramingError(error: FramingError, source: Endpoint): Buffer | undefined {
    if (error.status === undefined || error.header === undefined) return undefined;
    const outcome = parseMessage(error.header);
    let req: SipRequest | undefined;
    if (outcome.ok) req = outcome.message.kind === 'request' ? outcome.message : undefined;
    else req = outcome.partial;
    const via = req?.headers.via[0];
    if (req === undefined || via === undefined || req.method === 'ACK') return undefined;
    stampVia(via, source);
    return serialize(makeResponse(req, error.status, error.reasonPhrase));
  }

  // --- outbound ------------------------------------------------------------

  /** Ensures the top Via carries a branch (adding our own Via when there is none); returns the branch. */
  private prepareVia(req: SipRequest, dest: Endpoint): string {
    const top = req.headers.via[0];
    if (top !== undefined) {
      const branch = top.params['branch'];
      if (typeof branch === 'string' && branch !== '') return branch;
      const fresh = newBranch();
      top.params['branch'] = fresh;
      return fresh;
    }
    const transport = this.transports.get(dest.transport);
    const local = transport?.localAddress;
    const host = this.sentByHost.get(dest.transport);
    if (local === undefined || host === undefined) throw new SipTransportError(`no ${dest.transport} transport running`, dest);
    const branch = newBranch();
    const params: Via['params'] = Object.create(null);
    params['branch'] = branch;
    params['rport'] = null;
    req.headers.via = [{ version: '2.0', protocol: dest.transport.toUpperCase(), host, port: local.port, params }];
    return branch;
  }

  private pickSentBy(bound: string): string {
    let host = this.opts.advertisedHost;
    if (host === undefined) {
      host = bound;
      if (isWildcard(bound)) {
        const family = bound === '::' ? 'IPv6' : 'IPv4';
        const candidates = Object.values(networkInterfaces()).flat();
        const found = candidates.find((i) => i !== undefined && !i.internal && i.family === family);
        host = found?.address ?? (family === 'IPv6' ? '::1' : '127.0.0.1');
        this.log.info({ bound, sentBy: host }, 'bound to a wildcard address; using this sent-by for requests we send (set advertisedHost to choose)');
      }
    }
    return isIP(host) === 6 ? `[${host}]` : host;
  }
}
