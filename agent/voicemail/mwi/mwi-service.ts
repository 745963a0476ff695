// Message-waiting indication: RFC 3842 message-summary over RFC 6665 SUBSCRIBE/NOTIFY,
// plus unsolicited NOTIFY for phones that light their lamp without subscribing.
//
// When a phone's lamp is brought up to date:
//   - on SUBSCRIBE and every refresh (RFC 6665 §4.2.1: a NOTIFY follows each accepted SUBSCRIBE);
//   - when a mailbox's counts change (the `voicemail.counts` bus event);
//   - when the phone registers or refreshes its registration (`registration.added`,
//     `registration.refreshed`): a phone that rebooted, or re-registered after losing
//     its state, gets the lamp back — the "lamp goes dark after re-register" bug;
//   - when the agent starts: subscriptions are restored from SQLite and every
//     registered phone of a mailbox is told the current state.
// Subscribed phones get NOTIFY inside their dialog; registered contacts without a
// subscription get an out-of-dialog NOTIFY (when voicemail.mwi.unsolicited) — never a
// phone that holds a subscription: after a REGISTER the unsolicited NOTIFY waits
// UNSOLICITED_AFTER_REGISTER_MS for the SUBSCRIBE that usually follows, and whether
// the phone is subscribed is checked again right before anything is sent.
//
// Who may subscribe: the SUBSCRIBE must come from the address (transport, IP, and
// for UDP the port) of a live registration of that mailbox's extension — the phone
// already proved its password when it registered. Others get 403.
import type { Logger } from 'pino';
import type { VoicemailConfig } from '../../config/types.ts';
import type { Binding } from '../../store/bindings.ts';
import type { EventBus } from '../../events/bus.ts';
import { newCallId, newTag } from '../../sip/branch.ts';
import { Dialog, DialogError, dialogIdOfRequest, newDialogTag } from '../../sip/dialog.ts';
import type { IncomingRequest, SipStack } from '../../sip/stack.ts';
import { formatHostPort } from '../../sip/transport.ts';
import type { Endpoint, SipRequest } from '../../sip/types.ts';
import { parseUri, unescapeUriPart } from '../../sip/uri.ts';
import { eventPackage, MESSAGE_SUMMARY_TYPE, messageSummaryBody } from './message-summary.ts';
import type { Subscription, SubscriptionStore } from './subscription-store.ts';

export interface MwiDeps {
  stack: SipStack;
  bus: EventBus;
  logger: Logger;
  domain: string;
  settings: VoicemailConfig['mwi'];
  subscriptions: SubscriptionStore;
  hasMailbox(mailbox: string): boolean;
  counts(mailbox: string): Promise<{ newMessages: number; oldMessages: number }>;
  /** Live registrations of an extension (the registrar's table). */
  bindings(extension: string): readonly Binding[];
}

const SWEEP_MS = 1000;
const ANNOUNCE_CONCURRENCY = 32;
/**
 * How long after a REGISTER the unsolicited NOTIFY waits. A phone that subscribes
 * sends its SUBSCRIBE right after the 200 to its REGISTER; an unsolicited NOTIFY sent
 * at once would reach it while it is about to hold (or already holds) a subscription,
 * and a phone that only knows NOTIFYs inside its dialog ignores it — over UDP the
 * agent then retransmits it for Timer F (32 s). Waiting lets the subscription arrive
 * first; a phone that never subscribes gets its lamp this much later.
 */
export const UNSOLICITED_AFTER_REGISTER_MS = 2000;

