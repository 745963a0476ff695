// Session timers (RFC 4028) on the caller's leg: a call whose phone vanished
// without a BYE (power cut, lost network) ends instead of holding a line and a
// call record open forever.
//
//   negotiation  The caller's INVITE may carry Session-Expires (and Min-SE); an
//                interval under our Min-SE is refused with 422 and our Min-SE
//                (§8.1). Otherwise the 2xx carries the interval (the caller's, or
//                ours when it asked for none but supports timers) and who
//                refreshes: the caller when it supports timers (then Require:
//                timer), the agent otherwise (§9).
//   refreshes    A re-INVITE or UPDATE from the caller restarts the interval; its 2xx
//                carries Session-Expires again (§9). An UPDATE without SDP (the
//                usual refresh) is answered here, without troubling the other
//                phone. When the agent refreshes, it sends an UPDATE at half the
//                interval (§10).
//   expiry       No refresh by the interval minus min(32 s, a third of it): both
//                legs get a BYE with Reason "Session expired" (§10).
// Callee legs are not timed: the agent does not offer timers to the phones it calls.

import type { Logger } from 'pino';
import type { CallFeature, DialogInterceptor } from '../call-core.ts';
import type { CallSession } from '../call-session.ts';
import type { EventBus } from '../../events/bus.ts';
import type { IncomingRequest, ResponseExtras } from '../../sip/stack.ts';
import { DialogError } from '../../sip/dialog.ts';
import type { SipRequest } from '../../sip/types.ts';

/** RFC 4028 §4: Min-SE is never below 90 seconds. */
export const RFC_MIN_SE = 90;

export interface SessionTimerSettings {
  /** The interval we ask for when the caller gave none (seconds). */
  sessionExpires: number;
  /** The smallest interval we accept (seconds, ≥ 90). */
  minSE: number;
}

export type Refresher = 'uac' | 'uas';

export interface SessionExpires {
  seconds: number;
  refresher?: Refresher;
}

/** Parses a Session-Expires value ("1800;refresher=uac"); undefined when absent, 'invalid' when malformed. */
export function parseSessionExpires(value: unknown): SessionExpires | undefined | 'invalid' {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return 'invalid';
  const [delta = '', ...params] = value.split(';').map((p) => p.trim());
  if (!/^[0-9]{1,10}$/.test(delta)) return 'invalid';
  const out: SessionExpires = { seconds: Number(delta) };
  for (const p of params) {
    const [name = '', val = ''] = p.split('=').map((x) => x.trim().toLowerCase());
    if (name === 'refresher' && (val === 'uac' || val === 'uas')) out.refresher = val;
  }
  return out;
}

/** Whether a header list (Supported, Require) names an option tag. */
export function hasOptionTag(value: unknown, tag: string): boolean {
  return typeof value === 'string' && value.split(',').some((t) => t.trim().toLowerCase() === tag);
}

export type Negotiation =
  /** 422 Session Interval Too Small, with our Min-SE. */
  | { kind: 'too-small'; minSE: number }
  /** 400: a Session-Expires that does not parse. */
  | { kind: 'invalid' }
  /** No timer on this call: the caller neither asked nor supports one. */
  | { kind: 'none' }
  | { kind: 'timed'; seconds: number; refresher: Refresher; callerSupports: boolean };

/** What the 2xx to a caller's INVITE (or refresh) says, per RFC 4028 §9. */
export function negotiate(req: SipRequest, settings: SessionTimerSettings): Negotiation {
  const requested = parseSessionExpires(req.headers['session-expires']);
  if (requested === 'invalid') return { kind: 'invalid' };
  const callerSupports = hasOptionTag(req.headers['supported'], 'timer') || hasOptionTag(req.headers['require'], 'timer');
  if (requested !== undefined && requested.seconds < settings.minSE) return { kind: 'too-small', minSE: settings.minSE };
  if (requested === undefined && !callerSupports) return { kind: 'none' };
  // The caller's Min-SE raises ours for this call (§9).
  const callerMin = Number.parseInt(String(req.headers['min-se'] ?? ''), 10);
  const floor = Math.max(settings.minSE, Number.isFinite(callerMin) ? callerMin : 0);
  const seconds = Math.max(requested?.seconds ?? settings.sessionExpires, floor);
  // §9: the caller's choice stands; without one, the caller refreshes if it can.
  const refresher: Refresher = requested?.refresher ?? (callerSupports ? 'uac' : 'uas');
  return { kind: 'timed', seconds, refresher: callerSupports ? refresher : 'uas', callerSupports };
}

