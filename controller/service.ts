// The reference controller: ingests every site's `up` streams into its store with
// deduplication and acknowledges only what it committed, keeps the fleet's state
// from the retained site states and reported configs, publishes desired
// configuration, relays commands to sites and answers branchctl's requests.
import type { Logger } from 'pino';
import { RemoteError, SyncError, errorBody } from '../agent/sync/errors.ts';
import { brokerUrlForLogs, MqttLink, type TlsFiles } from '../agent/sync/link.ts';
import {
  encode,
  filters,
  HeaderFactory,
  parseControllerState,
  parseReportedConfig,
  parseRequest,
  parseSiteState,
  parseTopic,
  parseUp,
  topics,
  type Ack,
  type ControllerRequests,
  type ControllerState,
  type DesiredConfig,
  type Request,
  type Response,
  type UpMessage,
} from '../agent/sync/protocol.ts';
import { Requester } from '../agent/sync/requester.ts';
import { claimTopics } from '../provisioning/claim/protocol.ts';
import { ClaimService, type ClaimServiceOptions } from './claims.ts';
import { openFleetStore, type FleetStore } from './fleet-store.ts';

export interface ControllerOptions {
  broker: string;
  stateDir: string;
  /** Names this instance; default `controller-<random>`. */
  id?: string;
  /** Consume through `$share/<group>/…` so several instances split the load (Mosquitto; not Aedes). */
  shareGroup?: string;
  /** `postgres://…`: keep the fleet in PostgreSQL instead of SQLite in the state directory. */
  databaseUrl?: string;
  protocolVersion?: 4 | 5;
  tls?: TlsFiles;
  username?: string;
  password?: string;
  /** Messages per ingest transaction at most. */
  batchMax?: number;
  /** Keep Mosquitto's password file and ACL here (docs/provisioning.md); needs `password`. */
  brokerFiles?: { dir: string; reloadCommand?: string };
  /** The broker URL handed to newly claimed sites (default: the one they claimed through). */
  siteBrokerUrl?: string;
  logger: Logger;
}

export interface ControllerStats {
  received: number;
  inserted: number;
  duplicates: number;
  rejected: number;
  batches: number;
}

export class Controller {
  readonly #o: ControllerOptions;
  readonly id: string;
  readonly boot = crypto.randomUUID();
  readonly #headers: HeaderFactory;
  #store: FleetStore | undefined;
  #link: MqttLink | undefined;
  #requester: Requester | undefined;
  #claims: ClaimService | undefined;
  #pending: UpMessage[] = [];
  #flushing: Promise<void> | undefined;
  #flushScheduled = false;
  readonly #stats: ControllerStats = { received: 0, inserted: 0, duplicates: 0, rejected: 0, batches: 0 };
  #since = Date.now();

  constructor(options: ControllerOptions) {
    this.#o = options;
    this.id = options.id ?? `controller-${crypto.randomUUID().slice(0, 8)}`;
    this.#headers = new HeaderFactory(this.boot);
  }

