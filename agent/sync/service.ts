// The sync subsystem of the agent: the MQTT link to the controller (or the embedded
// broker), the site's retained state and Last Will, the outbox drain, desired
// configuration and commands. Built by the composition root; a constructor only
// assigns, start() does the work and never waits for the broker.
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { parseListen } from '../config/load.ts';
import type { AgentConfig } from '../config/types.ts';
import type { AgentEvents, EventBus } from '../events/bus.ts';
import type { BacklogEntry } from '../events/backlog.ts';
import type { Database } from '../store/db.ts';
import type { GroupCommitter, Statement } from '../store/group-commit.ts';
import { CommandResponder, COMMAND_MEMORY_MS } from './commands.ts';
import { Drainer } from './drainer.ts';
import { FORWARDED_EVENTS } from './forwarded-events.ts';
import { EmbeddedBroker } from './embedded-broker.ts';
import { brokerUrlForLogs, MqttLink } from './link.ts';
import { outboxStatements, SqliteOutbox, type NewOutboxMessage, type Outbox, type OutboxDepth } from './outbox.ts';
import {
  encode,
  HeaderFactory,
  parseAck,
  parseControllerState,
  parseDesiredConfig,
  parseRequest,
  parseTopic,
  topics,
  type HealthMode,
  type SiteState,
  type SiteStateName,
  type StreamName,
} from './protocol.ts';
import { ConfigShadow } from './shadow.ts';
import { SyncStateStore } from './state-store.ts';

