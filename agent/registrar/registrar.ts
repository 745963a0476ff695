import type { Logger } from 'pino';
import type { AgentConfig, AuthAlgorithm } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { SecurityGuard } from '../security/guard.ts';
import { buildChallenge, verifyAuthorization, type DigestAlgorithm } from '../sip/digest.ts';
import { NonceService } from '../sip/nonces.ts';
import type { IncomingRequest } from '../sip/stack.ts';
import { formatHostPort } from '../sip/transport.ts';
import { parseUri, unescapeUriPart } from '../sip/uri.ts';
import { deleteBinding, loadBindings, upsertBinding, type Binding } from '../store/bindings.ts';
import type { Database } from '../store/db.ts';
import type { GroupCommitter, Statement } from '../store/group-commit.ts';
import { BindingTable } from './binding-table.ts';
import { LoadShedder } from './load-shedder.ts';
import { planRegistration, type RegistrationPlan } from './plan.ts';

export interface Credentials {
  ha1: Record<AuthAlgorithm, string>;
  /** Algorithms this extension is challenged with, when not the site's default. */
  algorithms?: readonly DigestAlgorithm[];
}

export interface RegistrarDeps {
  config: AgentConfig['sip'];
  logger: Logger;
  bus: EventBus;
  db: Database;
  committer: GroupCommitter;
  guard: SecurityGuard;
  /** HA1 digests by extension number; never passwords. */
  credentials: ReadonlyMap<string, Credentials>;
}

function sourceOf(req: IncomingRequest): string {
  const s = req.source;
  return `${s.transport}:${formatHostPort(s.address, s.port)}`;
}

/**
 * RFC 3261 §10.3 registrar with digest authentication (MD5 and SHA-256, qop=auth)
 * and durable bindings: a 200 OK goes out only after the binding change is committed
 * to SQLite. Challenges are sent without keeping any state (RFC 3261 §8.2.7).
 */
export class Registrar {
  readonly #deps: RegistrarDeps;
  readonly #nonces: NonceService;
  readonly #algorithms: DigestAlgorithm[];
  readonly table = new BindingTable();
  readonly #shedder: LoadShedder;
  /** Registrations whose binding change waits for its commit (a load-shedding signal). */
  #pendingWrites = 0;
  #expiryTimer: NodeJS.Timeout | undefined;

