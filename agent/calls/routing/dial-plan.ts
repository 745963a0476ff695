// The dial plan built from the agent config (docs/dialplan.md). Pure and synchronous:
// it reads the config, the feature-code overrides (DND, forwards) it is given and the
// registration state the core shows it, and returns where a call goes. It keeps no
// per-call state: what next() needs travels in the decision's `context`.
//
// Order for a call to an extension:
//   forward always > do-not-disturb (busy) > busy without call waiting > no phone
//   registered (unavailable) > ring; when that fails: the forward for the outcome
//   (busy / no-answer / unavailable) > the extension's voicemail > the core's final
//   response (486, 480/408...). A forward that would loop or pass max_forward_hops is
//   skipped as if it were not set.
import type { AgentConfig, ExtensionConfig, FeatureCodeName, RingGroupConfig } from '../../config/types.ts';
import type { FeatureStateSource } from '../../store/feature-state.ts';
import { compileDigitPattern, type DigitPattern } from './digit-pattern.ts';
import type { DialPlan, FailureOutcome, FeatureName, PeerFallback, PeerHomes, PeerHomeView, RouteDecision, RouteRequest, RouteTarget, RoutingContext, RoutingState } from './types.ts';

export type DialPlanConfig = Pick<AgentConfig, 'extensions' | 'dialplan' | 'ring_groups'>;

/** Calls between sites (docs/sync.md#calls-between-sites): where peer numbers live and what to do when a peer is down. */
export interface PeerRouting {
  homes: PeerHomes;
  /** `peers.fallback`: tried in this order when the home site is unreachable. */
  fallback: readonly PeerFallback[];
  /** `peers.no_response_timeout` in ms: how long an INVITE to a peer may go unanswered before it counts as unreachable. */
  noResponseMs: number;
}

/** The forwards and DND in force for an extension: config with feature-code overrides. */
export interface EffectiveFeatures {
  dnd: boolean;
  always?: string;
  busy?: string;
  noAnswer?: string;
  unavailable?: string;
}

/** How far along a call's path the plan is, while one decision is being made. */
interface Walk {
  hops: number;
  visited: string[];
  why: string[];
}

/** Feature codes and what they start. `argument`: digits may follow the code. */
const FEATURES: ReadonlyArray<{ code: FeatureCodeName; feature: FeatureName; argument: 'none' | 'required' | 'optional' }> = [
  { code: 'dnd_on', feature: 'dnd-on', argument: 'none' },
  { code: 'dnd_off', feature: 'dnd-off', argument: 'none' },
  { code: 'forward_always_on', feature: 'forward-always-on', argument: 'required' },
  { code: 'forward_always_off', feature: 'forward-always-off', argument: 'none' },
  { code: 'forward_busy_on', feature: 'forward-busy-on', argument: 'required' },
  { code: 'forward_busy_off', feature: 'forward-busy-off', argument: 'none' },
  { code: 'forward_no_answer_on', feature: 'forward-no-answer-on', argument: 'required' },
  { code: 'forward_no_answer_off', feature: 'forward-no-answer-off', argument: 'none' },
  { code: 'voicemail_own', feature: 'voicemail-own', argument: 'none' },
  { code: 'voicemail_any', feature: 'voicemail-any', argument: 'optional' },
  { code: 'echo_test', feature: 'echo-test', argument: 'none' },
];

const END: RoutingContext['stage'] = { kind: 'end' };

/** Characters people and phones put in numbers for readability. */
const VISUAL_SEPARATORS = /[\s\-().]/g;

export class ConfiguredDialPlan implements DialPlan {
  readonly #extensions: ReadonlyMap<string, ExtensionConfig>;
  readonly #groups: ReadonlyMap<string, RingGroupConfig>;
  readonly #emergency: ReadonlySet<string>;
  readonly #outbound: readonly DigitPattern[];
  readonly #features: ReadonlyArray<{ code: string; feature: FeatureName; argument: 'none' | 'required' | 'optional' }>;
  readonly #ringTimeout: number;
  readonly #maxHops: number;
  readonly #maxAttempts: number;
  readonly #overrides: FeatureStateSource | undefined;
  readonly #peers: PeerRouting | undefined;