export interface SyncServiceOptions {
  config: Pick<AgentConfig, 'site' | 'mqtt' | 'sync'>;
  logger: Logger;
  bus: EventBus;
  db: Database;
  committer: GroupCommitter;
  /** Defaults to the version in package.json. */
  agentVersion?: string;
  /** Defaults to a fresh UUID: one per process run. */
  boot?: string;
  /**
   * Forwarded events emitted before sync started (agent/events/backlog.ts): taken,
   * and queued ahead of the live ones, once this service listens on the bus.
   */
  backlog?: () => BacklogEntry[];
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export class SyncService {
  readonly #o: SyncServiceOptions;
  readonly boot: string;
  readonly startedAt = Date.now();
  readonly #headers: HeaderFactory;
  #broker: EmbeddedBroker | undefined;
  #link: MqttLink | undefined;
  #outbox: SqliteOutbox | undefined;
  #drainer: Drainer | undefined;
  #state: SyncStateStore | undefined;
  #shadow: ConfigShadow | undefined;
  #commands: CommandResponder | undefined;
  #controller: 'online' | 'offline' | 'unknown' = 'unknown';
  /** Each controller instance's last word on `controller/state` since our link came up. */
  readonly #instances = new Map<string, 'online' | 'offline'>();
  #mode: HealthMode = 'normal';
  #stateSince = Date.now();
  #unsubscribe: Array<() => void> = [];
  #timers: NodeJS.Timeout[] = [];
  #url = '';

  constructor(options: SyncServiceOptions) {
    this.#o = options;
    this.boot = options.boot ?? crypto.randomUUID();
    this.#headers = new HeaderFactory(this.boot);
  }

  get site(): string {
    return this.#o.config.site.id;
  }

  get url(): string {
    return this.#url;
  }

  get linkUp(): boolean {
    return this.#link?.connected ?? false;
  }

  get controllerState(): 'online' | 'offline' | 'unknown' {
    return this.#controller;
  }

  get configVersion(): number {
    return this.#shadow?.version ?? 0;
  }

  get outbox(): Outbox {
    if (!this.#outbox) throw new Error('sync service not started');
    return this.#outbox;
  }

  get drainStats(): { sent: number; resent: number; acked: number } {
    return this.#drainer?.stats ?? { sent: 0, resent: 0, acked: 0 };
  }

  /** The site state the others see: `survivable` while the health monitor says so. */
  get siteState(): SiteStateName {
    return this.#mode === 'survivable' ? 'survivable' : 'online';
  }

  async start(): Promise<void> {
    const { config, logger, bus, db, committer } = this.#o;
    const log = logger;
    const site = config.site.id;
    const agentVersion = this.#o.agentVersion ?? packageVersion();

    this.#state = new SyncStateStore(db, committer);
    this.#outbox = new SqliteOutbox(db, committer, this.boot);
    this.#shadow = new ConfigShadow({ site, headers: this.#headers, state: this.#state, bus, logger: log });
    await this.#shadow.load();
    await this.#state.pruneCommands(COMMAND_MEMORY_MS);
    this.#mode = (await this.#state.get<HealthMode>('health.mode')) ?? 'normal';

    const mqttConfig = config.mqtt;
    if (mqttConfig.url) {
      this.#url = mqttConfig.url;
    } else {
      const listen = parseListen(mqttConfig.embedded.listen);
      this.#broker = new EmbeddedBroker({ host: listen.host, port: listen.port, drainTimeout: mqttConfig.embedded.drain_timeout, logger: log });
      await this.#broker.start();
      this.#url = this.#broker.url;
    }

    const link = new MqttLink({
      url: this.#url,
      clientId: mqttConfig.client_id ?? `branchline-site-${site}`,
      // Aedes speaks 3.1.1 only.
      protocolVersion: this.#broker ? 4 : mqttConfig.protocol_version,
      keepalive: mqttConfig.keepalive,
      reconnectPeriodMs: mqttConfig.reconnect_period * 1000,
      connectTimeoutMs: mqttConfig.connect_timeout * 1000,
      ...(mqttConfig.username !== undefined ? { username: mqttConfig.username } : {}),
      ...(mqttConfig.password !== undefined ? { password: mqttConfig.password } : {}),
      ...(this.#url.startsWith('mqtts:')
        ? { tls: { ca: mqttConfig.ca, cert: mqttConfig.cert, key: mqttConfig.key, rejectUnauthorized: mqttConfig.reject_unauthorized } }
        : {}),
      will: () => ({ topic: topics.siteState(site), payload: encode(this.#siteState('offline', agentVersion)), retain: true }),
      logger: log,
    });
    this.#link = link;

    this.#drainer = new Drainer({
      site,
      outbox: this.#outbox,
      publish: (topic, payload) => link.publish(topic, payload),
      window: config.sync.window,
      ackTimeoutMs: config.sync.ack_timeout * 1000,
      logger: log,
    });

    this.#commands = new CommandResponder({
      headers: this.#headers,
      state: this.#state,
      reply: (topic, payload, correlation) => link.publish(topic, payload, { properties: { correlationData: Buffer.from(correlation) } }),
      logger: log,
    });
    this.#registerCommands();

    link.onUp(() => {
      bus.emit('sync.link', { state: 'up', url: brokerUrlForLogs(this.#url) });
      void this.#publishState(agentVersion);
      void this.#publishReported();
    });
    link.onDown((reason) => {
      this.#drainer?.pause();
      bus.emit('sync.link', { state: 'down', url: brokerUrlForLogs(this.#url), reason });
      this.#instances.clear();
      this.#setController('unknown');
    });
    link.onMessage((topic, payload, packet) => this.#onMessage(topic, payload, packet.properties));
    await link.subscribe([topics.ack(site), topics.desiredConfig(site), topics.siteCommand(site), topics.controllerState]);

    const forward = (name: string, payload: unknown): void => {
      this.enqueue({ stream: 'events', type: name, data: payload }).catch((err: unknown) => {
        log.error({ event: 'sync.enqueue_failed', type: name, err }, 'could not queue an event for the controller');
      });
    };
    for (const name of FORWARDED_EVENTS) {
      this.#unsubscribe.push(bus.on(name, (payload: AgentEvents[typeof name]) => forward(name, payload)));
    }
    // In the same turn as the listeners above: every event once, in order.
    for (const early of this.#o.backlog?.() ?? []) forward(early.name, early.payload);
    this.#unsubscribe.push(
      bus.on('health.mode', ({ mode }) => {
        if (mode === this.#mode) return;
        this.#mode = mode;
        this.#stateSince = Date.now();
        this.#state?.set({ 'health.mode': mode }).catch((err: unknown) => log.error({ err }, 'could not store the health mode'));
        void this.#publishState(agentVersion);
      }),
    );

    const quota = setInterval(() => void this.#enforceQuota(), 30_000);
    quota.unref();
    this.#timers.push(quota);
    await this.#enforceQuota();

    link.start();
    const depth = await this.#outbox.depth();
    log.info({ event: 'sync.started', site, url: brokerUrlForLogs(this.#url), embedded: Boolean(this.#broker), boot: this.boot, configVersion: this.configVersion, outbox: depth }, 'sync started');
  }

  /** Queues one message in its own transaction and starts sending it if it can. */
  async enqueue(msg: NewOutboxMessage): Promise<{ id: string }> {
    const result = await this.outbox.add(msg);
    this.#drainer?.kick(msg.stream);
    return result;
  }

  /**
   * The statements that queue a message; add them to the batch that writes the
   * record it carries, then call kick() once that batch committed.
   */
  outboxStatements(msg: NewOutboxMessage): { id: string; statements: Statement[] } {
    return outboxStatements(this.boot, msg);
  }

  kick(stream?: StreamName): void {
    this.#drainer?.kick(stream);
  }

  depth(): Promise<OutboxDepth> {
    return this.outbox.depth();
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    this.#drainer?.pause();
    await this.#drainer?.settled();
    const link = this.#link;
    if (link?.connected) {
      // A clean goodbye: a graceful disconnect suppresses the Last Will.
      await link
        .publish(topics.siteState(this.site), encode(this.#siteState('offline', this.#o.agentVersion ?? packageVersion())), { retain: true })
        .catch(() => undefined);
    }
    await link?.stop({ graceful: true });
    await this.#broker?.stop();
    this.#o.logger.info({ event: 'sync.stopped' }, 'sync stopped');
  }

  #siteState(state: SiteStateName, agent: string): SiteState {
    return {
      ...this.#headers.next('state'),
      site: this.site,
      state,
      agent,
      config_version: this.configVersion,
      since: state === 'offline' ? Date.now() : this.#stateSince,
    };
  }

  async #publishState(agent: string): Promise<void> {
    const link = this.#link;
    if (!link?.connected) return;
    await link.publish(topics.siteState(this.site), encode(this.#siteState(this.siteState, agent)), { retain: true }).catch((err: unknown) => {
      this.#o.logger.warn({ event: 'sync.state_publish_failed', err }, 'could not publish the site state');
    });
  }

  async #publishReported(): Promise<void> {
    const link = this.#link;
    const shadow = this.#shadow;
    if (!link?.connected || !shadow) return;
    await link.publish(topics.reportedConfig(this.site), encode(shadow.reported()), { retain: true }).catch(() => undefined);
  }

  /**
   * Several controller instances (scale-out) share the topic: the controller is
   * online while any instance we heard from is. A dying instance's Last Will says
   * offline for it alone; the instances left publish online again.
   */
  #onControllerState(payload: Buffer): void {
    if (payload.length === 0) {
      // An empty retained payload clears the topic: no controller has spoken.
      this.#instances.clear();
      this.#setController('unknown');
      return;
    }
    const s = parseControllerState(payload);
    this.#instances.set(s.controller, s.state);
    this.#setController([...this.#instances.values()].includes('online') ? 'online' : 'offline');
  }

  #setController(state: 'online' | 'offline' | 'unknown'): void {
    if (state === this.#controller) return;
    this.#controller = state;
    this.#o.logger.info({ event: 'sync.controller', state }, `controller ${state}`);
    this.#o.bus.emit('sync.controller', { state });
    if (state === 'online' && this.#link?.connected) this.#drainer?.resume();
    else this.#drainer?.pause();
  }

  #onMessage(topic: string, payload: Buffer, props: { responseTopic?: string; correlationData?: Buffer } | undefined): void {
    const parsed = parseTopic(topic);
    const log = this.#o.logger;
    try {
      switch (parsed?.kind) {
        case 'ack':
          this.#drainer?.onAck(parseAck(payload).ids);
          return;
        case 'controllerState':
          this.#onControllerState(payload);
          return;
        case 'desiredConfig': {
          if (payload.length === 0) return;
          const desired = parseDesiredConfig(payload);
          if (desired.site !== this.site) throw new Error(`desired config names site ${desired.site}`);
          this.#shadow
            ?.apply(desired)
            .then(async (reported) => {
              await this.#link?.publish(topics.reportedConfig(this.site), encode(reported), { retain: true }).catch(() => undefined);
              if (reported.status === 'applied') await this.#publishState(this.#o.agentVersion ?? packageVersion());
            })
            .catch((err: unknown) => log.error({ event: 'sync.config_failed', version: desired.version, err }, 'could not apply the desired config'));
          return;
        }
        case 'siteCommand': {
          const req = parseRequest(payload, props);
          // The store can fail under it (stopping, disk full): the controller asks again.
          this.#commands?.handle(req).catch((err: unknown) => log.error({ event: 'sync.command_failed', id: req.id, err }, 'could not answer a command'));
          return;
        }
        case 'siteState':
        case 'directory':
        case 'fileData':
        case 'fileStatus':
          // Peer traffic: the peers directory and file transfer attached their own handlers.
          return;
        default:
          log.debug({ event: 'sync.unexpected_topic', topic }, 'message on an unexpected topic');
      }
    } catch (err) {
      log.warn({ event: 'sync.bad_message', topic, err: (err as Error).message }, 'ignored a malformed message');
    }
  }

  #registerCommands(): void {
    const commands = this.#commands as CommandResponder;
    commands.register('ping', async () => ({ site: this.site, boot: this.boot, uptime_s: Math.round((Date.now() - this.startedAt) / 1000) }));
    commands.register('status', async () => ({
      site: this.site,
      boot: this.boot,
      state: this.siteState,
      mode: this.#mode,
      config_version: this.configVersion,
      outbox: await this.depth(),
    }));
  }

  /**
   * Lets a peer feature (directory, file transfer) receive the messages of its own
   * topics on this link; the filters are renewed on every reconnect.
   */
  async attach(filters: string[], handler: (topic: string, payload: Buffer) => void): Promise<() => void> {
    const link = this.#link;
    if (!link) throw new Error('sync service not started');
    const off = link.onMessage((topic, payload) => handler(topic, payload));
    await link.subscribe(filters);
    return off;
  }

  /** Publishes on the link (QoS 1); rejects with ENOTCONNECTED while it is down. */
  publish(topic: string, payload: Buffer, opts: { retain?: boolean } = {}): Promise<void> {
    const link = this.#link;
    if (!link) return Promise.reject(new Error('sync service not started'));
    return link.publish(topic, payload, opts);
  }

  /** Called with true when the MQTT link comes up and false when it goes down. */
  onLinkChange(listener: (up: boolean) => void): () => void {
    const link = this.#link;
    if (!link) throw new Error('sync service not started');
    const offUp = link.onUp(() => listener(true));
    const offDown = link.onDown(() => listener(false));
    return () => {
      offUp();
      offDown();
    };
  }

  /** Stamps headers for this site's run (peer messages that are not outbox messages). */
  get headers(): HeaderFactory {
    return this.#headers;
  }

  /** Lets other subsystems answer commands (health: `telemetry.now`). */
  registerCommand(name: string, handler: (args: unknown) => Promise<unknown>): void {
    this.#commands?.register(name, handler);
  }

  async #enforceQuota(): Promise<void> {
    const outbox = this.#outbox;
    if (!outbox) return;
    try {
      const result = await outbox.shed(this.#o.config.sync.max_bytes);
      if (Object.keys(result.shed).length > 0) {
        this.#o.logger.warn({ event: 'sync.outbox_shed', shed: result.shed, bytes: result.bytes, quota: this.#o.config.sync.max_bytes }, 'outbox over its quota; oldest telemetry/events dropped');
      } else if (result.bytes > this.#o.config.sync.max_bytes) {
        this.#o.logger.warn({ event: 'sync.outbox_over_quota', bytes: result.bytes, quota: this.#o.config.sync.max_bytes }, 'outbox over its quota with nothing left to shed (records and voicemail are kept)');
      }
    } catch (err) {
      this.#o.logger.error({ event: 'sync.quota_failed', err }, 'could not enforce the outbox quota');
    }
  }
}
