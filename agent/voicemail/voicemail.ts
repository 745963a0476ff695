// The voicemail subsystem as the composition root and the call core see it:
//   start()/stop()                     prompts loaded, startup scan, MWI
//   deposit(session, request)          leave a message (deposit/deposit.ts)
//   retrieve(session, request)         the mailbox IVR (ivr/driver.ts)
//   handleSubscribe(incoming)          SUBSCRIBE with Event: message-summary
// The call core answers the call, hands over the call's RtpSession, and hangs up
// when the promise resolves.
import path from 'node:path';
import type { Logger } from 'pino';
import type { ExtensionConfig, MailboxConfig, VoicemailConfig } from '../config/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { RtpSession } from '../media/rtp-session.ts';
import type { IncomingRequest, SipStack } from '../sip/stack.ts';
import type { Binding } from '../store/bindings.ts';
import type { Database } from '../store/db.ts';
import type { GroupCommitter } from '../store/group-commit.ts';
import { deposit as runDeposit, type DepositRequest, type DepositResult, type DepositStep } from './deposit/deposit.ts';
import { retrieve as runRetrieval, type RetrievalRequest, type RetrievalResult } from './ivr/driver.ts';
import { MwiService } from './mwi/mwi-service.ts';
import { SubscriptionStore } from './mwi/subscription-store.ts';
import { DEFAULT_PROMPTS_DIR, DEFAULT_VOICE } from './prompts/build.ts';
import { PromptLibrary } from './prompts/library.ts';
import { Greetings } from './store/greetings.ts';
import { PinStore } from './store/pins.ts';
import { reconcile, type ReconcileReport } from './store/reconcile.ts';
import type { StoredMessage } from './store/types.ts';
import { VoicemailStore } from './store/voicemail-store.ts';

export interface VoicemailDeps {
  settings: VoicemailConfig;
  extensions: readonly ExtensionConfig[];
  stateDir: string;
  domain: string;
  logger: Logger;
  bus: EventBus;
  db: Database;
  committer: GroupCommitter;
  /** SIP for MWI; without it (tests of deposit and retrieval alone) there is no MWI. */
  sip?: { stack: SipStack; bindings(extension: string): readonly Binding[] };
  /** IVR timeouts (tests shorten them). */
  menuTimeoutMs?: number;
  digitTimeoutMs?: number;
  /** Crash tests stop the process at these points of a deposit. */
  onDepositStep?: (step: DepositStep) => Promise<void> | void;
}

export class Voicemail {
  readonly #deps: VoicemailDeps;
  readonly #mailboxes: Map<string, MailboxConfig>;
  readonly store: VoicemailStore;
  readonly greetings: Greetings;
  readonly pins: PinStore;
  readonly prompts: PromptLibrary;
  #mwi: MwiService | undefined;
  #guests: ((mailbox: string) => MailboxConfig | undefined) | undefined;

  constructor(deps: VoicemailDeps) {
    this.#deps = deps;
    this.#mailboxes = new Map(deps.extensions.flatMap((e) => (e.voicemail ? [[e.number, e.voicemail] as const] : [])));
    this.store = new VoicemailStore({ db: deps.db, committer: deps.committer, root: path.join(deps.stateDir, 'voicemail') });
    this.greetings = new Greetings(this.store);
    this.pins = new PinStore({ db: deps.db, committer: deps.committer, lockout: deps.settings.lockout });
    this.prompts = new PromptLibrary(deps.logger);
  }

  mailboxConfig(mailbox: string): MailboxConfig | undefined {
    return this.#mailboxes.get(mailbox) ?? this.#guests?.(mailbox);
  }

  /**
   * Takes messages for mailboxes homed at peer sites too, with the settings `resolve`
   * gives (undefined: not a guest). They are stored like any message and forwarded
   * home by agent/voicemail/forwarding.ts; they have no PIN, MWI or retrieval here.
   */
  acceptGuests(resolve: (mailbox: string) => MailboxConfig | undefined): void {
    this.#guests = resolve;
  }

  /** One of this site's own mailboxes (from the config), not a guest's. */
  isOwnMailbox(mailbox: string): boolean {
    return this.#mailboxes.has(mailbox);
  }

  /** A message indexed outside a deposit (forwarded from a peer): the same events and MWI as a deposit. */
  messageIndexed(m: StoredMessage): void {
    this.#deposited(m);
  }