  /**
   * `config` must have passed load.ts (dialPlanProblems): patterns compile and
   * references resolve. `overrides` are the feature-code changes (FeatureStateStore).
   */
  constructor(config: DialPlanConfig, overrides?: FeatureStateSource, peers?: PeerRouting) {
    this.#extensions = new Map(config.extensions.map((e) => [e.number, e]));
    this.#groups = new Map(config.ring_groups.map((g) => [g.number, g]));
    this.#emergency = new Set(config.dialplan.emergency_numbers);
    this.#outbound = config.dialplan.outbound_patterns.map(compileDigitPattern);
    this.#features = FEATURES.map((f) => ({ code: config.dialplan.feature_codes[f.code], feature: f.feature, argument: f.argument }));
    this.#ringTimeout = config.dialplan.ring_timeout;
    this.#maxHops = config.dialplan.max_forward_hops;
    // next() always moves forward (a later member, one more hop, or the end), so a
    // call ends on its own; this bound only guards against a caller that loops.
    const longestGroup = Math.max(0, ...config.ring_groups.map((g) => g.members.length));
    this.#maxAttempts = (this.#maxHops + 1) * (longestGroup + 2) + 2;
    this.#overrides = overrides;
    this.#peers = peers;
  }

  route(request: RouteRequest, state: RoutingState): RouteDecision {
    const dialed = request.dialed.replace(VISUAL_SEPARATORS, '');
    const walk: Walk = { hops: 0, visited: [], why: [] };
    if (dialed === '') return reject(484, 'Address Incomplete', 'nothing dialled');
    if (this.#emergency.has(dialed)) {
      return { target: { kind: 'external', number: dialed, emergency: true }, emergency: true, why: `emergency ${dialed}`, context: context(END, walk) };
    }
    if (dialed.startsWith('*')) return this.#feature(dialed, request);
    if (this.#extensions.has(dialed) || this.#groups.has(dialed)) return this.#enter(dialed, walk, state);
    const home = this.#peers?.homes.homeOf(dialed);
    if (home !== undefined) {
      // A peer's call is for this site's numbers only: sites never relay for each other.
      if (request.caller.origin === 'peer') return reject(404, 'Not Found', `${dialed} is homed at ${home.site}, not here`);
      return this.#toPeer(home, walk);
    }
    if (this.#isOutbound(dialed)) {
      // A call that came in on a trunk must not go straight back out (toll fraud); nor
      // may a peer site use this site's lines (it has its own).
      if (request.caller.origin !== 'phone') return reject(403, 'Forbidden', `outbound ${dialed} refused: the call came in on a ${request.caller.origin === 'peer' ? 'peer site' : 'trunk'}`);
      return external(dialed, walk, `outbound ${dialed}`);
    }
    return reject(404, 'Not Found', `no extension, ring group or outbound pattern for ${JSON.stringify(dialed)}`);
  }

  next(_request: RouteRequest, failed: RouteDecision, outcome: FailureOutcome, attempt: number, state: RoutingState): RouteDecision | undefined {
    const ctx = failed.context;
    if (!ctx || attempt >= this.#maxAttempts) return undefined;
    const walk: Walk = { hops: ctx.hops, visited: [...ctx.visited], why: [failed.why, outcome] };
    const stage = ctx.stage;
    switch (stage.kind) {
      case 'extension':
        return this.#afterFailure(stage.extension, outcome, walk, state);
      case 'group': {
        const group = this.#groups.get(stage.group);
        if (!group) return undefined;
        if (stage.member === undefined) return this.#groupExhausted(group, walk, state);
        return this.#sequentialFrom(group, stage.member + 1, walk, state);
      }
      case 'peer':
        // The peer (or a fallback) answered busy, no answer or declined: that is the
        // callee's answer. Only a peer or route that could not be reached moves on.
        if (outcome !== 'unavailable') return undefined;
        return this.#peerFallback(stage, walk);
      case 'end':
        return undefined;
    }
  }

  /** A number homed at a peer site: the peer when reachable, else the fallbacks at once (no INVITE into a dead WAN). */
  #toPeer(home: PeerHomeView, walk: Walk): RouteDecision {
    const stage = { kind: 'peer' as const, site: home.site, number: home.number, ...(home.did !== undefined ? { did: home.did } : {}), step: -1 };
    const peers = this.#peers as PeerRouting;
    if (home.reachable) {
      walk.why.push(`peer ${home.site} ${home.number}`);
      return {
        target: { kind: 'peer', site: home.site, number: home.number, address: home.address, transport: home.transport, domain: home.domain, noResponseMs: peers.noResponseMs },
        emergency: false,
        why: walk.why.join(', '),
        context: context(stage, walk),
      };
    }
    walk.why.push(`peer ${home.site} unreachable`);
    return this.#peerFallback(stage, walk) ?? reject(480, 'Temporarily Unavailable', walk.why.join(', '));
  }

  /** The next of `peers.fallback` after `stage.step` that applies: the PSTN through the DID, a local voicemail. */
  #peerFallback(stage: Extract<RoutingContext['stage'], { kind: 'peer' }>, walk: Walk): RouteDecision | undefined {
    const order = this.#peers?.fallback ?? [];
    for (let step = stage.step + 1; step < order.length; step++) {
      const next = { ...stage, step };
      if (order[step] === 'pstn' && stage.did !== undefined) {
        walk.why.push(`pstn ${stage.did}`);
        return { target: { kind: 'external', number: stage.did, emergency: false }, emergency: false, why: walk.why.join(', '), context: context(next, walk) };
      }
      if (order[step] === 'voicemail') {
        // Taken here and forwarded to the home site when it is reachable (agent/voicemail/forwarding.ts).
        walk.why.push(`voicemail ${stage.number} for ${stage.site}`);
        return { target: { kind: 'voicemail', mailbox: stage.number, reason: 'unavailable' }, emergency: false, why: walk.why.join(', '), context: context(next, walk) };
      }
    }
    return undefined;
  }