/** "udp:1.2.3.4:5060" (Binding.source) → an Endpoint. */
export function endpointOfSource(source: string): Endpoint | undefined {
  const m = /^(udp|tcp):(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(source);
  if (!m) return undefined;
  return { transport: m[1] as 'udp' | 'tcp', address: (m[2] ?? m[3]) as string, port: Number(m[4]) };
}

function sameFlow(a: Endpoint, b: Endpoint): boolean {
  return a.transport === b.transport && a.address === b.address && (a.transport === 'tcp' || a.port === b.port);
}

export class MwiService {
  readonly #deps: MwiDeps;
  readonly #subs = new Map<string, Subscription>();
  /** In-dialog NOTIFYs in flight, by dialog id (#notify). */
  readonly #sending = new Map<string, { again: boolean; state: string | undefined; done: Promise<void> }>();
  /** Unsolicited NOTIFYs waiting out UNSOLICITED_AFTER_REGISTER_MS, by mailbox and contact. */
  readonly #afterRegister = new Map<string, NodeJS.Timeout>();
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: Array<() => void> = [];
  #sent = 0;

  constructor(deps: MwiDeps) {
    this.#deps = deps;
  }

  get subscriptionCount(): number {
    return this.#subs.size;
  }

  get notifiesSent(): number {
    return this.#sent;
  }

  async start(): Promise<void> {
    const { bus } = this.#deps;
    for (const s of await this.#deps.subscriptions.load(Date.now())) this.#subs.set(s.dialog.id, s);
    this.#unsubscribe = [
      bus.on('voicemail.counts', (e) => void this.notifyMailbox(e.mailbox)),
      bus.on('registration.added', (e) => void this.#onRegistration(e.extension, e.contact)),
      bus.on('registration.refreshed', (e) => void this.#onRegistration(e.extension, e.contact)),
    ];
    this.#timer = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#timer.unref();
  }

  /**
   * After start, once SIP is up: tell every subscribed or registered phone the
   * current state. A few mailboxes at a time: a phone that is gone holds its NOTIFY
   * for Timer F (32 s), and a site may have thousands of mailboxes.
   */
  async announceAll(mailboxes: Iterable<string>): Promise<void> {
    const queue = [...mailboxes];
    const worker = async (): Promise<void> => {
      for (let m = queue.shift(); m !== undefined; m = queue.shift()) await this.notifyMailbox(m);
    };
    await Promise.all(Array.from({ length: ANNOUNCE_CONCURRENCY }, worker));
  }

  stop(): void {
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const t of this.#afterRegister.values()) clearTimeout(t);
    this.#afterRegister.clear();
  }

  // ---- SUBSCRIBE -------------------------------------------------------------

  async handleSubscribe(incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const { settings } = this.#deps;
    if (eventPackage(req.headers['event']) !== 'message-summary') {
      incoming.respond(489, 'Bad Event', { toTag: newTag(), headers: { 'Allow-Events': 'message-summary' } });
      return;
    }
    const expiresHeader = req.headers['expires'];
    const requested = expiresHeader === undefined ? settings.max_expires : Number(expiresHeader);
    if (!Number.isInteger(requested) || requested < 0) {
      incoming.respond(400, 'Bad Request (Expires)', { toTag: newTag() });
      return;
    }
    if (requested > 0 && requested < settings.min_expires) {
      incoming.respond(423, 'Interval Too Brief', { toTag: newTag(), headers: { 'Min-Expires': String(settings.min_expires) } });
      return;
    }
    const expires = Math.min(requested, settings.max_expires);

    const id = dialogIdOfRequest(req);
    if (id !== undefined) return this.#refresh(incoming, id, expires);

    const mailbox = this.#mailboxOf(req);
    if (mailbox === undefined || !this.#deps.hasMailbox(mailbox)) {
      incoming.respond(404, 'Not Found', { toTag: newTag() });
      return;
    }
    if (!this.#registeredFrom(mailbox, incoming.source)) {
      this.#deps.logger.info({ event: 'mwi.refused', mailbox, source: formatHostPort(incoming.source.address, incoming.source.port) }, 'MWI SUBSCRIBE refused: not from a registered phone of the mailbox');
      incoming.respond(403, 'Forbidden (register first)', { toTag: newTag() });
      return;
    }
    let dialog: Dialog;
    try {
      dialog = Dialog.asUas(req, newDialogTag(), this.#localContact(incoming.source), 'confirmed');
    } catch (err) {
      const status = err instanceof DialogError ? err.status : 400;
      incoming.respond(status, 'Bad Request', { toTag: newTag() });
      return;
    }
    dialog.flow = { ...incoming.source };
    incoming.respond(200, 'OK', { toTag: dialog.localTag, headers: { Expires: String(expires), Contact: `<${dialog.localContact}>` } });
    const sub: Subscription = { mailbox, dialog, expiresAt: Date.now() + expires * 1000 };
    if (expires === 0) {
      // A fetch (RFC 6665 §4.4.3): one NOTIFY with the state, then the subscription ends.
      await this.#notify(sub, 'terminated;reason=timeout');
      return;
    }
    this.#subs.set(dialog.id, sub);
    this.#deps.logger.info({ event: 'mwi.subscribed', mailbox, expires, source: formatHostPort(incoming.source.address, incoming.source.port) }, 'MWI subscription');
    await this.#deps.subscriptions.save(sub);
    await this.#notify(sub);
  }

  async #refresh(incoming: IncomingRequest, id: string, expires: number): Promise<void> {
    const sub = this.#subs.get(id);
    if (sub === undefined) {
      incoming.respond(481, 'Subscription Does Not Exist');
      return;
    }
    try {
      sub.dialog.receiveRequest(incoming.request);
    } catch (err) {
      const status = err instanceof DialogError ? err.status : 500;
      incoming.respond(status, status === 481 ? 'Subscription Does Not Exist' : 'Server Internal Error');
      return;
    }
    sub.dialog.flow = { ...incoming.source };
    incoming.respond(200, 'OK', { headers: { Expires: String(expires), Contact: `<${sub.dialog.localContact}>` } });
    if (expires === 0) {
      this.#subs.delete(id);
      await this.#deps.subscriptions.remove(id);
      await this.#notify(sub, 'terminated');
      sub.dialog.terminate();
      return;
    }
    sub.expiresAt = Date.now() + expires * 1000;
    await this.#deps.subscriptions.save(sub);
    await this.#notify(sub);
  }

  #mailboxOf(req: SipRequest): string | undefined {
    const uri = parseUri(req.uri);
    if (uri?.user) return unescapeUriPart(uri.user);
    const to = parseUri(req.headers.to.uri);
    return to?.user ? unescapeUriPart(to.user) : undefined;
  }

  #registeredFrom(mailbox: string, source: Endpoint): boolean {
    return this.#deps.bindings(mailbox).some((b) => {
      const flow = endpointOfSource(b.source);
      return flow !== undefined && b.expiresAt > Date.now() && sameFlow(flow, source);
    });
  }

  #localContact(toward: Endpoint): string {
    const stack = this.#deps.stack;
    const local = toward.transport === 'tcp' ? stack.addresses.tcp : stack.addresses.udp;
    const host = stack.advertisedHost(toward.transport) ?? local?.address ?? '127.0.0.1';
    const port = local?.port ?? 5060;
    return `sip:voicemail@${formatHostPort(host, port)}${toward.transport === 'tcp' ? ';transport=tcp' : ''}`;
  }

  // ---- NOTIFY ----------------------------------------------------------------

  /** The state of one mailbox to every subscribed and (unsolicited) registered phone of it. */
  async notifyMailbox(mailbox: string): Promise<void> {
    if (!this.#deps.hasMailbox(mailbox)) return;
    const subs = [...this.#subs.values()].filter((s) => s.mailbox === mailbox);
    const unsolicited = this.#deps.settings.unsolicited ? this.#deps.bindings(mailbox) : [];
    // Every phone of the mailbox at once: one that does not answer must not hold up the others.
    await Promise.all([...subs.map((s) => this.#notify(s)), ...unsolicited.map((b) => this.#notifyUnsolicitedIfUnsubscribed(mailbox, b))]);
  }

  async #onRegistration(extension: string, contact: string): Promise<void> {
    if (!this.#deps.hasMailbox(extension)) return;
    const binding = this.#deps.bindings(extension).find((b) => b.contact === contact);
    if (binding === undefined) return;
    const flow = endpointOfSource(binding.source);
    const subs = [...this.#subs.values()].filter((s) => s.mailbox === extension && flow !== undefined && s.dialog.flow !== undefined && sameFlow(s.dialog.flow, flow));
    if (subs.length > 0) {
      await Promise.all(subs.map((s) => this.#notify(s)));
      return;
    }
    if (!this.#deps.settings.unsolicited) return;
    // Not at once (UNSOLICITED_AFTER_REGISTER_MS): the phone may be about to subscribe.
    // A later REGISTER of the same contact restarts the wait.
    const key = `${extension} ${contact}`;
    clearTimeout(this.#afterRegister.get(key));
    const timer = setTimeout(() => {
      this.#afterRegister.delete(key);
      // Still registered (the binding of the moment: source and contact may have changed)?
      const current = this.#deps.bindings(extension).find((b) => b.contact === contact);
      if (current !== undefined) void this.#notifyUnsolicitedIfUnsubscribed(extension, current);
    }, UNSOLICITED_AFTER_REGISTER_MS);
    timer.unref();
    this.#afterRegister.set(key, timer);
  }

  #subscribedFrom(mailbox: string, flow: Endpoint): boolean {
    return [...this.#subs.values()].some((s) => s.mailbox === mailbox && s.dialog.flow !== undefined && sameFlow(s.dialog.flow, flow));
  }

  async #notifyUnsolicitedIfUnsubscribed(mailbox: string, binding: Binding): Promise<void> {
    const flow = endpointOfSource(binding.source);
    if (flow === undefined) return;
    if (!this.#subscribedFrom(mailbox, flow)) await this.#notifyUnsolicited(mailbox, binding);
  }

  #account(mailbox: string): string {
    return `sip:${mailbox}@${this.#deps.domain}`;
  }

  /**
   * One NOTIFY at a time per subscription (RFC 6665 §4.2.2: not before the previous
   * one has its final response or timed out), so the phone never sees an older count
   * after a newer one. Changes meanwhile coalesce into one more NOTIFY, with the counts
   * read when it is sent; a Subscription-State asked for (terminated) is kept.
   */
  #notify(sub: Subscription, state?: string): Promise<void> {
    const id = sub.dialog.id;
    const queued = this.#sending.get(id);
    if (queued !== undefined) {
      queued.again = true;
      if (state !== undefined) queued.state = state;
      return queued.done;
    }
    const entry: { again: boolean; state: string | undefined; done: Promise<void> } = { again: false, state, done: Promise.resolve() };
    this.#sending.set(id, entry);
    entry.done = (async () => {
      try {
        do {
          entry.again = false;
          const next = entry.state;
          entry.state = undefined;
          await this.#notifyInDialog(sub, next);
        } while (entry.again);
      } finally {
        this.#sending.delete(id);
      }
    })();
    return entry.done;
  }

  async #notifyInDialog(sub: Subscription, state?: string): Promise<void> {
    // A change that queued behind the final NOTIFY of a subscription that has ended.
    if (state === undefined && !this.#subs.has(sub.dialog.id)) return;
    const counts = await this.#deps.counts(sub.mailbox);
    const remaining = Math.max(0, Math.round((sub.expiresAt - Date.now()) / 1000));
    let req: SipRequest;
    let dest: Endpoint;
    try {
      req = sub.dialog.createRequest('NOTIFY', {
        headers: { Event: 'message-summary', 'Subscription-State': state ?? `active;expires=${remaining}` },
        body: messageSummaryBody(this.#account(sub.mailbox), counts),
        contentType: MESSAGE_SUMMARY_TYPE,
      });
      dest = sub.dialog.nextHop();
    } catch (err) {
      this.#deps.logger.warn({ event: 'mwi.notify_failed', mailbox: sub.mailbox, err }, 'MWI NOTIFY could not be built');
      return;
    }
    await this.#send(req, dest, sub.mailbox, (status) => {
      // The phone forgot the subscription (rebooted): drop ours; it will subscribe again.
      if (status === 481) void this.#drop(sub);
    });
  }

  async #notifyUnsolicited(mailbox: string, binding: Binding): Promise<void> {
    const dest = endpointOfSource(binding.source);
    if (dest === undefined) return;
    const counts = await this.#deps.counts(mailbox);
    // The phone may have subscribed while the counts were read: it is told in its dialog.
    if (this.#subscribedFrom(mailbox, dest)) return;
    const account = this.#account(mailbox);
    const req: SipRequest = {
      kind: 'request',
      method: 'NOTIFY',
      uri: binding.contact,
      version: 'SIP/2.0',
      headers: {
        via: [],
        to: { uri: account, params: Object.create(null) },
        from: { uri: account, params: Object.assign(Object.create(null), { tag: newTag() }) },
        'call-id': newCallId(),
        cseq: { seq: 1, method: 'NOTIFY' },
        contact: [{ uri: this.#localContact(dest), params: Object.create(null) }],
        event: 'message-summary',
        'content-type': MESSAGE_SUMMARY_TYPE,
      },
      content: messageSummaryBody(account, counts),
    };
    await this.#send(req, dest, mailbox);
  }

  async #send(req: SipRequest, dest: Endpoint, mailbox: string, onFinal?: (status: number) => void): Promise<void> {
    this.#sent++;
    try {
      const res = await this.#deps.stack.request(req, dest);
      onFinal?.(res.status);
      if (res.status >= 300) this.#deps.logger.debug({ event: 'mwi.notify_refused', mailbox, status: res.status }, 'phone refused an MWI NOTIFY');
    } catch (err) {
      // A phone that went away: Timer F. The registrar will expire it.
      this.#deps.logger.debug({ event: 'mwi.notify_failed', mailbox, err }, 'MWI NOTIFY got no answer');
    }
  }

  async #drop(sub: Subscription): Promise<void> {
    this.#subs.delete(sub.dialog.id);
    sub.dialog.terminate();
    await this.#deps.subscriptions.remove(sub.dialog.id);
  }

  #sweep(): void {
    const now = Date.now();
    for (const sub of this.#subs.values()) {
      if (sub.expiresAt > now) continue;
      this.#subs.delete(sub.dialog.id);
      // RFC 6665 §4.2.2: a subscription that ran out ends with a final NOTIFY.
      void this.#notify(sub, 'terminated;reason=timeout').then(() => {
        sub.dialog.terminate();
        return this.#deps.subscriptions.remove(sub.dialog.id);
      });
    }
  }
}
