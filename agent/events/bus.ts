import type { Logger } from 'pino';
import type { CallRecord } from '../calls/call-record.ts';

/** Every event the agent publishes, by name, with its payload. */
export interface AgentEvents {
  'registration.added': { extension: string; contact: string; expiresAt: number; source: string; userAgent?: string };
  'registration.refreshed': { extension: string; contact: string; expiresAt: number; source: string; userAgent?: string };
  'registration.removed': { extension: string; contact: string; reason: 'unregistered' | 'expired' | 'replaced' };
  'security.lockout': { source: string; failures: number; until: number; extension?: string };
  'security.scanner': { source: string; userAgent: string };
  // agent/sync and agent/health (docs/sync.md).
  'sync.link': { state: 'up' | 'down'; url: string; reason?: string };
  'sync.controller': { state: 'online' | 'offline' | 'unknown' };
  'sync.config': { version: number; config: Record<string, unknown> };
  'health.mode': { mode: 'normal' | 'survivable'; reason: string; since: number };
  // agent/calls (docs/calls.md): every state change of a call, then its record.
  'call.state': {
    id: string;
    state: 'routing' | 'ringing' | 'early' | 'answered' | 'ended';
    /** Undefined for the first event of a call. */
    previous?: 'routing' | 'ringing' | 'early' | 'answered' | 'ended';
    reason: string;
    at: number;
    caller: string;
    dialed: string;
    answeredBy?: string;
  };
  'call.ended': { record: CallRecord };
  // agent/voicemail (docs/voicemail.md). `file` is absolute; durationMs as stored.
  'voicemail.deposited': { mailbox: string; messageId: string; caller: string; callerName?: string; reason: string; receivedAt: number; durationMs: number; file: string };
  /** A mailbox's counts changed (deposit, listen, save, delete): what the lamp shows. */
  'voicemail.counts': { mailbox: string; newMessages: number; oldMessages: number };
  // agent/trunks (docs/trunks.md). A span alarm takes its channels out of service.
  'trunk.alarm': { card: string; span: number; alarm: string; active: boolean; detail?: string };
  /** An emergency call took the channel of `victim`, which was released with `cause` (8). */
  'trunk.preempted': { channel: string; victim?: string; victimTenant: string; by?: string; cause: number };
}

export type EventName = keyof AgentEvents;
type Listener<K extends EventName> = (payload: AgentEvents[K]) => void;

/**
 * In-process, synchronous, typed. A listener that throws is logged and skipped so
 * one subscriber can never break another or the publisher.
 */
export class EventBus {
  readonly #listeners = new Map<EventName, Set<(payload: never) => void>>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  on<K extends EventName>(name: K, listener: Listener<K>): () => void {
    let set = this.#listeners.get(name);
    if (!set) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener as (payload: never) => void);
    return () => set.delete(listener as (payload: never) => void);
  }

  emit<K extends EventName>(name: K, payload: AgentEvents[K]): void {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as Listener<K>)(payload);
      } catch (err) {
        this.#logger.error({ err, event: name }, 'event listener failed');
      }
    }
  }

  listenerCount(name: EventName): number {
    return this.#listeners.get(name)?.size ?? 0;
  }
}
