// The trunks subsystem on the line: it pools the started cards' channels into trunk
// groups, keeps the allocator in step with the lines (a call's release frees its
// channel; an alarm takes a span's channels out of service), hands inbound calls to
// the call core with their DID target, and carries outbound calls: a channel from
// the router, seize and dial, and on congestion or a dead span the next trunk group.

import type { Logger } from 'pino';
import { causeText } from '../../drivers/q850.ts';
import { channelKey, LineCardError, type CallerId, type ChannelRef, type ChannelState, type IncomingCall, type LineCard, type ReleaseEvent } from '../../drivers/types.ts';
import type { EventBus } from '../events/bus.ts';
import type { Database } from '../store/db.ts';
import { ChannelAllocator, type ChannelGrant, type Preemption } from './channel-allocator.ts';
import { systemClock, type TrunkClock } from './clock.ts';
import { Cause, FAILOVER_CAUSES, TrunkError } from './errors.ts';
import type { DidTarget, OutgoingCallerId, PlannedChannel, TrunkPlan } from './plan.ts';
import { TrunkRouter, type ExternalCallRequest, type TrunkCandidate } from './router.ts';
import { UsageRecorder } from './usage-stats.ts';
import { UsagePersister } from './usage-store.ts';

export interface TrunkServiceOptions {
  plan: TrunkPlan;
  /** Started cards (their spans must be known). */
  cards: readonly LineCard[];
  logger: Logger;
  clock?: TrunkClock;
  /** Where hourly usage is written (migration 5); without it usage stays in memory. */
  db?: Database;
  /** Gets trunk.alarm and trunk.preempted. */
  bus?: EventBus;
}

/** An inbound call the trunks accepted: the call core rings `target`, then answers or releases. */
export interface InboundTrunkCall {
  grant: ChannelGrant;
  card: LineCard;
  channel: ChannelRef;
  callerId: CallerId;
  dialled: string;
  target: DidTarget;
  tenant: string;
  answer(): Promise<void>;
  release(cause?: number): Promise<void>;
}

/** An outbound call on a line: dialled, and ringing, answered or still in progress. */
export interface OutboundTrunkCall {
  grant: ChannelGrant;
  card: LineCard;
  channel: ChannelRef;
  group: string;
  dialled: string;
  callerId: OutgoingCallerId;
  /** Where the call stood when it was handed on; later changes arrive as card events. */
  state: 'seized' | 'alerting' | 'connected';
  /** Trunk groups that failed before this one, with their causes. */
  failedOver: Array<{ group: string; cause: number }>;
  release(cause?: number): Promise<void>;
}

interface Line {
  planned: PlannedChannel;
  card: LineCard;
  ref: ChannelRef;
}

type DialOutcome = { ok: true; state: OutboundTrunkCall['state'] } | { ok: false; cause: number; detail: string };

/** LineCardError codes that mean "this line, not the number": try the next group. */
const LINE_FAULT_CAUSE: Readonly<Partial<Record<string, number>>> = {
  EOUTOFSERVICE: Cause.NETWORK_OUT_OF_ORDER,
  EBUSY: Cause.REQUESTED_CHANNEL_NOT_AVAILABLE,
  EDEVICE: Cause.NETWORK_OUT_OF_ORDER,
  ETIMEOUT: 102,
  ENOTSTARTED: Cause.NETWORK_OUT_OF_ORDER,
  ERELEASED: Cause.TEMPORARY_FAILURE,
};

export class TrunkService {
  readonly #plan: TrunkPlan;
  readonly #cards: readonly LineCard[];
  readonly #logger: Logger;
  readonly #clock: TrunkClock;
  readonly #db: Database | undefined;
  readonly #bus: EventBus | undefined;
  readonly #usage = new UsageRecorder();
  #allocator: ChannelAllocator | undefined;
  #router: TrunkRouter | undefined;
  #persister: UsagePersister | undefined;
  readonly #lines = new Map<string, Line>();
  /** The grant holding each channel on the line, by channel id. */
  readonly #grants = new Map<string, ChannelGrant>();
  /** Pre-empted calls being cleared, by channel id: the emergency call dials once the line is idle. */
  readonly #clearing = new Map<string, Promise<void>>();
  readonly #unsubscribe: Array<() => void> = [];
  #inbound: ((call: InboundTrunkCall) => void) | undefined;

  constructor(options: TrunkServiceOptions) {
    this.#plan = options.plan;
    this.#cards = options.cards;
    this.#logger = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#db = options.db;
    this.#bus = options.bus;
  }