/** When the side that does not refresh gives up: the interval minus min(32 s, a third of it) (§10). */
export function expiryDelayMs(seconds: number): number {
  return (seconds - Math.min(32, seconds / 3)) * 1000;
}

/** When the refresher refreshes: half the interval (§10). */
export function refreshDelayMs(seconds: number): number {
  return (seconds / 2) * 1000;
}

/** What the feature needs from the core. */
export interface TimerCore {
  interceptDialog(dialogId: string, handler: DialogInterceptor): () => void;
}

function responseHeaders(n: Extract<Negotiation, { kind: 'timed' }>): Record<string, string> {
  return {
    'Session-Expires': `${n.seconds};refresher=${n.refresher}`,
    Supported: 'timer',
    ...(n.callerSupports ? { Require: 'timer' } : {}),
  };
}

/** An IncomingRequest whose 2xx carries `headers` too. */
function with2xxHeaders(incoming: IncomingRequest, headers: Record<string, string>): IncomingRequest {
  return {
    request: incoming.request,
    source: incoming.source,
    respond: (status: number, reason: string, extras?: ResponseExtras) =>
      incoming.respond(status, reason, status >= 200 && status < 300 ? { ...extras, headers: { ...extras?.headers, ...headers } } : extras),
    respondStateless: (status, reason, extras) => incoming.respondStateless(status, reason, extras),
    waitForAck: () => incoming.waitForAck(),
  };
}

/** One timed call: the caller's dialog, its interval, and the timer that ends or refreshes it. */
class TimedCall {
  readonly #session: CallSession;
  readonly #settings: SessionTimerSettings;
  readonly #log: Logger;
  #n: Extract<Negotiation, { kind: 'timed' }>;
  #timer: NodeJS.Timeout | undefined;
  #undoIntercept: (() => void) | undefined;
  #dialogId: string;
  #stopped = false;

  constructor(session: CallSession, n: Extract<Negotiation, { kind: 'timed' }>, settings: SessionTimerSettings, log: Logger) {
    this.#session = session;
    this.#n = n;
    this.#settings = settings;
    this.#log = log;
    this.#dialogId = session.a.dialog.id;
  }

  arm(core: TimerCore): void {
    this.#dialogId = this.#session.a.dialog.id;
    this.#undoIntercept = core.interceptDialog(this.#dialogId, (incoming, next) => this.#inDialog(incoming, next));
    this.#schedule();
    this.#log.info({ event: 'call.session_timer', seconds: this.#n.seconds, refresher: this.#n.refresher }, `session timer ${this.#n.seconds} s, refreshed by the ${this.#n.refresher === 'uac' ? 'caller' : 'agent'}`);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#undoIntercept?.();
  }

  /** A transfer gave the caller's place to someone else: this timer was about the old dialog. */
  #stale(): boolean {
    if (this.#session.a.dialog.id === this.#dialogId && this.#session.call.state === 'answered') return false;
    this.stop();
    return true;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#stopped) return;
    if (this.#n.refresher === 'uas') {
      this.#timer = setTimeout(() => void this.#refresh(), refreshDelayMs(this.#n.seconds));
    } else {
      this.#timer = setTimeout(() => void this.#expire(), expiryDelayMs(this.#n.seconds));
    }
  }

  async #expire(): Promise<void> {
    if (this.#stale()) return;
    this.#log.info({ event: 'call.session_expired', seconds: this.#n.seconds }, 'no session refresh from the caller: hanging up');
    this.stop();
    await this.#session.hangup('system', 'Session expired');
  }

