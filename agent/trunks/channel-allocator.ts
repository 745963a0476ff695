// The multitenant channel manager at the edge: a fixed number of line-card channels
// shared by the tenants (companies) of one branch. It decides only who may use which
// channel when; seizing, dialling and releasing on the line belong to the router and
// the drivers. Pure and deterministic: time comes from the injected clock, and the
// same sequence of calls always gives the same grants in the same order.
//
// Rules, in the order they are applied:
//  - Emergency calls bypass caps, throttles and the queue. They take an idle
//    outbound-capable channel, and when there is none they pre-empt the newest
//    non-emergency outbound call (failing that, the newest non-emergency inbound call
//    on a bidirectional channel); the pre-empted call's owner is told to release it
//    with Q.850 cause 8 (preemption).
//  - Inbound calls are answered or refused at once, never queued, so they can never
//    wait behind outbound requests. They count against their tenant's cap.
//  - Outbound calls pass the tenant's call-rate throttle (token bucket with a burst
//    allowance) when they are asked for, then wait in a fair queue until a channel in
//    one of their trunk groups is idle and their tenant is under its cap. Waiting
//    tenants are served round robin: after a tenant gets a channel, the next channel
//    goes to the next tenant with a call that can use it, so no tenant can starve
//    another however many calls it queues. Within a tenant, first come first served.
//  - A queued call that waits `maxWaitMs` fails with EQUEUE_TIMEOUT (503, Retry-After).

import type { TrunkClock } from './clock.ts';
import { Cause, TrunkError } from './errors.ts';
import { TokenBucket } from './token-bucket.ts';
import type { CallDirection, UsageSink } from './usage-sink.ts';

/** Which way calls may use a channel. */
export type ChannelDirection = 'inbound' | 'outbound' | 'both';

export interface PooledChannel {
  /** Unique id, e.g. `card1/1/17` (card, span, channel). */
  id: string;
  /** The trunk group the channel belongs to. */
  group: string;
  direction: ChannelDirection;
}

export interface TenantPolicy {
  name: string;
  /** Concurrent channels, both directions together; absent: no cap. */
  maxChannels?: number;
  /** Sustained outbound call attempts per minute; absent: no throttle. */
  callsPerMinute?: number;
  /** Outbound attempts allowed at once above the sustained rate (default 5). */
  burst?: number;
  /** Outbound calls that may wait in the queue at once (default 100). */
  maxQueued?: number;
}

export interface AllocatorOptions {
  channels: readonly PooledChannel[];
  tenants?: readonly TenantPolicy[];
  /** The policy of a tenant not listed in `tenants`. Default: no limits. */
  otherTenants?: Omit<TenantPolicy, 'name'>;
  /** How long an outbound call may wait for a channel; 0 refuses at once when all are busy. */
  maxWaitMs: number;
  /** The Retry-After, in seconds, of a refusal caused by busy channels (default 10). */
  retryAfterSec?: number;
  clock: TrunkClock;
  usage?: UsageSink;
}

export interface OutboundRequest {
  tenant: string;
  /** Trunk groups to take a channel from, in order of preference. */
  groups: readonly string[];
  emergency?: boolean;
  /** The call this channel is for, carried into grants and logs. */
  callRef?: string;
  /** Aborting (the caller hung up) takes the request out of the queue. */
  signal?: AbortSignal;
}

export interface InboundRequest {
  /** The channel the network offered the call on. */
  channel: string;
  tenant: string;
  callRef?: string;
}

export interface ChannelGrant {
  readonly id: number;
  readonly channel: string;
  readonly group: string;
  readonly tenant: string;
  readonly direction: CallDirection;
  readonly emergency: boolean;
  readonly callRef: string | undefined;
  readonly grantedAt: number;
  /** Time spent in the fair queue (0 when a channel was free). */
  readonly waitedMs: number;
  /**
   * Set when this emergency grant took its channel from another call: that call's
   * owner has been told to release it, and the line is free once it has.
   */
  readonly preempted: ChannelGrant | undefined;
}

export interface Preemption {
  /** The call that loses its channel. */
  victim: ChannelGrant;
  /** The emergency call that takes it. */
  by: ChannelGrant;
  /** Q.850 cause to release the victim with. */
  cause: number;
  reason: string;
}

