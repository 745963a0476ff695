import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from './config/types.ts';
// Only what answers the first REGISTER is imported here; the other subsystems are
// imported when start() reaches them, after SIP listens (`import type` below, and
// `await import()` in #startSubsystems): loading them first cost ~250 ms of a cold
// start with 10,000 extensions (docs/decisions/0010).
import type { CallCore } from './calls/call-core.ts';
import { EventBacklog } from './events/backlog.ts';
import { EventBus } from './events/bus.ts';
import type { MediaEngine } from './media/index.ts';
import { Registrar, type Credentials } from './registrar/registrar.ts';
import { SecurityGuard } from './security/guard.ts';
import { computeHa1 } from './sip/digest.ts';
import { SipStack, type IncomingRequest } from './sip/stack.ts';
import { formatHostPort } from './sip/transport.ts';
import { Database } from './store/db.ts';
import { syncExtensions } from './store/extensions.ts';
import { GroupCommitter } from './store/group-commit.ts';
import { migrate } from './store/migrations.ts';
import { FORWARDED_EVENTS } from './sync/forwarded-events.ts';
import type { SiteSync } from './sync/site-sync.ts';
import type { Trunks } from './trunks/trunks.ts';
import type { Voicemail } from './voicemail/voicemail.ts';
import type { VoicemailForwarding } from './voicemail/forwarding.ts';
import type { UpdateJobs } from '../image/update-job.ts';
import { PhoneProvisioning } from '../provisioning/phones/server.ts';
import { provisioningDir } from '../provisioning/provisioned.ts';

export const storeFileName = 'branchline.sqlite';
export const pidFileName = 'agent.pid';