  /** DND and forwards of an extension as they stand now: config, then feature-code overrides. */
  effectiveFeatures(extension: string): EffectiveFeatures {
    const cfg = this.#extensions.get(extension);
    const o = this.#overrides?.get(extension);
    const pick = (override: string | false | undefined, configured: string | undefined) => (override === undefined ? configured : override || undefined);
    const f: EffectiveFeatures = { dnd: o?.dnd ?? cfg?.dnd ?? false };
    const always = pick(o?.forwardAlways, cfg?.forward?.always);
    const busy = pick(o?.forwardBusy, cfg?.forward?.busy);
    const noAnswer = pick(o?.forwardNoAnswer, cfg?.forward?.no_answer);
    const unavailable = cfg?.forward?.unavailable;
    if (always !== undefined) f.always = always;
    if (busy !== undefined) f.busy = busy;
    if (noAnswer !== undefined) f.noAnswer = noAnswer;
    if (unavailable !== undefined) f.unavailable = unavailable;
    return f;
  }

  /**
   * Why calls cannot be forwarded from `from` to `target`, or undefined when they can
   * (an extension, a ring group or an outbound number; never itself or an emergency
   * number). The forward feature codes are checked with it before they are accepted.
   */
  forwardTargetProblem(from: string, target: string): string | undefined {
    if (target === from) return `${from} cannot forward to itself`;
    if (this.#emergency.has(target)) return `calls are not forwarded to the emergency number ${target}`;
    if (this.#extensions.has(target) || this.#groups.has(target) || this.#isOutbound(target)) return undefined;
    return `${target} is not an extension, a ring group or an outbound number`;
  }

  #isOutbound(number: string): boolean {
    return this.#outbound.some((p) => p.matches(number));
  }

  /** A call arriving at an extension or ring group number. */
  #enter(number: string, walk: Walk, state: RoutingState): RouteDecision {
    const group = this.#groups.get(number);
    if (group) return this.#enterGroup(group, walk, state);
    if (this.#extensions.has(number)) return this.#enterExtension(number, walk, state);
    // Forward targets are checked before they are followed; this is for safety only.
    return reject(404, 'Not Found', [...walk.why, `${number} is not routable`].join(', '));
  }

  #enterExtension(ext: string, walk: Walk, state: RoutingState): RouteDecision {
    const f = this.effectiveFeatures(ext);
    if (f.always !== undefined) {
      const forwarded = this.#forward(ext, f.always, 'always', walk, state);
      if (forwarded) return forwarded;
    }
    if (f.dnd) {
      walk.why.push(`dnd ${ext}`);
      return this.#afterFailure(ext, 'busy', walk, state) ?? reject(486, 'Do Not Disturb', walk.why.join(', '));
    }
    const cfg = this.#extensions.get(ext);
    if (cfg?.call_waiting === false && state.activeCalls(ext) > 0) {
      walk.why.push(`${ext} in a call, no call waiting`);
      return this.#afterFailure(ext, 'busy', walk, state) ?? reject(486, 'Busy Here', walk.why.join(', '));
    }
    if (state.registeredContacts(ext) === 0) {
      walk.why.push(`${ext} not registered`);
      return this.#afterFailure(ext, 'unavailable', walk, state) ?? reject(480, 'Temporarily Unavailable', walk.why.join(', '));
    }
    const ringTimeoutSec = f.noAnswer !== undefined && this.#forwardAllowed(ext, f.noAnswer, walk) ? (cfg?.forward?.no_answer_timeout ?? this.#extensionRingTimeout(ext)) : this.#extensionRingTimeout(ext);
    walk.why.push(`ring ${ext}`);
    return {
      target: { kind: 'ring', extensions: [ext], ringTimeoutSec },
      emergency: false,
      why: walk.why.join(', '),
      context: context({ kind: 'extension', extension: ext }, walk),
    };
  }

