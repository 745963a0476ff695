import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from './config/types.ts';
import { EventBus } from './events/bus.ts';
import { Registrar, type Credentials } from './registrar/registrar.ts';
import { SecurityGuard } from './security/guard.ts';
import { computeHa1 } from './sip/digest.ts';
import { SipStack, type IncomingRequest } from './sip/stack.ts';
import { formatHostPort } from './sip/transport.ts';
import { Database } from './store/db.ts';
import { syncExtensions } from './store/extensions.ts';
import { GroupCommitter } from './store/group-commit.ts';
import { migrate } from './store/migrations.ts';
import { SiteSync } from './sync/site-sync.ts';

export const storeFileName = 'branchline.sqlite';
export const pidFileName = 'agent.pid';

const allowedMethods = 'REGISTER, OPTIONS';

function formatListen(a: { address: string; port: number } | undefined): string | undefined {
  return a ? formatHostPort(a.address, a.port) : undefined;
}

/**
 * The composition root: builds every subsystem from the typed config and starts
 * them in dependency order (store → security → registrar → SIP). Constructors in the
 * subsystems only assign; all work happens in start().
 */
export class Agent {
  readonly config: AgentConfig;
  readonly logger: Logger;
  readonly bus: EventBus;
  #db: Database | undefined;
  #committer: GroupCommitter | undefined;
  #guard: SecurityGuard | undefined;
  #registrar: Registrar | undefined;
  #stack: SipStack | undefined;
  #siteSync: SiteSync | undefined;

  constructor(config: AgentConfig, logger: Logger) {
    this.config = config;
    this.logger = logger;
    this.bus = new EventBus(logger);
  }

  get registrar(): Registrar | undefined {
    return this.#registrar;
  }

  get stack(): SipStack | undefined {
    return this.#stack;
  }

  async start(): Promise<void> {
    const started = performance.now();
    const { config, logger } = this;
    mkdirSync(config.state_dir, { recursive: true });

    const db = await Database.open(path.join(config.state_dir, storeFileName));
    this.#db = db;
    const migration = await migrate(db);
    if (migration.from !== migration.to) logger.info({ event: 'store.migrated', ...migration }, 'store schema migrated');

    const realm = config.sip.domain;
    const credentials = new Map<string, Credentials>();
    const stored = config.extensions.map((e) => {
      const ha1 = { MD5: computeHa1('MD5', e.number, realm, e.password), 'SHA-256': computeHa1('SHA-256', e.number, realm, e.password) };
      credentials.set(e.number, e.auth_algorithms ? { ha1, algorithms: e.auth_algorithms } : { ha1 });
      return { number: e.number, name: e.name ?? null, realm, ha1_md5: ha1.MD5, ha1_sha256: ha1['SHA-256'] };
    });
    const synced = await syncExtensions(db, stored);
    logger.info({ event: 'extensions.synced', total: stored.length, ...synced }, 'extensions loaded');

    // Writes arriving within 2 ms share one commit: fewer fsyncs under load, at a
    // cost of at most 2 ms before a 200 OK (docs/benchmarks.md).
    this.#committer = new GroupCommitter(db, { coalesceMs: 2 });
    this.#guard = new SecurityGuard(config.sip.security, logger.child({ subsystem: 'security' }), this.bus);
    this.#guard.start();
    this.#registrar = new Registrar({
      config: config.sip,
      logger: logger.child({ subsystem: 'registrar' }),
      bus: this.bus,
      db,
      committer: this.#committer,
      guard: this.#guard,
      credentials,
    });
    await this.#registrar.start();

    // Site sync (MQTT, outbox, survivable mode): optional at every moment, so its
    // failure is logged and SIP starts regardless. Started before the SIP stack so its
    // bus listeners hear the first registration.
    const registrar = this.#registrar;
    this.#siteSync = new SiteSync({
      config,
      logger: logger.child({ subsystem: 'sync' }),
      bus: this.bus,
      db,
      committer: this.#committer,
      sources: { registrations: () => registrar.table.size },
    });
    try {
      await this.#siteSync.start();
    } catch (err) {
      logger.error({ event: 'sync.failed', err, code: (err as { code?: string }).code }, `site sync failed to start: ${(err as Error).message}`);
    }

    const guard = this.#guard;
    this.#stack = new SipStack({
      udp: config.sip.udp,
      tcp: config.sip.tcp,
      maxMessageBytes: config.sip.max_message_bytes,
      maxTcpConnections: config.sip.tcp_max_connections,
      tcpIdleTimeoutMs: config.sip.tcp_idle_timeout * 1000,
      timers: config.sip.timers,
      checks: {
        supportedExtensions: new Set(['path', 'outbound']),
        acceptedContentTypes: new Set(['application/sdp']),
        // The agent is the endpoint of every request it takes (registrar, B2BUA), never
        // a proxy, so Max-Forwards: 0 is processed normally (RFC 4475 3.3.11).
        isLocal: () => true,
      },
      logger: logger.child({ subsystem: 'sip' }),
    });
    this.#stack.setRequestFilter((req, source) => guard.filter(req, source));
    this.#stack.onRequest((req) => this.#route(req));
    await this.#stack.start();

    writeFileSync(path.join(config.state_dir, pidFileName), `${process.pid}\n`);
    logger.info(
      {
        event: 'agent.ready',
        site: config.site.id,
        udp: formatListen(this.#stack.addresses.udp),
        tcp: formatListen(this.#stack.addresses.tcp),
        extensions: stored.length,
        bindings: this.#registrar.table.size,
        startupMs: Math.round(performance.now() - started),
      },
      'agent ready',
    );
  }

  #route(incoming: IncomingRequest): void {
    const method = incoming.request.method;
    if (method === 'REGISTER') {
      this.#registrar?.handle(incoming).catch((err: unknown) => {
        this.logger.error({ err, callId: incoming.request.headers['call-id'] }, 'registrar failed on a request');
        incoming.respond(500, 'Server Internal Error', { toTag: 'err' });
      });
      return;
    }
    if (method === 'OPTIONS') {
      incoming.respond(200, 'OK', {
        toTag: 'opt',
        headers: { Allow: allowedMethods, Accept: 'application/sdp', Supported: 'path, outbound' },
      });
      return;
    }
    // Calls arrive with the call core; until then say plainly what we serve.
    incoming.respond(501, 'Not Implemented', { toTag: 'na', headers: { Allow: allowedMethods } });
  }

  async stop(): Promise<void> {
    await this.#stack?.stop();
    await this.#siteSync?.stop().catch((err: unknown) => this.logger.error({ event: 'sync.stop_failed', err }, 'site sync failed to stop cleanly'));
    this.#registrar?.stop();
    this.#guard?.stop();
    await this.#committer?.idle();
    if (this.#committer) this.logger.info({ event: 'store.stats', ...this.#committer.stats }, 'store write statistics');
    await this.#db?.close();
    rmSync(path.join(this.config.state_dir, pidFileName), { force: true });
    this.logger.info({ event: 'agent.stopped' }, 'agent stopped');
  }
}