export interface AllocatorSnapshot {
  channels: Array<{ id: string; group: string; direction: ChannelDirection; inService: boolean; grant?: ChannelGrant }>;
  tenants: Array<{ name: string; inUse: number; queued: number }>;
}

interface ChannelState {
  readonly channel: PooledChannel;
  readonly index: number;
  inService: boolean;
  grant: ChannelGrant | undefined;
}

interface Waiter {
  readonly request: OutboundRequest;
  readonly queuedAt: number;
  readonly resolve: (grant: ChannelGrant) => void;
  readonly reject: (err: TrunkError) => void;
  cancelTimer: () => void;
  detachSignal: () => void;
}

interface TenantState {
  readonly name: string;
  readonly policy: Omit<TenantPolicy, 'name'>;
  readonly bucket: TokenBucket | undefined;
  inUse: number;
  readonly waiting: Waiter[];
}

const DEFAULT_BURST = 5;
const DEFAULT_MAX_QUEUED = 100;
const DEFAULT_RETRY_AFTER_SEC = 10;

export class ChannelAllocator {
  readonly #clock: TrunkClock;
  readonly #usage: UsageSink | undefined;
  readonly #maxWaitMs: number;
  readonly #retryAfterSec: number;
  readonly #channels: ChannelState[];
  readonly #byId = new Map<string, ChannelState>();
  readonly #byGroup = new Map<string, ChannelState[]>();
  readonly #tenantPolicies: Map<string, Omit<TenantPolicy, 'name'>>;
  readonly #otherTenants: Omit<TenantPolicy, 'name'>;
  /** Tenants in the order the round robin visits them: config order, then first seen. */
  readonly #tenantOrder: TenantState[] = [];
  readonly #tenants = new Map<string, TenantState>();
  /** Index in #tenantOrder of the tenant the round robin offers the next channel to first. */
  #cursor = 0;
  #nextGrantId = 1;
  #inUse = 0;
  #queued = 0;
  readonly #preemptListeners = new Set<(p: Preemption) => void>();