  constructor(deps: RegistrarDeps) {
    this.#deps = deps;
    this.#nonces = new NonceService({ lifetimeMs: deps.config.auth.nonce_lifetime * 1000 });
    this.#algorithms = [...deps.config.auth.algorithms];
    const overload = deps.config.registrar.overload;
    this.#shedder = new LoadShedder(overload, () => this.#pendingWrites, (r) => {
      if (r.phase === 'started') {
        deps.logger.warn(
          { event: 'registrar.overload_started', shedding: r.level, utilization: r.utilization, lagMs: r.lagMs, pendingWrites: r.pendingWrites, limits: overload },
          'registrar overloaded: answering new REGISTERs 503 with Retry-After until it catches up',
        );
      } else {
        deps.logger.warn(
          { event: 'registrar.overload_ended', worst: r.level, shed: r.shed, durationMs: r.durationMs },
          `registrar caught up after ${r.durationMs} ms; ${r.shed} REGISTERs were answered 503`,
        );
      }
    });
  }

  /** REGISTERs answered 503 (load shedding) since start. */
  get shedCount(): number {
    return this.#shedder.shedTotal;
  }

  /** Restores bindings from the store (dropping those that expired while we were down). */
  async start(): Promise<void> {
    const { live, expired } = await loadBindings(this.#deps.db, Date.now());
    const grouped = new Map<string, Binding[]>();
    for (const b of live) {
      const list = grouped.get(b.extension) ?? [];
      list.push(b);
      grouped.set(b.extension, list);
    }
    for (const [ext, list] of grouped) this.table.set(ext, list);
    if (expired.length > 0) await this.#deps.committer.submit(expired.map((b) => deleteBinding(b.extension, b.contact)));
    this.#deps.logger.info({ event: 'registrar.restored', bindings: live.length, expiredWhileDown: expired.length }, 'registrar bindings restored');
    this.#expiryTimer = setInterval(() => this.#expire(), 1000);
    this.#expiryTimer.unref();
  }

  stop(): void {
    this.#shedder.stop();
    if (this.#expiryTimer) clearInterval(this.#expiryTimer);
    this.#expiryTimer = undefined;
  }

  async handle(incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const sip = this.#deps.config;
    const source = sourceOf(incoming);
    // A child logger costs a few µs to build; most REGISTERs log nothing at info, so
    // build it only when a line is written.
    let child: Logger | undefined;
    const log = (): Logger => (child ??= this.#deps.logger.child({ callId: req.headers['call-id'], source }));

    const aor = parseUri(req.headers.to.uri);
    if (!aor || (aor.scheme !== 'sip' && aor.scheme !== 'sips') || !aor.user) {
      // RFC 4475 3.3.4: an address-of-record that is not a SIP URI is a bad request.
      incoming.respond(400, 'Bad Request (To is not a SIP address-of-record)', { toTag: 'reg' });
      return;
    }
    const extension = unescapeUriPart(aor.user);
    const authorization = req.headers.authorization ?? [];
    // Measured from the first REGISTER on: the rest of the agent's start-up keeps the
    // event loop busy, which is not overload.
    if (!this.#shedder.started) this.#shedder.start();
    // Before any digest work: shedding must cost less than serving.
    if (this.#shedder.shouldShed(authorization.length > 0)) {
      incoming.respondStateless(503, 'Service Unavailable', { toTag: 'reg', headers: { 'Retry-After': String(this.#shedder.retryAfter()) } });
      return;
    }

    // Unknown extensions get the site's default, so a challenge says nothing about
    // which extensions exist.
    const algorithms = this.#deps.credentials.get(extension)?.algorithms ?? this.#algorithms;
    if (authorization.length === 0) return this.#challenge(incoming, false, algorithms);
    const verdict = verifyAuthorization({
      authorization,
      method: req.method,
      requestUri: req.uri,
      realm: sip.domain,
      algorithms,
      lookupHa1: (user, alg) => this.#deps.credentials.get(user)?.ha1[alg],
      nonces: this.#nonces,
    });
    if (!verdict.ok) {
      switch (verdict.code) {
        case 'stale-nonce':
          return this.#challenge(incoming, true, algorithms);
        case 'unknown-user':
        case 'bad-response':
        case 'uri-mismatch':
          log().info({ event: 'registration.auth_failed', extension, username: verdict.username, reason: verdict.code }, 'registration refused: wrong credentials');
          this.#deps.guard.authFailed(incoming.source.address, verdict.username ?? extension);
          incoming.respond(403, 'Forbidden', { toTag: 'reg' });
          return;
        default:
          // Unknown scheme, a nonce we never issued, a replayed nonce-count or an
          // unparseable header: ask again rather than refuse outright.
          log().debug({ reason: verdict.code }, 'authorization not usable; challenging again');
          return this.#challenge(incoming, false, algorithms);
      }
    }
    if (verdict.username !== extension) {
      log().info({ event: 'registration.auth_failed', extension, username: verdict.username, reason: 'aor-mismatch' }, 'registration refused: credentials are for another extension');
      incoming.respond(403, 'Forbidden', { toTag: 'reg' });
      return;
    }
    this.#deps.guard.authSucceeded(incoming.source.address);

    const supported = String(req.headers['supported'] ?? '').toLowerCase();
    const path = (req.headers.path ?? []).map((p) => `<${p.uri}>`);
    if (path.length > 0 && !/(^|[\s,])path($|[\s,])/.test(supported)) {
      incoming.respond(420, 'Bad Extension', { toTag: 'reg', headers: { Unsupported: 'path' } });
      return;
    }

    const plan = planRegistration({
      now: Date.now(),
      extension,
      current: this.table.of(extension),
      contacts: req.headers.contact,
      expiresHeader: req.headers['expires'],
      callId: req.headers['call-id'],
      cseq: req.headers.cseq.seq,
      source,
      path,
      userAgent: typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'] : null,
      limits: sip.registrar,
    });
    if (plan.kind === 'reject') {
      log().info({ event: 'registration.rejected', extension, status: plan.status, reason: plan.reason }, 'registration rejected');
      incoming.respond(plan.status, plan.reason, { toTag: 'reg', headers: plan.headers });
      return;
    }
    await this.#apply(incoming, extension, plan, log);
  }

  #challenge(incoming: IncomingRequest, stale: boolean, algorithms: readonly DigestAlgorithm[]): void {
    const values = buildChallenge({ realm: this.#deps.config.domain, algorithms, stale, nonces: this.#nonces });
    incoming.respondStateless(401, 'Unauthorized', { toTag: 'reg', headers: { 'WWW-Authenticate': values } });
  }

  async #apply(incoming: IncomingRequest, extension: string, plan: RegistrationPlan, log: () => Logger): Promise<void> {
    const before = this.table.of(extension);
    const statements: Statement[] = [
      ...plan.removed.map((b) => deleteBinding(b.extension, b.contact)),
      ...plan.upserted.map(upsertBinding),
    ];
    // The table changes now so that a REGISTER arriving before the commit sees it;
    // the phone hears 200 only once the change is on disk.
    this.table.set(extension, plan.next);
    this.#pendingWrites++;
    try {
      await this.#deps.committer.submit(statements);
    } catch (err) {
      log().error({ err, event: 'registration.store_failed', extension }, 'could not store the registration; answering 500');
      incoming.respond(500, 'Server Internal Error', { toTag: 'reg', headers: { 'Retry-After': '30' } });
      return;
    } finally {
      this.#pendingWrites--;
    }
    const now = Date.now();
    for (const b of plan.removed) {
      const reason = plan.upserted.some((u) => u.contact === b.contact) ? undefined : plan.replaced.has(b.contact) ? 'replaced' : 'unregistered';
      if (!reason) continue;
      log().info({ event: 'registration.removed', extension, contact: b.contact, reason }, 'binding removed');
      this.#deps.bus.emit('registration.removed', { extension, contact: b.contact, reason });
    }
    for (const b of plan.upserted) {
      const refreshed = before.some((o) => o.contact === b.contact);
      const payload = { extension, contact: b.contact, expiresAt: b.expiresAt, source: b.source, userAgent: b.userAgent ?? undefined };
      if (refreshed) {
        log().debug({ event: 'registration.refreshed', ...payload }, 'binding refreshed');
        this.#deps.bus.emit('registration.refreshed', payload);
      } else {
        log().info({ event: 'registration.added', ...payload }, 'phone registered');
        this.#deps.bus.emit('registration.added', payload);
      }
    }
    const contacts = plan.next.map((b) => contactValue(b, now));
    const headers: Record<string, string | string[]> = { Date: new Date(now).toUTCString() };
    if (contacts.length > 0) headers['Contact'] = contacts;
    if (plan.upserted.some((b) => b.path.length > 0)) {
      headers['Path'] = plan.upserted.flatMap((b) => b.path);
      headers['Supported'] = 'path';
    }
    incoming.respond(200, 'OK', { toTag: 'reg', headers });
  }

  async #expire(): Promise<void> {
    const expired = this.table.takeExpired(Date.now());
    if (expired.length === 0) return;
    try {
      await this.#deps.committer.submit(expired.map((b) => deleteBinding(b.extension, b.contact)));
    } catch (err) {
      this.#deps.logger.error({ err, event: 'registrar.expiry_store_failed' }, 'could not delete expired bindings; they will be dropped at next start');
    }
    for (const b of expired) {
      this.#deps.logger.info({ event: 'registration.removed', extension: b.extension, contact: b.contact, reason: 'expired' }, 'binding expired');
      this.#deps.bus.emit('registration.removed', { extension: b.extension, contact: b.contact, reason: 'expired' });
    }
  }
}

function contactValue(b: Binding, now: number): string {
  let value = `<${b.contact}>;expires=${Math.max(0, Math.round((b.expiresAt - now) / 1000))}`;
  if (b.q !== null) value += `;q=${b.q}`;
  if (b.instance) value += `;+sip.instance=${b.instance}`;
  return value;
}