  /** The agent refreshes: an UPDATE without SDP (RFC 4028 §10 prefers UPDATE). */
  async #refresh(): Promise<void> {
    if (this.#stale()) return;
    try {
      const res = await this.#session.a.send('UPDATE', { headers: { 'Session-Expires': `${this.#n.seconds};refresher=uas`, Supported: 'timer' } });
      if (res.status >= 200 && res.status < 300) {
        this.#schedule();
        return;
      }
      if (res.status === 405 || res.status === 501) {
        // The phone takes no UPDATE: it cannot be refreshed, so it is not timed (never cut off a working call).
        this.#log.info({ status: res.status }, 'caller refuses UPDATE: session timer off for this call');
        this.stop();
        return;
      }
      this.#log.info({ status: res.status }, 'session refresh refused: hanging up');
    } catch (err) {
      this.#log.info({ err: (err as Error).message }, 'session refresh not answered: hanging up');
    }
    this.stop();
    await this.#session.hangup('system', 'Session expired');
  }

  /** The caller's requests in its dialog while the timer runs; `next` takes the rest. */
  #inDialog(incoming: IncomingRequest, next: (incoming: IncomingRequest) => void): void {
    const req = incoming.request;
    if (this.#stale() || (req.method !== 'INVITE' && req.method !== 'UPDATE')) {
      next(incoming);
      return;
    }
    const n = negotiate(req, this.#settings);
    if (n.kind === 'too-small') {
      incoming.respond(422, 'Session Interval Too Small', { headers: { 'Min-SE': String(n.minSE) } });
      return;
    }
    // A refresh without Session-Expires keeps the interval we had (§9).
    if (n.kind === 'timed' && req.headers['session-expires'] !== undefined) this.#n = n;
    const headers = responseHeaders(this.#n);
    if (req.method === 'UPDATE' && req.content === '') {
      // A pure refresh: nothing for the other phone to answer.
      try {
        this.#session.a.dialog.receiveRequest(req);
      } catch (err) {
        if (!(err instanceof DialogError)) throw err;
        incoming.respond(err.status, err.status === 500 ? 'Server Internal Error' : 'Call/Transaction Does Not Exist');
        return;
      }
      incoming.respond(200, 'OK', { headers: { ...headers, Contact: `<${this.#session.a.dialog.localContact}>` } });
      this.#schedule();
      return;
    }
    // With SDP (or a re-INVITE): the call handles the offer; its 2xx says the interval too.
    this.#schedule();
    next(with2xxHeaders(incoming, headers));
  }
}

export class SessionTimers implements CallFeature {
  readonly #settings: SessionTimerSettings;
  readonly #core: TimerCore;
  readonly #bus: EventBus;

  constructor(settings: SessionTimerSettings, core: TimerCore, bus: EventBus) {
    if (settings.minSE < RFC_MIN_SE) throw new RangeError(`Min-SE ${settings.minSE} is below RFC 4028's 90 seconds`);
    this.#settings = { minSE: settings.minSE, sessionExpires: Math.max(settings.sessionExpires, settings.minSE) };
    this.#core = core;
    this.#bus = bus;
  }

  /** 422 for an interval under our Min-SE, 400 for one that does not parse. */
  screen(incoming: IncomingRequest, toTag: string): boolean {
    const n = negotiate(incoming.request, this.#settings);
    if (n.kind === 'too-small') {
      incoming.respond(422, 'Session Interval Too Small', { toTag, headers: { 'Min-SE': String(n.minSE) } });
      return true;
    }
    if (n.kind === 'invalid') {
      incoming.respond(400, 'Bad Request (Session-Expires)', { toTag });
      return true;
    }
    return false;
  }

  started(session: CallSession): void {
    const n = negotiate(session.a.incoming.request, this.#settings);
    if (n.kind !== 'timed') return;
    session.a.answerHeaders = { ...session.a.answerHeaders, ...responseHeaders(n) };
    const timed = new TimedCall(session, n, this.#settings, session.log);
    // Armed once answered; stopped when the call ends however it ends.
    const off = this.#bus.on('call.state', (e) => {
      if (e.id !== session.call.id) return;
      if (e.state === 'answered') timed.arm(this.#core);
      if (e.state === 'answered' || e.state === 'ended') off();
    });
    session.onEnd(() => {
      off();
      timed.stop();
    });
  }
}