  /** After a change made outside the IVR (a peer heard or deleted a message): counts and MWI. */
  countsChanged(mailbox: string): Promise<void> {
    return this.#countsChanged(mailbox);
  }

  get mwi(): MwiService | undefined {
    return this.#mwi;
  }

  /** Loads prompts, repairs the store after an unclean stop, starts MWI. Returns what the scan did. */
  async start(): Promise<ReconcileReport> {
    const { logger } = this.#deps;
    const promptsDir = path.join(this.#deps.settings.prompts_dir ?? DEFAULT_PROMPTS_DIR, DEFAULT_VOICE);
    const loaded = await this.prompts.load(promptsDir);
    const report = await reconcile(this.store, logger);
    if (this.#deps.sip) {
      this.#mwi = new MwiService({
        stack: this.#deps.sip.stack,
        bus: this.#deps.bus,
        logger,
        domain: this.#deps.domain,
        settings: this.#deps.settings.mwi,
        subscriptions: new SubscriptionStore({ db: this.#deps.db, committer: this.#deps.committer }),
        hasMailbox: (m) => this.#mailboxes.has(m),
        counts: (m) => this.store.counts(m),
        bindings: this.#deps.sip.bindings,
      });
      await this.#mwi.start();
    }
    logger.info({ event: 'voicemail.started', mailboxes: this.#mailboxes.size, prompts: loaded, promptsDir }, 'voicemail ready');
    return report;
  }

  /** Once SIP is listening: every phone of every mailbox learns the current state (after a restart too). */
  async announce(): Promise<void> {
    await this.#mwi?.announceAll(this.#mailboxes.keys());
  }

  stop(): void {
    this.#mwi?.stop();
  }

  handleSubscribe(incoming: IncomingRequest): Promise<void> {
    if (this.#mwi === undefined) {
      incoming.respond(489, 'Bad Event', { toTag: 'vm' });
      return Promise.resolve();
    }
    return this.#mwi.handleSubscribe(incoming);
  }

  async deposit(session: RtpSession, request: DepositRequest): Promise<DepositResult> {
    const result = await runDeposit(
      {
        store: this.store,
        greetings: this.greetings,
        prompts: this.prompts,
        mailboxConfig: (m) => this.mailboxConfig(m),
        format: this.#deps.settings.format,
        logger: this.#deps.logger,
        onDeposited: (m) => this.#deposited(m),
        ...(this.#deps.onDepositStep ? { onStep: this.#deps.onDepositStep } : {}),
      },
      session,
      request,
    );
    if (result.outcome === 'login') {
      // '*' during the greeting: the owner logs in to this mailbox.
      await this.retrieve(session, { mailbox: request.mailbox });
    }
    return result;
  }

  retrieve(session: RtpSession, request: RetrievalRequest): Promise<RetrievalResult> {
    return runRetrieval(
      {
        store: this.store,
        pins: this.pins,
        greetings: this.greetings,
        prompts: this.prompts,
        mailboxConfig: (m) => this.mailboxConfig(m),
        pinAttempts: this.#deps.settings.pin_attempts,
        logger: this.#deps.logger,
        onChanged: (m) => void this.#countsChanged(m),
        ...(this.#deps.menuTimeoutMs !== undefined ? { menuTimeoutMs: this.#deps.menuTimeoutMs } : {}),
        ...(this.#deps.digitTimeoutMs !== undefined ? { digitTimeoutMs: this.#deps.digitTimeoutMs } : {}),
      },
      session,
      request,
    );
  }

  #deposited(m: StoredMessage): void {
    const event = { mailbox: m.mailbox, messageId: m.id, caller: m.caller, reason: m.reason, receivedAt: m.receivedAt, durationMs: m.durationMs, file: m.file };
    this.#deps.bus.emit('voicemail.deposited', m.callerName ? { ...event, callerName: m.callerName } : event);
    void this.#countsChanged(m.mailbox);
  }

  async #countsChanged(mailbox: string): Promise<void> {
    try {
      const c = await this.store.counts(mailbox);
      this.#deps.bus.emit('voicemail.counts', { mailbox, newMessages: c.newMessages, oldMessages: c.oldMessages });
    } catch (err) {
      this.#deps.logger.error({ event: 'voicemail.counts_failed', mailbox, err }, 'could not read mailbox counts');
    }
  }
}