const allowedMethods = 'REGISTER, OPTIONS, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, REFER, NOTIFY, SUBSCRIBE';
/** Requests the call core takes (new calls and everything inside their dialogs). */
const callMethods = new Set(['INVITE', 'ACK', 'BYE', 'UPDATE', 'INFO', 'PRACK', 'REFER', 'NOTIFY', 'MESSAGE']);

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
  #phones: PhoneProvisioning | undefined;
  #updates: UpdateJobs | undefined;
  #media: MediaEngine | undefined;
  #calls: CallCore | undefined;
  #voicemail: Voicemail | undefined;
  #trunks: Trunks | undefined;
  #voicemailForwarding: VoicemailForwarding | undefined;
  /** The subsystems started after SIP listens (#startSubsystems), while they start. */
  #subsystemsStarting: Promise<void> | undefined;
  /** Every subsystem has started (or failed and was logged): agent.ready. */
  #ready = false;
  /** Voicemail has started, or failed to and was logged: SUBSCRIBE gets its real answer. */
  #voicemailSettled = false;

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

  /** Mailboxes: the call core hands calls to deposit()/retrieve(). */
  get voicemail(): Voicemail | undefined {
    return this.#voicemail;
  }

  get calls(): CallCore | undefined {
    return this.#calls;
  }

  /** Line cards and trunk policy (docs/trunks.md); undefined without linecards[]. */
  get trunks(): Trunks | undefined {
    return this.#trunks;
  }

  async start(): Promise<void> {
    const started = performance.now();
    const { config, logger } = this;
    mkdirSync(config.state_dir, { recursive: true });
    // Provisioned phones are extensions whose passwords the agent generated: they join
    // the configured ones before anything reads the extension list (provisioning/phones).
    this.#phones = new PhoneProvisioning({ config, credentialsDir: provisioningDir(config.state_dir), logger: logger.child({ subsystem: 'phones' }) });
    config.extensions.push(...this.#phones.prepare());

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
    const registrar = this.#registrar;

    // The SIP stack listens as soon as the store, security and the registrar are
    // ready: phones register while the rest starts (#startSubsystems). Until then
    // INVITE and SUBSCRIBE are answered 503 with Retry-After (#route), and the events
    // site sync forwards to the controller are kept for it (EventBacklog).
    const backlog = new EventBacklog(this.bus, FORWARDED_EVENTS);
    const guard = this.#guard;
    this.#stack = new SipStack({
      udp: config.sip.udp,
      tcp: config.sip.tcp,
      maxMessageBytes: config.sip.max_message_bytes,
      maxTcpConnections: config.sip.tcp_max_connections,
      tcpIdleTimeoutMs: config.sip.tcp_idle_timeout * 1000,
      timers: config.sip.timers,
      checks: {
        // 100rel and timer: agent/calls/features (reliable provisionals, session timers).
        supportedExtensions: new Set(['path', 'outbound', '100rel', 'timer', 'replaces']),
        // SDP for calls; DTMF relay bodies (INFO) and sipfrag (NOTIFY after REFER) pass between phones.
        acceptedContentTypes: new Set(['application/sdp', 'application/dtmf-relay', 'application/dtmf', 'message/sipfrag']),
        // The agent is the endpoint of every request it takes (registrar, B2BUA), never
        // a proxy, so Max-Forwards: 0 is processed normally (RFC 4475 3.3.11).
        isLocal: () => true,
      },
      logger: logger.child({ subsystem: 'sip' }),
    });
    this.#stack.setRequestFilter((req, source) => guard.filter(req, source));
    this.#stack.onRequest((req) => this.#route(req));
    this.#stack.onCancel((invite, cancel) => this.#calls?.handleCancel(invite, cancel));
    await this.#stack.start();
    logger.info(
      { event: 'sip.listening', udp: formatListen(this.#stack.addresses.udp), tcp: formatListen(this.#stack.addresses.tcp), startupMs: Math.round(performance.now() - started) },
      'SIP listening: registrations served while the other subsystems start',
    );

    // stop() waits for this: a signal during start-up must not race subsystems still starting.
    this.#subsystemsStarting = this.#startSubsystems(db, realm, credentials, registrar, backlog);
    await this.#subsystemsStarting;
    this.#ready = true;

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

  /**
   * Everything a REGISTER does not need, once SIP listens: site sync, voicemail,
   * phone provisioning, updates, the call core, voicemail forwarding, the line cards.
   * Each is optional (a failure is logged and the others run), as before the reorder.
   */
  async #startSubsystems(db: Database, realm: string, credentials: Map<string, Credentials>, registrar: Registrar, backlog: EventBacklog): Promise<void> {
    const { config, logger } = this;
    const stack = this.#stack;
    const committer = this.#committer;
    const phones = this.#phones;
    if (stack === undefined || committer === undefined || phones === undefined) return;
    // Started together: their modules load in parallel, before anything runs.
    const [{ SiteSync }, { Voicemail }] = await Promise.all([import('./sync/site-sync.ts'), import('./voicemail/voicemail.ts')]);

    // Site sync (MQTT, outbox, survivable mode): optional at every moment, so its
    // failure is logged and everything else starts regardless. It takes the events
    // kept since SIP started listening.
    this.#siteSync = new SiteSync({
      config,
      logger: logger.child({ subsystem: 'sync' }),
      bus: this.bus,
      db,
      committer,
      sources: { registrations: () => registrar.table.size },
      backlog: () => backlog.take(),
    });
    let syncStarted = false;
    try {
      await this.#siteSync.start();
      syncStarted = true;
    } catch (err) {
      logger.error({ event: 'sync.failed', err, code: (err as { code?: string }).code }, `site sync failed to start: ${(err as Error).message}`);
    } finally {
      backlog.take(); // stops recording when sync did not get as far as taking it
    }

    // Voicemail (startup scan of the message store, prompts, MWI); a failure is logged
    // and everything else runs without it.
    const voicemail = new Voicemail({
      settings: config.voicemail,
      extensions: config.extensions,
      stateDir: config.state_dir,
      domain: config.sip.domain,
      logger: logger.child({ subsystem: 'voicemail' }),
      bus: this.bus,
      db,
      committer,
      sip: { stack, bindings: (extension) => registrar.table.of(extension) },
    });
    try {
      await voicemail.start();
      this.#voicemail = voicemail;
    } catch (err) {
      logger.error({ event: 'voicemail.failed', err }, `voicemail failed to start: ${(err as Error).message}`);
    }
    this.#voicemailSettled = true;
    // Every phone of every mailbox learns the lamp state (also after a restart, and the
    // phones that registered before voicemail started).
    void this.#voicemail?.announce().catch((err: unknown) => logger.error({ event: 'voicemail.announce_failed', err }, 'MWI announce failed'));
    // Phone provisioning and controller-ordered updates are optional like sync: a
    // failure is logged and the phones keep registering.
    await phones.start().catch((err: unknown) => logger.error({ event: 'phones.failed', err }, `phone provisioning failed to start: ${(err as Error).message}`));
    const sync = this.#siteSync.sync;
    if (sync && syncStarted) {
      const { UpdateJobs } = await import('../image/update-job.ts');
      this.#updates = new UpdateJobs({
        config,
        registerCommand: (name, handler) => sync.registerCommand(name, handler),
        enqueue: (msg) => sync.enqueue(msg),
        calls: { description: 'the call core', activeCalls: async () => this.#calls?.activeCalls ?? 0 },
        requestRestart: () => process.kill(process.pid, 'SIGTERM'),
        logger: logger.child({ subsystem: 'firmware' }),
      });
      this.#updates.start();
    }
    await this.#startCalls(db, realm, credentials);
    await this.#startVoicemailForwarding(db);
    // Line cards and trunks (docs/trunks.md). A card that fails is logged by the
    // trunks; a trunk config the cards cannot carry leaves the agent without trunks,
    // not without SIP.
    if (config.linecards.length > 0) {
      const [{ Trunks }, { registerLineCalls }] = await Promise.all([import('./trunks/trunks.ts'), import('./calls/line-calls.ts')]);
      const trunks = new Trunks({ config, logger, bus: this.bus, db });
      try {
        await trunks.start();
        this.#trunks = trunks;
        // Inbound DIDs ring phones; the dial plan's outside numbers go out on the lines.
        if (this.#calls !== undefined && this.#media !== undefined) registerLineCalls(this.#calls, trunks.service, this.#media, logger.child({ subsystem: 'calls' }), this.#voicemail);
      } catch (err) {
        logger.error({ event: 'trunks.failed', err }, `trunks failed to start: ${(err as Error).message}`);
        await trunks.stop().catch(() => undefined);
      }
    }
  }

  /**
   * Media engine and call core, once the SIP stack knows its addresses: with the
   * media bound to a wildcard and no advertise_address, SDP names the address the
   * SIP stack advertises, so a phone reaches RTP where it reaches SIP.
   */
  async #startCalls(db: Database, realm: string, credentials: Map<string, Credentials>): Promise<void> {
    const { config, logger } = this;
    const stack = this.#stack;
    const registrar = this.#registrar;
    if (stack === undefined || registrar === undefined || this.#committer === undefined) return;
    const [
      { CallerAuthenticator },
      { CallCore },
      { CallTransfer },
      { InviteWithReplaces },
      { ReliableProvisionals },
      { SessionTimers },
      { ConfiguredDialPlan },
      { PeerRoutes },
      { PeerTrust, SITE_HEADER },
      { MediaEngine },
      { CallRecordStore },
      { FeatureStateStore },
      { registerVoicemailTargets },
      { featureTargetHandler },
    ] = await Promise.all([
      import('./calls/caller-auth.ts'),
      import('./calls/call-core.ts'),
      import('./calls/features/transfer.ts'),
      import('./calls/features/invite-replaces.ts'),
      import('./calls/features/reliable-provisionals.ts'),
      import('./calls/features/session-timer.ts'),
      import('./calls/routing/dial-plan.ts'),
      import('./calls/peer-routes.ts'),
      import('./calls/peer-trust.ts'),
      import('./media/index.ts'),
      import('./store/call-records.ts'),
      import('./store/feature-state.ts'),
      import('./voicemail/call-targets.ts'),
      import('./calls/feature-target.ts'),
    ]);
    const m = config.media;
    const wildcard = m.bind_address === '0.0.0.0' || m.bind_address === '::';
    const sipHost = (stack.advertisedHost('udp') ?? stack.advertisedHost('tcp'))?.replace(/^\[|\]$/g, '');
    const advertise = m.advertise_address ?? (wildcard ? sipHost : undefined);
    this.#media = new MediaEngine(
      {
        bindAddress: m.bind_address,
        ...(advertise === undefined ? {} : { advertiseAddress: advertise }),
        portRange: m.port_range,
        codecs: m.codecs,
        country: m.country,
        latching: m.latching,
        mediaTimeoutMs: m.media_timeout * 1000,
      },
      logger.child({ subsystem: 'media' }),
    );
    this.#media.start();
    const extensions = new Map(config.extensions.map((e) => [e.number, e]));
    const featureState = await FeatureStateStore.load(db, this.#committer);
    // Calls between sites (docs/sync.md#calls-between-sites): numbers homed at peers,
    // skipped while the WAN is down by health's account; INVITEs from peers trusted by address.
    const siteSync = this.#siteSync;
    const peerRouting = {
      homes: new PeerRoutes({ directory: () => siteSync?.peers, wan: () => siteSync?.health }),
      fallback: config.peers.fallback,
      noResponseMs: config.peers.no_response_timeout * 1000,
    };
    const peerTrust = new PeerTrust({ peers: () => siteSync?.peers?.list(), ownSite: config.site.id, trustedNetworks: config.peers.trusted_networks });
    this.#calls = new CallCore({
      siteId: config.site.id,
      domain: config.sip.domain,
      stack,
      bus: this.bus,
      logger: logger.child({ subsystem: 'calls' }),
      media: this.#media,
      dialPlan: new ConfiguredDialPlan(config, featureState, peerRouting),
      peerSiteOf: (incoming) => {
        const claimed = incoming.request.headers[SITE_HEADER.toLowerCase()];
        return peerTrust.siteOf(incoming.source, typeof claimed === 'string' ? claimed.trim() : undefined);
      },
      auth: new CallerAuthenticator({
        realm,
        algorithms: config.sip.auth.algorithms,
        nonceLifetimeMs: config.sip.auth.nonce_lifetime * 1000,
        credentials,
        ...(this.#guard === undefined ? {} : { guard: this.#guard }),
      }),
      bindingsOf: (extension) => registrar.table.of(extension),
      extension: (number) => {
        const e = extensions.get(number);
        if (e === undefined) return undefined;
        return { ...(e.name === undefined ? {} : { name: e.name }), ...(e.media_policy === undefined ? {} : { mediaPolicy: e.media_policy }) };
      },
      defaultPolicy: m.policy,
      maxConcurrent: config.calls.max_concurrent,
      retryAfterSec: config.calls.retry_after,
      // With sync, each record's outbox message commits with it (docs/call-records.md).
      records: new CallRecordStore(db, this.#committer, this.#siteSync?.sync),
    });
    this.#calls.start();
    // Unanswered calls to a mailbox and the *97/*98 codes: voicemail carries them out.
    const voicemailTargets = this.#voicemail !== undefined ? { voicemail: this.#voicemail, media: this.#media, logger: logger.child({ subsystem: 'voicemail' }) } : undefined;
    if (voicemailTargets !== undefined) registerVoicemailTargets(this.#calls, voicemailTargets);
    // Feature codes (*78 DND, *72 forward..., *98, *43 echo): agent/calls/feature-target.ts.
    this.#calls.setTargetHandler(
      'feature',
      featureTargetHandler({ features: featureState, media: this.#media, logger: logger.child({ subsystem: 'calls' }), ...(voicemailTargets !== undefined ? { voicemail: voicemailTargets } : {}) }),
    );
    // Transfer (REFER, RFC 3515): agent/calls/features.
    const transfer = new CallTransfer({ ...this.#calls.placement, routingState: this.#calls.routingState, core: this.#calls, log: logger.child({ subsystem: 'calls' }) });
    this.#calls.setInDialogHandler('REFER', transfer.handleRefer);
    this.#calls.addFeature(new SessionTimers({ sessionExpires: config.calls.session_expires, minSE: config.calls.min_se }, this.#calls, this.bus));
    this.#calls.addFeature(new ReliableProvisionals(this.#calls, config.sip.timers.t1));
    const calls = this.#calls;
    this.#calls.addFeature(new InviteWithReplaces({ ...calls.placement, findDialog: (id, local, remote) => calls.findDialog(id, local, remote), log: logger.child({ subsystem: 'calls' }) }));
    logger.info({ event: 'calls.ready', mediaPolicy: m.policy, rtp: `${m.port_range.min}-${m.port_range.max}`, advertise: this.#media.advertiseAddress }, 'call core ready');
  }

  /**
   * Distributed voicemail (agent/voicemail/forwarding.ts): messages taken here for
   * peers' mailboxes go home over the file transfer; their state comes back. Needs
   * voicemail and the peers' file transfer; without either, nothing is forwarded.
   */
  async #startVoicemailForwarding(db: Database): Promise<void> {
    const voicemail = this.#voicemail;
    const peers = this.#siteSync?.peers;
    const files = this.#siteSync?.files;
    if (voicemail === undefined || peers === undefined || files === undefined || this.#committer === undefined) return;
    const { VoicemailForwarding } = await import('./voicemail/forwarding.ts');
    const forwarding = new VoicemailForwarding({
      voicemail,
      files,
      homeOf: (mailbox) => {
        const home = peers.homeOf(mailbox);
        return home !== undefined && home.siteId !== peers.site ? home.siteId : undefined;
      },
      // The schema's defaults for a mailbox: a guest's own settings live at its home site.
      guestMailbox: { pin: '', max_messages: 100, max_message_seconds: 180, min_message_seconds: 1, silence_seconds: 5 },
      bus: this.bus,
      db,
      committer: this.#committer,
      logger: this.logger.child({ subsystem: 'voicemail' }),
    });
    try {
      await forwarding.start();
      this.#voicemailForwarding = forwarding;
    } catch (err) {
      this.logger.error({ event: 'voicemail.forwarding_failed', err }, `voicemail forwarding failed to start: ${(err as Error).message}`);
    }
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
        headers: { Allow: allowedMethods, Accept: 'application/sdp', Supported: 'path, outbound, 100rel, timer, replaces' },
      });
      return;
    }
    // While the subsystems start after SIP, requests for one still starting are
    // answered 503 with Retry-After: the phone retries in a second (RFC 3261 21.5.4).
    // SUBSCRIBE waits for voicemail (started or failed); a new call for the whole
    // start, so that the line cards and voicemail targets are there to route it.
    const starting =
      (method === 'SUBSCRIBE' && !this.#voicemailSettled) ||
      (method === 'INVITE' && !this.#ready && incoming.request.headers.to.params['tag'] === undefined);
    if (starting) {
      incoming.respond(503, 'Service Unavailable', { headers: { 'Retry-After': '1' } });
      return;
    }
    if (method === 'SUBSCRIBE') {
      if (this.#voicemail === undefined) {
        incoming.respond(489, 'Bad Event', { toTag: 'na', headers: { 'Allow-Events': 'message-summary' } });
        return;
      }
      this.#voicemail.handleSubscribe(incoming).catch((err: unknown) => {
        this.logger.error({ err, callId: incoming.request.headers['call-id'] }, 'MWI failed on a SUBSCRIBE');
        incoming.respond(500, 'Server Internal Error', { toTag: 'err' });
      });
      return;
    }
    if (callMethods.has(method)) {
      if (this.#calls !== undefined) this.#calls.handle(incoming);
      else if (method !== 'ACK') incoming.respond(503, 'Service Unavailable', { headers: { 'Retry-After': '1' } });
      return;
    }
    incoming.respond(501, 'Not Implemented', { toTag: 'na', headers: { Allow: allowedMethods } });
  }

  async stop(): Promise<void> {
    // A stop during start-up (a signal, a failed start) lets the subsystems finish
    // starting, so that each one started is also stopped.
    await this.#subsystemsStarting?.catch(() => undefined);
    // Calls end first (BYE to both sides, records written) while SIP still runs.
    await this.#calls?.stop().catch((err: unknown) => this.logger.error({ err }, 'call core failed to stop cleanly'));
    // Then the lines (usage statistics written while the store is open).
    await this.#trunks?.stop().catch((err: unknown) => this.logger.error({ err }, 'trunks failed to stop cleanly'));
    this.#voicemailForwarding?.stop();
    this.#voicemail?.stop();
    await this.#stack?.stop();
    await this.#media?.stop();
    await this.#phones?.stop();
    await this.#updates?.stop();
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
