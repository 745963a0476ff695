// The contract between the dial plan (agent/calls/routing) and the call core
// (agent/calls). The dial plan is pure: it reads config and the registrations it is
// shown, and never touches SIP or media. The core asks it where a call goes, tries
// that, and on failure asks again with what happened, so forwarding, ring groups and
// voicemail fall-back live in one place and the core only carries them out.

/** Who is calling, as the core knows it when the INVITE arrives. */
export interface Caller {
  /** The caller's extension when the INVITE came from a registered, authenticated phone. */
  extension?: string;
  /** The number to show (From user part, or the line's caller ID for trunk calls). */
  number: string;
  name?: string;
  /** Where the call came in: a desk phone, a line card channel, a peer site. */
  origin: 'phone' | 'trunk' | 'peer';
}

export interface RouteRequest {
  /** The dialled digits: the Request-URI user part, with visual separators removed. */
  dialed: string;
  caller: Caller;
}

/** How a tried target failed, as the core observed it. */
export type FailureOutcome =
  | 'busy' // every contact answered 486/600, or the extension is on a call and has no call waiting
  | 'no-answer' // the ring timeout passed
  | 'unavailable' // no registered contact, or every contact failed (408/480/5xx)
  | 'rejected'; // a contact declined (603)

/** One place a call may go next. */
export type RouteTarget =
  /** Ring every registered contact of these extensions at once; first to answer wins. */
  | { kind: 'ring'; extensions: string[]; ringTimeoutSec: number; groupName?: string }
  /** Leave a message in this mailbox; `reason` picks the greeting. */
  | { kind: 'voicemail'; mailbox: string; reason: 'busy' | 'no-answer' | 'unavailable' | 'direct' }
  /** Retrieve voicemail (own mailbox when `mailbox` is absent: identify by caller ID + PIN). */
  | { kind: 'voicemail-retrieval'; mailbox?: string }
  /** A feature code (`*...`) the core or a feature module carries out. */
  | { kind: 'feature'; feature: FeatureName; argument?: string }
  /** Out through the trunks (line cards, later peers): number after digit manipulation. */
  | { kind: 'external'; number: string; emergency: boolean }
  /**
   * Over SIP to the agent of the peer site that is home for `number` (peers directory,
   * docs/sync.md#calls-between-sites). Only returned while that site is reachable; the
   * core sends one INVITE to `address` (host:port, `transport`) and gives up on it as
   * 'unavailable' when nothing at all answers within `noResponseMs`, so a dead WAN costs
   * a call that long, never a SIP timeout. The peer rings, forwards and takes voicemail
   * by its own rules: its busy / no-answer / decline is final here; 'unavailable' moves
   * on to the fallbacks (`peers.fallback`: the PSTN through the number's DID, then a
   * local voicemail that is forwarded to the home site).
   */
  | { kind: 'peer'; site: string; number: string; address: string; transport: 'udp' | 'tcp'; domain: string; noResponseMs: number }
  /** Answer the call with this final response; `reason` goes in the Reason header text. */
  | { kind: 'reject'; status: number; reason: string };

export type FeatureName =
  | 'dnd-on'
  | 'dnd-off'
  | 'forward-always-on'
  | 'forward-always-off'
  | 'forward-busy-on'
  | 'forward-busy-off'
  | 'forward-no-answer-on'
  | 'forward-no-answer-off'
  | 'voicemail-own'
  | 'voicemail-any'
  | 'echo-test';

export interface RouteDecision {
  target: RouteTarget;
  /** True when the dialled number is an emergency number (pre-empts trunk channels). */
  emergency: boolean;
  /** Why this target, for logs and call records (e.g. "forward-busy 1001→1002"). */
  why: string;
  /**
   * Where in the plan this decision stands. Added by the dial plan (an optional field,
   * so the contract stays compatible): the plan keeps no per-call state, so next()
   * reads from the failed decision whose extension failed, which ring-group member is
   * ringing and how many forwards were followed. The core passes the decision back
   * unchanged and never reads this.
   */
  context?: RoutingContext;
}

export interface RoutingContext {
  /** What failed when this target fails: an extension's rules, a ring group, or nothing more. */
  stage:
    | { kind: 'extension'; extension: string }
    /** `member` is the index of the ringing member (sequential); absent: all at once. */
    | { kind: 'group'; group: string; member?: number }
    /** A number homed at a peer site: `step` indexes the fallback order tried last (-1: the peer itself). */
    | { kind: 'peer'; site: string; number: string; did?: string; step: number }
    | { kind: 'end' };
  /** Forwards followed so far (bounded by dialplan.max_forward_hops). */
  hops: number;
  /** Numbers that forwarded this call already: a forward back to one is a loop and is not followed. */
  visited: string[];
}

/** What the core tells the dial plan about the state it cannot see in config. */
export interface RoutingState {
  /** Number of live registered contacts per extension. */
  registeredContacts(extension: string): number;
  /** Calls the extension is in right now (for forward-busy without trying). */
  activeCalls(extension: string): number;
}

export interface DialPlan {
  /** Where a new call goes first. */
  route(request: RouteRequest, state: RoutingState): RouteDecision;
  /**
   * Where it goes after `failed` failed with `outcome`; undefined means the core
   * gives up and answers with the outcome's own final response (486, 480, 408...).
   * `attempt` counts earlier failures of this call (loops end by the plan's own bound).
   */
  next(request: RouteRequest, failed: RouteDecision, outcome: FailureOutcome, attempt: number, state: RoutingState): RouteDecision | undefined;
}

/**
 * Numbers homed at peer sites, as the dial plan sees them (agent/calls/peer-routes.ts
 * builds it from the peers directory and the WAN state). Synchronous: from memory.
 */
export interface PeerHomes {
  /** The peer site that is home for `number`, or undefined (unknown, or this site's own). */
  homeOf(number: string): PeerHomeView | undefined;
}

export interface PeerHomeView {
  site: string;
  /** The number to dial at the peer (the extension a DID rings, else the number). */
  number: string;
  address: string;
  transport: 'udp' | 'tcp';
  domain: string;
  /** False when the peer is known to be unreachable now: no INVITE is sent at all. */
  reachable: boolean;
  /** Its DID, for the PSTN fallback. */
  did?: string;
}

/** What the dial plan does with a number homed at a peer that cannot be reached, in order. */
export type PeerFallback = 'pstn' | 'voicemail';