  /** Builds the channel pool from the cards and starts following them. Throws on a trunk the cards cannot carry. */
  start(): void {
    if (this.#allocator) return;
    const byName = new Map(this.#cards.map((c) => [c.name, c]));
    const spans = new Map(this.#cards.map((c) => [c.name, c.spans().map((s) => ({ span: s.span, channels: s.channels }))]));
    const planned = this.#plan.channels(spans);
    const { tenants, otherTenants } = this.#plan.tenantPolicies();
    const allocator = new ChannelAllocator({
      channels: planned,
      tenants,
      otherTenants,
      maxWaitMs: this.#plan.maxWaitMs,
      retryAfterSec: this.#plan.retryAfterSec,
      clock: this.#clock,
      usage: this.#usage,
    });
    for (const p of planned) {
      const card = byName.get(p.card) as LineCard;
      const ref = { span: p.span, channel: p.channel };
      this.#lines.set(p.id, { planned: p, card, ref });
      if (card.channelState(ref) === 'out-of-service') allocator.setInService(p.id, false);
    }
    this.#allocator = allocator;
    this.#router = new TrunkRouter(this.#plan, allocator);
    this.#unsubscribe.push(allocator.onPreempt((p) => this.#preempt(p)));
    for (const card of this.#cards) this.#follow(card);
    if (this.#db) {
      this.#persister = new UsagePersister({
        db: this.#db,
        recorder: this.#usage,
        clock: this.#clock,
        intervalMs: this.#plan.usageFlushMs,
        onError: (err) => this.#logger.warn({ err }, 'trunk usage statistics not written; kept for the next write'),
      });
      this.#persister.start();
    }
    this.#logger.info({ channels: planned.length, groups: this.#plan.groups.map((g) => g.name) }, 'trunks started');
  }

  /** Stops following the cards and refuses queued calls; calls on the lines are left to their owners. */
  async stop(): Promise<void> {
    for (const off of this.#unsubscribe.splice(0)) off();
    this.#allocator?.cancelAll('the trunks are stopping');
    await this.#persister?.stop();
  }

  /** Who takes accepted inbound calls (the call core). Without one, inbound calls are refused. */
  onInbound(handler: (call: InboundTrunkCall) => void): void {
    this.#inbound = handler;
  }

  get allocator(): ChannelAllocator {
    if (!this.#allocator) throw new Error('the trunks are not started');
    return this.#allocator;
  }

  get router(): TrunkRouter {
    if (!this.#router) throw new Error('the trunks are not started');
    return this.#router;
  }

  /** Writes the usage gathered so far (also done every trunking.usage_flush seconds). */
  async flushUsage(): Promise<void> {
    await this.#persister?.flush();
  }

  /**
   * Carries an external call out: route, channel (possibly after a fair wait), seize
   * and dial. A trunk group whose line reports congestion or is out of order is
   * left for the next. Resolves once the far end rings, answers, or has not refused
   * within trunking.progress_timeout; rejects with a TrunkError (its sipStatus,
   * retryAfterSec and q850 say what to tell the caller).
   */
  async dialOut(request: ExternalCallRequest): Promise<OutboundTrunkCall> {
    const router = this.router;
    const routed = router.route(request);
    const failed: Array<{ group: string; cause: number }> = [];
    const excluded = new Set<string>();
    let lastFailure: TrunkError | undefined;
    for (;;) {
      const { grant, candidate } = await router.acquire(request, routed, excluded, lastFailure);
      const line = this.#lines.get(grant.channel) as Line;
      const log = this.#logger.child({ call: request.callRef, channel: grant.channel, group: grant.group, tenant: grant.tenant });
      if (grant.preempted) await this.#clearing.get(grant.channel);
      this.#grants.set(grant.channel, grant);
      const outcome = await this.#dial(line, candidate, request.signal);
      if (outcome.ok) {
        log.info({ dialled: candidate.dialled, state: outcome.state, waitedMs: grant.waitedMs, emergency: grant.emergency }, 'outbound call on the line');
        return {
          grant,
          card: line.card,
          channel: line.ref,
          group: grant.group,
          dialled: candidate.dialled,
          callerId: candidate.callerId,
          state: outcome.state,
          failedOver: failed,
          release: (cause = 16) => line.card.release(line.ref, cause),
        };
      }
      this.#freeWhenIdle(grant, line);
      if (request.signal?.aborted) throw new TrunkError('ECANCELLED', 'the caller gave up while the number was being dialled', { tenant: grant.tenant });
      if (!FAILOVER_CAUSES.has(outcome.cause)) {
        log.info({ cause: outcome.cause, detail: outcome.detail }, 'outbound call refused by the far end');
        throw new TrunkError('EREJECTED', `${candidate.dialled} via ${grant.group}: ${outcome.detail}`, { tenant: grant.tenant, q850: outcome.cause });
      }
      log.warn({ cause: outcome.cause, detail: outcome.detail }, 'trunk group failed; trying the next');
      failed.push({ group: grant.group, cause: outcome.cause });
      excluded.add(grant.group);
      lastFailure = new TrunkError('ECONGESTION', `every trunk group failed; last ${grant.group}: ${outcome.detail}`, {
        tenant: grant.tenant,
        retryAfterSec: this.#plan.retryAfterSec,
      });
    }
  }

  #follow(card: LineCard): void {
    const onIncoming = (call: IncomingCall): void => this.#onIncoming(card, call);
    // A channel goes back to the pool when its line is idle again, not at the release
    // event: until then it is still clearing and could not be seized.
    const onState = (event: { channel: ChannelRef; state: ChannelState; previous: ChannelState }): void => {
      const id = this.#id(card, event.channel);
      if (!this.#lines.has(id)) return;
      if (event.state === 'out-of-service' || event.previous === 'out-of-service') this.allocator.setInService(id, event.state !== 'out-of-service');
      const grant = this.#grants.get(id);
      if (grant && (event.state === 'idle' || event.state === 'out-of-service')) this.#free(grant);
    };
    const onAlarm = (event: { span: number; alarm: string; detail?: string }): void => {
      this.#logger.warn({ card: card.name, span: event.span, alarm: event.alarm, detail: event.detail }, 'span alarm: its channels are out of service');
      this.#bus?.emit('trunk.alarm', { card: card.name, span: event.span, alarm: event.alarm, active: true, ...(event.detail !== undefined ? { detail: event.detail } : {}) });
    };
    const onAlarmCleared = (event: { span: number; alarm: string; detail?: string }): void => {
      this.#logger.info({ card: card.name, span: event.span, alarm: event.alarm }, 'span alarm cleared');
      this.#bus?.emit('trunk.alarm', { card: card.name, span: event.span, alarm: event.alarm, active: false, ...(event.detail !== undefined ? { detail: event.detail } : {}) });
    };
    card.on('incoming', onIncoming);
    card.on('state', onState);
    card.on('alarm', onAlarm);
    card.on('alarm-cleared', onAlarmCleared);
    this.#unsubscribe.push(() => {
      card.off('incoming', onIncoming);
      card.off('state', onState);
      card.off('alarm', onAlarm);
      card.off('alarm-cleared', onAlarmCleared);
    });
  }

  #onIncoming(card: LineCard, call: IncomingCall): void {
    const id = this.#id(card, call.channel);
    const log = this.#logger.child({ channel: id, dialled: call.dialled, from: call.callerId.number });
    const refuse = (cause: number, why: string): void => {
      log.info({ cause }, `inbound call refused: ${why}`);
      card.release(call.channel, cause).catch((err: unknown) => log.warn({ err }, 'could not release a refused inbound call'));
    };
    if (!this.#lines.has(id)) return refuse(Cause.REQUESTED_CHANNEL_NOT_AVAILABLE, 'the channel is in no trunk group');
    const did = this.#plan.inbound(call.dialled);
    if (!did) return refuse(Cause.UNALLOCATED_NUMBER, `no DID ${call.dialled}`);
    if (!this.#inbound) return refuse(Cause.NO_ROUTE_TO_DESTINATION, 'nothing takes inbound calls');
    let grant: ChannelGrant;
    try {
      grant = this.allocator.acquireInbound({ channel: id, tenant: did.tenant, callRef: `in:${id}` });
    } catch (err) {
      if (!(err instanceof TrunkError)) throw err;
      return refuse(err.q850, err.message);
    }
    this.#grants.set(id, grant);
    log.info({ tenant: did.tenant, target: did.target }, 'inbound call');
    this.#inbound({
      grant,
      card,
      channel: call.channel,
      callerId: call.callerId,
      dialled: call.dialled,
      target: did.target,
      tenant: did.tenant,
      answer: () => card.answer(call.channel),
      release: (cause = 16) => card.release(call.channel, cause),
    });
  }

  #preempt(p: Preemption): void {
    const line = this.#lines.get(p.victim.channel);
    if (!line) return;
    if (this.#grants.get(p.victim.channel) === p.victim) this.#grants.delete(p.victim.channel);
    this.#logger.warn({ channel: p.victim.channel, victim: p.victim.callRef, tenant: p.victim.tenant, by: p.by.callRef, cause: p.cause }, p.reason);
    this.#bus?.emit('trunk.preempted', {
      channel: p.victim.channel,
      victimTenant: p.victim.tenant,
      cause: p.cause,
      ...(p.victim.callRef !== undefined ? { victim: p.victim.callRef } : {}),
      ...(p.by.callRef !== undefined ? { by: p.by.callRef } : {}),
    });
    const clearing = line.card.release(line.ref, p.cause).catch((err: unknown) => {
      this.#logger.error({ err, channel: p.victim.channel }, 'could not clear a pre-empted call');
    });
    this.#clearing.set(p.victim.channel, clearing);
    void clearing.then(() => {
      if (this.#clearing.get(p.victim.channel) === clearing) this.#clearing.delete(p.victim.channel);
    });
  }

  /**
   * Seizes and dials, then waits for the first sign of how it went: ringing or answer
   * (success), a release (its cause), or nothing within the progress timeout
   * (success: some lines never signal ringing).
   */
  #dial(line: Line, candidate: TrunkCandidate, signal: AbortSignal | undefined): Promise<DialOutcome> {
    const { card, ref } = line;
    const same = (c: ChannelRef): boolean => c.span === ref.span && c.channel === ref.channel;
    return new Promise<DialOutcome>((resolve) => {
      let done = false;
      let cancelTimer = (): void => undefined;
      const finish = (outcome: DialOutcome): void => {
        if (done) return;
        done = true;
        cancelTimer();
        card.off('alerting', onAlerting);
        card.off('answer', onAnswer);
        card.off('release', onRelease);
        signal?.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAlerting = (e: { channel: ChannelRef }): void => {
        if (same(e.channel)) finish({ ok: true, state: 'alerting' });
      };
      const onAnswer = (e: { channel: ChannelRef }): void => {
        if (same(e.channel)) finish({ ok: true, state: 'connected' });
      };
      const onRelease = (e: ReleaseEvent): void => {
        if (same(e.channel)) finish({ ok: false, cause: e.cause, detail: `released by ${e.by} with cause ${e.cause} (${causeText(e.cause)})` });
      };
      const onAbort = (): void => {
        void card.release(ref, 16).catch(() => undefined);
        finish({ ok: false, cause: 16, detail: 'the caller gave up' });
      };
      card.on('alerting', onAlerting);
      card.on('answer', onAnswer);
      card.on('release', onRelease);
      signal?.addEventListener('abort', onAbort, { once: true });
      const callerId: CallerId = { presentation: candidate.callerId.presentation, ...(candidate.callerId.number !== undefined ? { number: candidate.callerId.number } : {}), ...(candidate.callerId.name !== undefined ? { name: candidate.callerId.name } : {}) };
      card.dial(ref, { number: candidate.dialled, callerId }).then(
        () => {
          if (!done) cancelTimer = this.#clock.setTimer(this.#plan.progressTimeoutMs, () => finish({ ok: true, state: 'seized' }));
        },
        (err: unknown) => {
          // The card emits the release (with the network's cause) before rejecting
          // when the call got onto the line; otherwise the error code says why.
          const code = err instanceof LineCardError ? err.code : 'EDEVICE';
          const cause = LINE_FAULT_CAUSE[code] ?? 28; // EARGUMENT and the like: the number itself
          finish({ ok: false, cause, detail: (err as Error).message });
        },
      );
    });
  }

  /** Frees the grant now if its line is idle, else when the line's state event says it is. */
  #freeWhenIdle(grant: ChannelGrant, line: Line): void {
    const state = line.card.channelState(line.ref);
    if (state === 'idle' || state === 'out-of-service') this.#free(grant);
    else this.#grants.set(grant.channel, grant);
  }

  #free(grant: ChannelGrant): void {
    if (this.#grants.get(grant.channel) === grant) this.#grants.delete(grant.channel);
    this.#allocator?.release(grant);
  }

  #id(card: LineCard, ref: ChannelRef): string {
    return `${card.name}/${channelKey(ref)}`;
  }
}