  constructor(opts: AllocatorOptions) {
    if (!(opts.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be 0 or more, got ${opts.maxWaitMs}`);
    this.#clock = opts.clock;
    this.#usage = opts.usage;
    this.#maxWaitMs = opts.maxWaitMs;
    this.#retryAfterSec = opts.retryAfterSec ?? DEFAULT_RETRY_AFTER_SEC;
    this.#channels = opts.channels.map((channel, index) => ({ channel, index, inService: true, grant: undefined }));
    for (const state of this.#channels) {
      if (this.#byId.has(state.channel.id)) throw new RangeError(`channel ${state.channel.id} is listed twice`);
      this.#byId.set(state.channel.id, state);
      let group = this.#byGroup.get(state.channel.group);
      if (!group) this.#byGroup.set(state.channel.group, (group = []));
      group.push(state);
    }
    this.#otherTenants = opts.otherTenants ?? {};
    this.#tenantPolicies = new Map();
    for (const t of opts.tenants ?? []) {
      if (this.#tenantPolicies.has(t.name)) throw new RangeError(`tenant ${t.name} is listed twice`);
      this.#tenantPolicies.set(t.name, t);
      this.#tenant(t.name);
    }
  }

  /** Subscribes to pre-emption notices; the listener must release the victim's call on the line. */
  onPreempt(listener: (p: Preemption) => void): () => void {
    this.#preemptListeners.add(listener);
    return () => this.#preemptListeners.delete(listener);
  }

  /**
   * A channel for an outbound call: at once when one is free (or for an emergency
   * call, always), otherwise after waiting in the fair queue. Rejects with a
   * TrunkError: ETHROTTLED, EQUEUE_FULL, EQUEUE_TIMEOUT, EOUT_OF_SERVICE, ECONGESTION
   * (all busy and queueing disabled) or ECANCELLED.
   */
  requestOutbound(request: OutboundRequest): Promise<ChannelGrant> {
    const now = this.#clock.now();
    const tenant = this.#tenant(request.tenant);
    const emergency = request.emergency === true;
    this.#usage?.attempt(tenant.name, 'outbound', emergency, now);
    try {
      if (emergency) return Promise.resolve(this.#grantEmergency(tenant, request, now));
      if (request.signal?.aborted) throw new TrunkError('ECANCELLED', 'the caller gave up before a channel was asked for', { tenant: tenant.name });
      if (!this.#anyUsable(request.groups, 'outbound')) {
        throw new TrunkError('EOUT_OF_SERVICE', `no in-service outbound channel in trunk group(s) ${request.groups.join(', ') || '(none)'}`, {
          tenant: tenant.name,
          retryAfterSec: this.#retryAfterSec,
        });
      }
      if (tenant.bucket) {
        const taken = tenant.bucket.take(now);
        if (!taken.ok) {
          throw new TrunkError('ETHROTTLED', `tenant ${tenant.name} is over its call rate of ${tenant.policy.callsPerMinute}/min`, {
            tenant: tenant.name,
            retryAfterSec: Math.max(1, Math.ceil(taken.waitMs / 1000)),
          });
        }
      }
      if (!this.#atCap(tenant) && !this.#othersWaitFor(request.groups)) {
        const channel = this.#findIdle(request.groups, 'outbound');
        if (channel) return Promise.resolve(this.#grant(channel, tenant, 'outbound', request, now, now));
      }
      if (this.#maxWaitMs === 0) {
        throw new TrunkError('ECONGESTION', `all channels for tenant ${tenant.name} are busy`, { tenant: tenant.name, retryAfterSec: this.#retryAfterSec });
      }
      const maxQueued = tenant.policy.maxQueued ?? DEFAULT_MAX_QUEUED;
      if (tenant.waiting.length >= maxQueued) {
        throw new TrunkError('EQUEUE_FULL', `tenant ${tenant.name} already has ${maxQueued} calls waiting for a channel`, {
          tenant: tenant.name,
          retryAfterSec: this.#retryAfterSec,
        });
      }
    } catch (err) {
      if (err instanceof TrunkError) this.#usage?.blocked(tenant.name, 'outbound', now);
      return Promise.reject(err);
    }
    const queued = this.#enqueue(tenant, request, now);
    // A channel may be idle that the calls already waiting cannot use (their tenant is
    // at its cap, or they want other groups): the round robin decides who gets it.
    this.#serve();
    return queued;
  }

  /**
   * Takes the channel an inbound call arrived on, or throws a TrunkError at once
   * (ECHANNEL_UNAVAILABLE, EOUT_OF_SERVICE, ETENANT_CAP): inbound calls never wait.
   */
  acquireInbound(request: InboundRequest): ChannelGrant {
    const now = this.#clock.now();
    const tenant = this.#tenant(request.tenant);
    this.#usage?.attempt(tenant.name, 'inbound', false, now);
    const state = this.#byId.get(request.channel);
    let refusal: TrunkError | undefined;
    if (!state) refusal = new TrunkError('ECHANNEL_UNAVAILABLE', `no channel ${request.channel} in any trunk group`, { tenant: tenant.name });
    else if (state.channel.direction === 'outbound') refusal = new TrunkError('ECHANNEL_UNAVAILABLE', `channel ${request.channel} is outbound-only`, { tenant: tenant.name });
    else if (!state.inService) refusal = new TrunkError('EOUT_OF_SERVICE', `channel ${request.channel} is out of service`, { tenant: tenant.name });
    else if (state.grant) refusal = new TrunkError('ECHANNEL_UNAVAILABLE', `channel ${request.channel} is already in use by ${state.grant.callRef ?? `grant ${state.grant.id}`}`, { tenant: tenant.name });
    else if (this.#atCap(tenant)) refusal = new TrunkError('ETENANT_CAP', `tenant ${tenant.name} is at its cap of ${tenant.policy.maxChannels} channels`, { tenant: tenant.name });
    if (refusal || !state) {
      this.#usage?.blocked(tenant.name, 'inbound', now);
      throw refusal;
    }
    return this.#grant(state, tenant, 'inbound', { tenant: tenant.name, groups: [state.channel.group], callRef: request.callRef }, now, now);
  }

  /** Gives a channel back. Releasing twice, or a grant that was pre-empted, does nothing. */
  release(grant: ChannelGrant): void {
    const state = this.#byId.get(grant.channel);
    if (!state || state.grant !== grant) return;
    this.#free(state);
    this.#serve();
  }

  /** A span alarm or a dead line takes channels out of service; their return wakes the queue. */
  setInService(channelId: string, inService: boolean): void {
    const state = this.#byId.get(channelId);
    if (!state) throw new RangeError(`no channel ${channelId}`);
    if (state.inService === inService) return;
    state.inService = inService;
    if (inService) this.#serve();
  }

  isInService(channelId: string): boolean {
    return this.#byId.get(channelId)?.inService ?? false;
  }

  /** Whether a trunk group has an in-service channel usable in this direction. */
  groupUsable(group: string, direction: CallDirection): boolean {
    return this.#anyUsable([group], direction);
  }

  /** Rejects every queued request (ECANCELLED); grants already given stay valid. */
  cancelAll(reason: string): void {
    for (const tenant of this.#tenantOrder) {
      for (const waiter of [...tenant.waiting]) this.#dequeue(tenant, waiter, new TrunkError('ECANCELLED', reason, { tenant: tenant.name }));
    }
  }

  get inUse(): number {
    return this.#inUse;
  }

  get queued(): number {
    return this.#queued;
  }

  snapshot(): AllocatorSnapshot {
    return {
      channels: this.#channels.map((s) => ({ ...s.channel, inService: s.inService, ...(s.grant ? { grant: s.grant } : {}) })),
      tenants: this.#tenantOrder.map((t) => ({ name: t.name, inUse: t.inUse, queued: t.waiting.length })),
    };
  }

  #tenant(name: string): TenantState {
    let tenant = this.#tenants.get(name);
    if (!tenant) {
      const policy = this.#tenantPolicies.get(name) ?? this.#otherTenants;
      const bucket =
        policy.callsPerMinute === undefined
          ? undefined
          : new TokenBucket({ ratePerMinute: policy.callsPerMinute, burst: policy.burst ?? DEFAULT_BURST, now: this.#clock.now() });
      tenant = { name, policy, bucket, inUse: 0, waiting: [] };
      this.#tenants.set(name, tenant);
      this.#tenantOrder.push(tenant);
    }
    return tenant;
  }

  #atCap(tenant: TenantState): boolean {
    return tenant.policy.maxChannels !== undefined && tenant.inUse >= tenant.policy.maxChannels;
  }

  #usable(state: ChannelState, direction: CallDirection): boolean {
    return state.inService && (state.channel.direction === 'both' || state.channel.direction === direction);
  }

  #anyUsable(groups: readonly string[], direction: CallDirection): boolean {
    return groups.some((g) => (this.#byGroup.get(g) ?? []).some((s) => this.#usable(s, direction)));
  }

  /** The first idle usable channel, trying the groups in order (failover on congestion). */
  #findIdle(groups: readonly string[], direction: CallDirection): ChannelState | undefined {
    for (const group of groups) {
      for (const state of this.#byGroup.get(group) ?? []) {
        if (!state.grant && this.#usable(state, direction)) return state;
      }
    }
    return undefined;
  }

  /** Whether a queued call of any tenant could take a channel from these groups (then a newcomer must queue too). */
  #othersWaitFor(groups: readonly string[]): boolean {
    if (this.#queued === 0) return false;
    const wanted = new Set(groups);
    return this.#tenantOrder.some((t) => t.waiting.some((w) => w.request.groups.some((g) => wanted.has(g))));
  }

  #grant(state: ChannelState, tenant: TenantState, direction: CallDirection, request: OutboundRequest, now: number, askedAt: number, preempted?: ChannelGrant): ChannelGrant {
    const grant: ChannelGrant = {
      id: this.#nextGrantId++,
      channel: state.channel.id,
      group: state.channel.group,
      tenant: tenant.name,
      direction,
      emergency: request.emergency === true,
      callRef: request.callRef,
      grantedAt: now,
      waitedMs: now - askedAt,
      preempted,
    };
    state.grant = grant;
    tenant.inUse++;
    this.#inUse++;
    this.#usage?.inUse(tenant.name, tenant.inUse, this.#inUse, now);
    return grant;
  }

  #free(state: ChannelState): void {
    const grant = state.grant;
    if (!grant) return;
    state.grant = undefined;
    const tenant = this.#tenant(grant.tenant);
    tenant.inUse--;
    this.#inUse--;
    this.#usage?.inUse(tenant.name, tenant.inUse, this.#inUse, this.#clock.now());
  }

  #grantEmergency(tenant: TenantState, request: OutboundRequest, now: number): ChannelGrant {
    const allGroups = [...this.#byGroup.keys()];
    const idle = this.#findIdle(request.groups, 'outbound') ?? this.#findIdle(allGroups, 'outbound');
    if (idle) return this.#grant(idle, tenant, 'outbound', request, now, now);
    const victimState = this.#newestPreemptable('outbound') ?? this.#newestPreemptable('inbound');
    if (!victimState?.grant) {
      throw new TrunkError('EOUT_OF_SERVICE', 'no channel can carry an emergency call: every outbound-capable channel is out of service or carries an emergency call', {
        tenant: tenant.name,
      });
    }
    const victim = victimState.grant;
    this.#free(victimState);
    const grant = this.#grant(victimState, tenant, 'outbound', request, now, now, victim);
    this.#usage?.preempted(victim.tenant, now);
    const notice: Preemption = { victim, by: grant, cause: Cause.PREEMPTION, reason: 'pre-empted for an emergency call' };
    for (const listener of this.#preemptListeners) {
      try {
        listener(notice);
      } catch {
        // A failing listener must not stop the emergency call; the owner sees the
        // grant gone when it next releases (release of a pre-empted grant is a no-op).
      }
    }
    return grant;
  }

  /** The channel of the most recently granted non-emergency call in this direction that an outbound call may use. */
  #newestPreemptable(direction: CallDirection): ChannelState | undefined {
    let newest: ChannelState | undefined;
    for (const state of this.#channels) {
      const g = state.grant;
      if (!g || g.emergency || g.direction !== direction || !this.#usable(state, 'outbound')) continue;
      if (!newest?.grant || g.id > newest.grant.id) newest = state;
    }
    return newest;
  }

  #enqueue(tenant: TenantState, request: OutboundRequest, now: number): Promise<ChannelGrant> {
    return new Promise<ChannelGrant>((resolve, reject) => {
      const waiter: Waiter = { request, queuedAt: now, resolve, reject, cancelTimer: () => undefined, detachSignal: () => undefined };
      tenant.waiting.push(waiter);
      this.#queued++;
      waiter.cancelTimer = this.#clock.setTimer(this.#maxWaitMs, () => {
        this.#usage?.blocked(tenant.name, 'outbound', this.#clock.now());
        this.#dequeue(
          tenant,
          waiter,
          new TrunkError('EQUEUE_TIMEOUT', `no channel for tenant ${tenant.name} within ${this.#maxWaitMs / 1000} s`, {
            tenant: tenant.name,
            retryAfterSec: this.#retryAfterSec,
          }),
        );
      });
      const signal = request.signal;
      if (signal) {
        const onAbort = (): void => {
          this.#dequeue(tenant, waiter, new TrunkError('ECANCELLED', 'the caller gave up while waiting for a channel', { tenant: tenant.name }));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.detachSignal = () => signal.removeEventListener('abort', onAbort);
      }
    });
  }

  #dequeue(tenant: TenantState, waiter: Waiter, failure?: TrunkError): boolean {
    const at = tenant.waiting.indexOf(waiter);
    if (at < 0) return false;
    tenant.waiting.splice(at, 1);
    this.#queued--;
    waiter.cancelTimer();
    waiter.detachSignal();
    this.#usage?.waited(tenant.name, this.#clock.now() - waiter.queuedAt, this.#clock.now());
    if (failure) waiter.reject(failure);
    return true;
  }

  /**
   * Hands idle channels to queued calls, round robin over tenants: each pass starts
   * at the tenant after the one served last, and within a tenant takes its oldest
   * call that a free channel fits (a call for a busy trunk group does not hold up the
   * tenant's call for an idle one).
   */
  #serve(): void {
    let served = true;
    while (served && this.#queued > 0) {
      served = false;
      const count = this.#tenantOrder.length;
      for (let k = 0; k < count && !served; k++) {
        const index = (this.#cursor + k) % count;
        const tenant = this.#tenantOrder[index] as TenantState;
        if (tenant.waiting.length === 0 || this.#atCap(tenant)) continue;
        for (const waiter of tenant.waiting) {
          const channel = this.#findIdle(waiter.request.groups, 'outbound');
          if (!channel) continue;
          const now = this.#clock.now();
          this.#dequeue(tenant, waiter);
          waiter.resolve(this.#grant(channel, tenant, 'outbound', waiter.request, now, waiter.queuedAt));
          this.#cursor = (index + 1) % count;
          served = true;
          break;
        }
      }
    }
  }
}