  #extensionRingTimeout(ext: string): number {
    return this.#extensions.get(ext)?.ring_timeout ?? this.#ringTimeout;
  }

  /** Where a call goes when `ext` was busy, did not answer or could not be reached. */
  #afterFailure(ext: string, outcome: FailureOutcome, walk: Walk, state: RoutingState): RouteDecision | undefined {
    const f = this.effectiveFeatures(ext);
    // A declined call (603) is handled like busy: the person is there but not taking it.
    const reason = outcome === 'rejected' ? 'busy' : outcome;
    const target = reason === 'busy' ? f.busy : reason === 'no-answer' ? f.noAnswer : f.unavailable;
    if (target !== undefined) {
      const forwarded = this.#forward(ext, target, reason, walk, state);
      if (forwarded) return forwarded;
    }
    if (this.#extensions.get(ext)?.voicemail) {
      walk.why.push(`voicemail ${ext}`);
      return { target: { kind: 'voicemail', mailbox: ext, reason }, emergency: false, why: walk.why.join(', '), context: context(END, walk) };
    }
    return undefined;
  }

  #forwardAllowed(from: string, target: string, walk: Walk): boolean {
    return walk.hops < this.#maxHops && target !== from && !walk.visited.includes(target) && this.forwardTargetProblem(from, target) === undefined;
  }

  /** Follows a forward, or returns undefined (noted in `why`) when it would loop, go too far or lead nowhere. */
  #forward(from: string, target: string, label: string, walk: Walk, state: RoutingState): RouteDecision | undefined {
    if (!this.#forwardAllowed(from, target, walk)) {
      const cause = walk.hops >= this.#maxHops ? `max ${this.#maxHops} hops` : walk.visited.includes(target) || target === from ? 'loop' : 'not routable';
      walk.why.push(`forward-${label} ${from}→${target} skipped (${cause})`);
      return undefined;
    }
    const next: Walk = { hops: walk.hops + 1, visited: [...walk.visited, from], why: [...walk.why, `forward-${label} ${from}→${target}`] };
    if (this.#extensions.has(target) || this.#groups.has(target)) return this.#enter(target, next, state);
    return external(target, next, `outbound ${target}`);
  }

  #enterGroup(group: RingGroupConfig, walk: Walk, state: RoutingState): RouteDecision {
    walk.why.push(`ring group ${group.number}`);
    if (group.strategy === 'sequential') {
      return this.#sequentialFrom(group, 0, walk, state) ?? reject(480, 'Temporarily Unavailable', walk.why.join(', '));
    }
    const members = group.members.filter((m) => this.#canRing(m, walk, state));
    if (members.length === 0) {
      walk.why.push('no member available');
      return this.#groupExhausted(group, walk, state) ?? reject(480, 'Temporarily Unavailable', walk.why.join(', '));
    }
    return {
      target: { kind: 'ring', extensions: members, ringTimeoutSec: group.ring_timeout ?? this.#ringTimeout, groupName: group.name ?? group.number },
      emergency: false,
      why: walk.why.join(', '),
      context: context({ kind: 'group', group: group.number }, walk),
    };
  }

  /** Rings the first member at or after `start` that can ring; then the fallback. */
  #sequentialFrom(group: RingGroupConfig, start: number, walk: Walk, state: RoutingState): RouteDecision | undefined {
    for (let i = start; i < group.members.length; i++) {
      const member = group.members[i] as string;
      if (!this.#canRing(member, walk, state)) continue;
      walk.why.push(`member ${member}`);
      return {
        target: { kind: 'ring', extensions: [member], ringTimeoutSec: group.ring_timeout ?? this.#ringTimeout, groupName: group.name ?? group.number },
        emergency: false,
        why: walk.why.join(', '),
        context: context({ kind: 'group', group: group.number, member: i }, walk),
      };
    }
    walk.why.push('no member left');
    return this.#groupExhausted(group, walk, state);
  }

  /**
   * A member is rung when it has a registered phone, is not in do-not-disturb, is not
   * busy without call waiting and did not itself forward this call here. Members' own
   * forwards do not apply inside a group: a group call should not chase one member's
   * mobile.
   */
  #canRing(ext: string, walk: Walk, state: RoutingState): boolean {
    if (walk.visited.includes(ext)) return false;
    if (this.effectiveFeatures(ext).dnd) return false;
    if (this.#extensions.get(ext)?.call_waiting === false && state.activeCalls(ext) > 0) return false;
    return state.registeredContacts(ext) > 0;
  }

  #groupExhausted(group: RingGroupConfig, walk: Walk, state: RoutingState): RouteDecision | undefined {
    if (group.fallback === undefined) return undefined;
    return this.#forward(group.number, group.fallback, 'fallback', walk, state);
  }

  #feature(dialed: string, request: RouteRequest): RouteDecision {
    const match = this.#features.find((f) => (f.argument === 'none' ? dialed === f.code : dialed.startsWith(f.code)));
    if (!match) return reject(404, 'Not Found', `no feature code ${dialed}`);
    const caller = request.caller.extension;
    if (caller === undefined || request.caller.origin !== 'phone' || !this.#extensions.has(caller)) {
      return reject(403, 'Forbidden', `feature ${match.feature} needs a registered extension`);
    }
    const argument = dialed.slice(match.code.length);
    const end = context(END, { hops: 0, visited: [], why: [] });
    const why = `feature ${match.feature} by ${caller}${argument ? ` (${argument})` : ''}`;
    if (argument !== '' && !/^\+?[0-9]+$/.test(argument)) return reject(484, 'Address Incomplete', `${why}: ${JSON.stringify(argument)} is not a number`);
    switch (match.feature) {
      case 'forward-always-on':
      case 'forward-busy-on':
      case 'forward-no-answer-on': {
        if (argument === '') return reject(484, 'Address Incomplete', `${why}: the number to forward to is missing`);
        const problem = this.forwardTargetProblem(caller, argument);
        if (problem) return reject(404, 'Not Found', `${why}: ${problem}`);
        return { target: { kind: 'feature', feature: match.feature, argument }, emergency: false, why, context: end };
      }
      case 'voicemail-own':
        if (!this.#extensions.get(caller)?.voicemail) return reject(404, 'Not Found', `${why}: ${caller} has no mailbox`);
        // No mailbox in the target: the caller's own, identified by caller ID + PIN.
        return { target: { kind: 'voicemail-retrieval' }, emergency: false, why, context: end };
      case 'voicemail-any': {
        if (argument === '') return { target: { kind: 'feature', feature: 'voicemail-any' }, emergency: false, why, context: end };
        if (!this.#extensions.get(argument)?.voicemail) return reject(404, 'Not Found', `${why}: ${argument} has no mailbox`);
        return { target: { kind: 'voicemail-retrieval', mailbox: argument }, emergency: false, why, context: end };
      }
      default:
        return { target: { kind: 'feature', feature: match.feature }, emergency: false, why, context: end };
    }
  }
}

function context(stage: RoutingContext['stage'], walk: Walk): RoutingContext {
  return { stage, hops: walk.hops, visited: walk.visited };
}

function external(number: string, walk: Walk, why: string): RouteDecision {
  const target: RouteTarget = { kind: 'external', number, emergency: false };
  return { target, emergency: false, why: [...walk.why, why].join(', '), context: context(END, walk) };
}

function reject(status: number, reason: string, why: string): RouteDecision {
  return { target: { kind: 'reject', status, reason }, emergency: false, why, context: { stage: END, hops: 0, visited: [] } };
}
