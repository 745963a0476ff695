// The one call model (docs/calls.md): a call is a set of legs and a mode, with one
// state machine that every feature acts through. Legs are numbered 'a' (the
// caller's) then 'b1', 'b2'... in creation order; the record and the events name
// them that way. The state machine refuses transitions that make no sense (an
// ended call cannot ring again), so a feature bug shows up as a logged error
// rather than a call in an impossible state.

import { randomUUID } from 'node:crypto';
import type { CallDisposition, CallLegRecord, CallMode, CallRecord } from './call-record.ts';
import type { MediaPolicyName } from '../config/types.ts';

/**
 * routing: the INVITE is being authenticated and routed; ringing: a callee rings
 * (180); early: early media flows (183 with SDP); answered: bridged or in an
 * application; ended: over, the record is written.
 */
export type CallState = 'routing' | 'ringing' | 'early' | 'answered' | 'ended';

const TRANSITIONS: Readonly<Record<CallState, readonly CallState[]>> = {
  routing: ['ringing', 'early', 'answered', 'ended'],
  // back to routing: the dial plan sends the call on (forward on busy/no answer).
  ringing: ['early', 'answered', 'routing', 'ended'],
  early: ['ringing', 'answered', 'routing', 'ended'],
  answered: ['ended'],
  ended: [],
};

export type LegKind = CallLegRecord['kind'];
export type EndedBy = NonNullable<CallLegRecord['endedBy']>;

/** What the call knows of each leg, whatever carries it (SIP dialog, channel, app). */
export interface LegInfo {
  readonly id: string;
  readonly kind: LegKind;
  readonly direction: 'inbound' | 'outbound';
  /** The extension, number or channel the leg reached. */
  readonly party: string;
  readonly callId?: string;
  readonly startedAt: number;
  answeredAt?: number;
  endedAt?: number;
  status?: number;
  endedBy?: EndedBy;
}

export class CallStateError extends Error {
  readonly code = 'ECALLSTATE';
}

export interface CallChange {
  call: Call;
  state: CallState;
  previous: CallState;
  /** Why, in a few words ("180 from 1002", "caller hung up"). */
  reason: string;
}

export interface CallInit {
  siteId: string;
  caller: string;
  callerName?: string;
  dialed: string;
  mediaPolicy: MediaPolicyName;
  onChange: (change: CallChange) => void;
  now?: () => number;
}

export class Call {
  readonly id = randomUUID();
  readonly siteId: string;
  readonly caller: string;
  readonly callerName: string | undefined;
  readonly dialed: string;
  readonly startedAt: number;
  mediaPolicy: MediaPolicyName;
  emergency = false;
  answeredBy: string | undefined;
  answeredAt: number | undefined;
  endedAt: number | undefined;
  disposition: CallDisposition | undefined;
  finalStatus: number | undefined;
  reason: string | undefined;
  readonly #legs = new Map<string, LegInfo>();
  readonly #onChange: (change: CallChange) => void;
  readonly #now: () => number;
  #state: CallState = 'routing';
  #mode: CallMode = 'bridged';
  #modeSince: number;
  readonly #modeDurations: Record<CallMode, number> = { bridged: 0, application: 0 };
  #outboundLegs = 0;

  constructor(init: CallInit) {
    this.siteId = init.siteId;
    this.caller = init.caller;
    this.callerName = init.callerName;
    this.dialed = init.dialed;
    this.mediaPolicy = init.mediaPolicy;
    this.#onChange = init.onChange;
    this.#now = init.now ?? Date.now;
    this.startedAt = this.#now();
    this.#modeSince = this.startedAt;
  }

  get state(): CallState {
    return this.#state;
  }

  get mode(): CallMode {
    return this.#mode;
  }