  get stats(): ControllerStats {
    return { ...this.#stats };
  }

  get claims(): ClaimService {
    if (!this.#claims) throw new Error('controller not started');
    return this.#claims;
  }

  get store(): FleetStore {
    if (!this.#store) throw new Error('controller not started');
    return this.#store;
  }

  #share(filter: string): string {
    return this.#o.shareGroup ? `$share/${this.#o.shareGroup}/${filter}` : filter;
  }

  #state(state: 'online' | 'offline'): ControllerState {
    return { ...this.#headers.next('state'), controller: this.id, state, since: state === 'online' ? this.#since : Date.now() };
  }

  /** Opens the store and starts connecting; resolves once the first connection is up. */
  async start(timeoutMs = 30_000): Promise<void> {
    const log = this.#o.logger;
    this.#store = await openFleetStore({ stateDir: this.#o.stateDir, ...(this.#o.databaseUrl !== undefined ? { databaseUrl: this.#o.databaseUrl } : {}) });
    this.#claims = await this.#startClaims();
    const link = new MqttLink({
      url: this.#o.broker,
      clientId: this.id,
      protocolVersion: this.#o.protocolVersion ?? 5,
      keepalive: 10,
      reconnectPeriodMs: 1000,
      connectTimeoutMs: 10_000,
      ...(this.#o.tls ? { tls: this.#o.tls } : {}),
      ...(this.#o.username !== undefined ? { username: this.#o.username } : {}),
      ...(this.#o.password !== undefined ? { password: this.#o.password } : {}),
      will: () => ({ topic: topics.controllerState, payload: encode(this.#state('offline')), retain: true }),
      logger: log,
    });
    this.#link = link;
    this.#requester = new Requester(link, this.#headers, topics.responses(this.id));
    link.onMessage((topic, payload, packet) => this.#onMessage(topic, payload, packet.properties));
    await link.subscribe([
      this.#share(filters.allUp),
      filters.allSiteStates,
      filters.allReportedConfigs,
      this.#share(topics.controllerRequest),
      topics.responses(this.id),
      claimTopics.allRequests,
      // Other instances' states: see #onControllerState.
      topics.controllerState,
    ]);
    const up = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SyncError('ETIMEOUT', `cannot reach the broker ${brokerUrlForLogs(this.#o.broker)} within ${timeoutMs} ms`)), timeoutMs);
      link.onUp(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    link.onUp(() => {
      this.#since = Date.now();
      link.publish(topics.controllerState, encode(this.#state('online')), { retain: true }).catch((err: unknown) => log.warn({ err }, 'could not publish the controller state'));
    });
    link.start();
    await up;
    log.info({ event: 'controller.ready', id: this.id, broker: brokerUrlForLogs(this.#o.broker), share: this.#o.shareGroup ?? null, store: this.store.kind }, 'controller ready');
  }

  async stop(): Promise<void> {
    const link = this.#link;
    this.#requester?.cancelAll('controller stopping');
    await this.#drainPending();
    if (link?.connected) {
      await link.publish(topics.controllerState, encode(this.#state('offline')), { retain: true }).catch(() => undefined);
    }
    await link?.stop({ graceful: true });
    await this.#claims?.stop();
    await this.#store?.close();
    this.#o.logger.info({ event: 'controller.stopped', ...this.#stats }, 'controller stopped');
  }

  #onMessage(topic: string, payload: Buffer, props: { responseTopic?: string; correlationData?: Buffer } | undefined): void {
    const log = this.#o.logger;
    const parsed = parseTopic(topic);
    try {
      switch (parsed?.kind) {
        case 'up': {
          const msg = parseUp(payload);
          // A site publishes only under its own name (the broker's ACL enforces it in
          // production); a message claiming another site is refused, not stored.
          if (msg.site !== parsed.site || msg.stream !== parsed.stream) throw new Error(`envelope ${msg.site}/${msg.stream} does not match topic`);
          this.#stats.received++;
          this.#pending.push(msg);
          this.#scheduleFlush();
          return;
        }
        case 'siteState': {
          if (payload.length === 0) return;
          const s = parseSiteState(payload);
          if (s.site !== parsed.site) throw new Error('site state names another site');
          log.info({ event: 'controller.site_state', site: s.site, state: s.state, boot: s.boot, configVersion: s.config_version }, `site ${s.site} ${s.state}`);
          void this.store.setSiteState({ site: s.site, state: s.state, agent: s.agent, boot: s.boot, config_version: s.config_version, since: s.since }).catch((err: unknown) => log.error({ err }, 'could not store a site state'));
          return;
        }
        case 'reportedConfig': {
          if (payload.length === 0) return;
          const r = parseReportedConfig(payload);
          if (r.site !== parsed.site) throw new Error('reported config names another site');
          log.info({ event: 'controller.config_reported', site: r.site, version: r.version, status: r.status, desired: r.desired_version }, 'config reported');
          void this.store.setReported(r.site, r.version, r).catch((err: unknown) => log.error({ err }, 'could not store a reported config'));
          return;
        }
        case 'controllerState':
          if (payload.length > 0) this.#onControllerState(parseControllerState(payload));
          return;
        case 'controllerRequest':
          void this.#answer(parseRequest(payload, props));
          return;
        case 'responses':
          this.#requester?.onMessage(topic, payload);
          return;
        default:
          this.#claims?.onMessage(topic, payload);
          return;
      }
    } catch (err) {
      this.#stats.rejected++;
      log.warn({ event: 'controller.bad_message', topic, err: (err as Error).message }, 'ignored a malformed message');
    }
  }

  /**
   * Instances share the one retained `controller/state` topic. When another instance
   * goes offline (its Last Will or a clean stop), the retained value would say the
   * controller is offline while this one still runs: say online again, so sites keep
   * draining to the instances that are left.
   */
  #onControllerState(s: ControllerState): void {
    if (s.controller === this.id || s.state !== 'offline') return;
    const link = this.#link;
    if (!link?.connected) return;
    this.#o.logger.info({ event: 'controller.peer_offline', instance: s.controller }, `controller instance ${s.controller} offline; this one (${this.id}) carries on`);
    link.publish(topics.controllerState, encode(this.#state('online')), { retain: true }).catch(() => undefined);
  }

  // ---- ingest: batch, commit, then ack --------------------------------------------

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#flushing) return;
    this.#flushScheduled = true;
    // One turn of the event loop gathers whatever the socket delivered in this read.
    setImmediate(() => {
      this.#flushScheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#flushing || this.#pending.length === 0) return;
    const max = this.#o.batchMax ?? 2000;
    const batch = this.#pending.splice(0, max);
    this.#flushing = this.#commitAndAck(batch).finally(() => {
      this.#flushing = undefined;
      if (this.#pending.length > 0) this.#scheduleFlush();
    });
    await this.#flushing;
  }

  async #commitAndAck(batch: UpMessage[]): Promise<void> {
    const log = this.#o.logger;
    try {
      const result = await this.store.ingest(batch);
      this.#stats.batches++;
      this.#stats.inserted += result.inserted;
      this.#stats.duplicates += result.duplicates;
      if (result.duplicates > 0) log.debug({ event: 'controller.duplicates', count: result.duplicates }, 'duplicates ignored');
    } catch (err) {
      // Nothing is acked: the sites send again and the next batch may succeed.
      log.error({ event: 'controller.ingest_failed', count: batch.length, err }, 'ingest failed; not acknowledged');
      return;
    }
    const bySite = new Map<string, string[]>();
    for (const m of batch) {
      let ids = bySite.get(m.site);
      if (!ids) bySite.set(m.site, (ids = []));
      ids.push(m.id);
    }
    const link = this.#link;
    if (!link) return;
    for (const [site, ids] of bySite) {
      const ack: Ack = { ...this.#headers.next('ack'), site, ids };
      link.publish(topics.ack(site), encode(ack)).catch(() => {
        // Lost ack: the site resends after its timeout and gets a fresh one.
      });
    }
  }

  async #drainPending(): Promise<void> {
    while (this.#flushing || this.#pending.length > 0) {
      if (this.#flushing) await this.#flushing;
      else await this.#flush();
    }
  }

  // ---- requests -----------------------------------------------------------------

  async #answer(req: Request): Promise<void> {
    const base = { ...this.#headers.next('res'), request_id: req.id, correlation: req.correlation };
    let res: Response;
    try {
      res = { ...base, status: 'ok', data: await this.#handle(req) };
    } catch (err) {
      res = { ...base, status: 'error', error: errorBody(err) };
    }
    this.#o.logger.info({ event: 'controller.request', name: req.name, status: res.status, code: res.error?.code }, 'request answered');
    await this.#link
      ?.publish(req.response_topic, encode(res), { properties: { correlationData: Buffer.from(req.correlation) } })
      .catch((err: unknown) => this.#o.logger.warn({ err }, 'could not publish a response'));
  }

  async #handle(req: Request): Promise<unknown> {
    const store = this.store;
    const args = (req.args ?? {}) as Record<string, unknown>;
    if (ClaimService.isRequest(req.name)) {
      if (!this.#claims) throw new SyncError('ENOTCONNECTED', 'controller not started');
      return this.#claims.handle(req.name, args);
    }
    const site = (): string => {
      if (typeof args['site'] !== 'string' || args['site'] === '') throw new SyncError('EBADARGS', `${req.name}: "site" is required`);
      return args['site'];
    };
    switch (req.name as keyof ControllerRequests) {
      case 'sites.list':
        return store.sites();
      case 'records.list': {
        const limit = wholeNumber(args, 'limit', 'records.list', 0);
        const afterSeq = wholeNumber(args, 'after_seq', 'records.list', 0);
        return store.messages(site(), 'records', { ...(limit !== undefined ? { limit } : {}), ...(afterSeq !== undefined ? { afterSeq } : {}) });
      }
      case 'config.push':
        return this.pushConfig(site(), args['config'], typeof args['base_version'] === 'number' ? args['base_version'] : undefined);
      case 'site.command': {
        const name = args['name'];
        if (typeof name !== 'string') throw new SyncError('EBADARGS', 'site.command: "name" is required');
        const timeout = typeof args['timeout_ms'] === 'number' ? args['timeout_ms'] : 10_000;
        return this.commandSite(site(), name, args['args'] ?? {}, timeout);
      }
      default:
        throw new SyncError('EUNKNOWNCOMMAND', `unknown request ${JSON.stringify(req.name)}`);
    }
  }

  async #startClaims(): Promise<ClaimService> {
    const o = this.#o;
    if (o.brokerFiles && o.password === undefined) throw new SyncError('EBADARGS', 'broker files need the controller\'s own --username and --password (they go into the password file)');
    const options: ClaimServiceOptions = {
      stateDir: o.stateDir,
      headers: this.#headers,
      publish: async (topic, payload) => {
        await this.#link?.publish(topic, payload);
      },
      desired: (site) => this.store.desired(site),
      logger: o.logger,
      ...(o.siteBrokerUrl ? { siteBrokerUrl: o.siteBrokerUrl } : {}),
      ...(o.brokerFiles && o.password !== undefined
        ? { brokerFiles: { dir: o.brokerFiles.dir, controllerUser: o.username ?? 'controller', controllerPassword: o.password, ...(o.brokerFiles.reloadCommand ? { reloadCommand: o.brokerFiles.reloadCommand } : {}) } }
        : {}),
    };
    const claims = new ClaimService(options);
    await claims.start();
    return claims;
  }

  /** Stores the next desired version for a site and publishes it, retained. */
  async pushConfig(site: string, config: unknown, baseVersion?: number): Promise<{ site: string; version: number }> {
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new SyncError('EBADARGS', 'config.push: "config" must be an object');
    const result = await this.store.pushDesired(site, config as Record<string, unknown>, baseVersion);
    if ('conflict' in result) {
      throw new SyncError('EVERSION', `site ${site} is at desired version ${result.conflict}, not ${String(baseVersion)}; fetch it and push again`);
    }
    const desired: DesiredConfig = { ...this.#headers.next('config'), site, version: result.version, config: config as Record<string, unknown> };
    await this.#link?.publish(topics.desiredConfig(site), encode(desired), { retain: true });
    this.#o.logger.info({ event: 'controller.config_pushed', site, version: result.version }, 'desired config published');
    return { site, version: result.version };
  }

  /** Sends a command to a site and returns its data; a site error is rethrown with its code. */
  async commandSite(site: string, name: string, args: unknown, timeoutMs: number): Promise<unknown> {
    const requester = this.#requester;
    if (!requester) throw new SyncError('ENOTCONNECTED', 'controller not started');
    const res = await requester.request(topics.siteCommand(site), name, args, timeoutMs);
    if (res.status === 'error') {
      const e = res.error ?? { code: 'EINTERNAL', message: 'site reported an error' };
      throw new RemoteError(e.code, `site ${site}: ${e.message}`);
    }
    return res.data;
  }
}

/** An optional whole-number argument of at least `min` (SQLite takes a negative LIMIT as none at all). */
function wholeNumber(args: Record<string, unknown>, key: string, request: string, min: number): number | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new SyncError('EBADARGS', `${request}: "${key}" must be a whole number of at least ${min}`);
  return v;
}