  get legs(): readonly LegInfo[] {
    return [...this.#legs.values()];
  }

  leg(id: string): LegInfo | undefined {
    return this.#legs.get(id);
  }

  /** Adds the caller's leg ('a') or a new outbound one ('b1', 'b2'...). */
  addLeg(leg: Omit<LegInfo, 'id' | 'startedAt'>): LegInfo {
    const id = leg.direction === 'inbound' && !this.#legs.has('a') ? 'a' : `b${++this.#outboundLegs}`;
    const info: LegInfo = { ...leg, id, startedAt: this.#now() };
    this.#legs.set(id, info);
    return info;
  }

  legAnswered(id: string): void {
    const leg = this.#legs.get(id);
    if (leg !== undefined && leg.answeredAt === undefined) {
      leg.answeredAt = this.#now();
      leg.status = 200;
    }
  }

  legEnded(id: string, status: number | undefined, endedBy: EndedBy | undefined): void {
    const leg = this.#legs.get(id);
    if (leg === undefined || leg.endedAt !== undefined) return;
    leg.endedAt = this.#now();
    if (status !== undefined && leg.status === undefined) leg.status = status;
    if (endedBy !== undefined) leg.endedBy = endedBy;
  }

  /** Moves the state machine; throws CallStateError on a transition it does not allow. */
  transition(next: CallState, reason: string): void {
    const previous = this.#state;
    if (previous === next) return;
    if (!TRANSITIONS[previous].includes(next)) throw new CallStateError(`call ${this.id}: ${previous} → ${next} is not allowed (${reason})`);
    this.#state = next;
    const now = this.#now();
    if (next === 'answered') this.answeredAt ??= now;
    if (next === 'ended') {
      this.endedAt = now;
      this.#accountMode(now);
      for (const leg of this.#legs.values()) if (leg.endedAt === undefined) leg.endedAt = now;
    }
    this.#onChange({ call: this, state: next, previous, reason });
  }

  /** Bridged (two parties talk) or application-controlled (voicemail, IVR, prompts). */
  setMode(mode: CallMode): void {
    if (mode === this.#mode || this.#state === 'ended') return;
    this.#accountMode(this.#now());
    this.#mode = mode;
  }

  /** Ends the call with its outcome; a second call is ignored. */
  end(disposition: CallDisposition, reason: string, finalStatus?: number): boolean {
    if (this.#state === 'ended') return false;
    this.disposition = disposition;
    this.reason = reason;
    if (finalStatus !== undefined) this.finalStatus = finalStatus;
    this.transition('ended', reason);
    return true;
  }

  toRecord(): CallRecord {
    const endedAt = this.endedAt ?? this.#now();
    const record: CallRecord = {
      id: this.id,
      siteId: this.siteId,
      caller: this.caller,
      dialed: this.dialed,
      startedAt: this.startedAt,
      endedAt,
      disposition: this.disposition ?? 'failed',
      emergency: this.emergency,
      modeDurations: { ...this.#modeDurations },
      mediaPolicy: this.mediaPolicy,
      legs: this.legs.map((l) => {
        const leg: CallLegRecord = { leg: l.id, direction: l.direction, kind: l.kind, party: l.party, startedAt: l.startedAt, endedAt: l.endedAt ?? endedAt };
        if (l.callId !== undefined) leg.callId = l.callId;
        if (l.answeredAt !== undefined) leg.answeredAt = l.answeredAt;
        if (l.status !== undefined) leg.status = l.status;
        if (l.endedBy !== undefined) leg.endedBy = l.endedBy;
        return leg;
      }),
    };
    if (this.callerName !== undefined && this.callerName !== '') record.callerName = this.callerName;
    if (this.answeredBy !== undefined) record.answeredBy = this.answeredBy;
    if (this.answeredAt !== undefined) record.answeredAt = this.answeredAt;
    if (this.finalStatus !== undefined) record.finalStatus = this.finalStatus;
    if (this.reason !== undefined && this.reason !== '') record.reason = this.reason;
    return record;
  }

  #accountMode(now: number): void {
    // Mode time counts from answer: ringing is neither bridged talk nor an application.
    const from = Math.max(this.#modeSince, this.answeredAt ?? now);
    if (this.answeredAt !== undefined && now > from) this.#modeDurations[this.#mode] += now - from;
    this.#modeSince = now;
  }
}
