// The trunk policy as data: trunk groups over line-card channels, outbound routes,
// inbound DIDs, tenants, the numbering plan. Built once from the config; every
// question (which groups for this number, whose is this extension, where does this
// DID go, what caller ID goes out) is answered here without touching a line.

import { compileDigitPattern, type DigitPattern } from '../calls/routing/digit-pattern.ts';
import type { AgentConfig } from '../config/types.ts';
import type { ChannelDirection, PooledChannel, TenantPolicy } from './channel-allocator.ts';
import { TrunkError } from './errors.ts';
import { manipulateDigits, sameNumber, type DigitManipulation, type NumberingPlan } from './numbers.ts';

/** The tenant of callers and DIDs that belong to no configured tenant. */
export const DEFAULT_TENANT = 'default';

export type CallerIdPolicy = 'pass' | 'fixed' | 'tenant';

export interface TrunkGroupPlan {
  name: string;
  linecard: string;
  /** Absent: every span of the card. */
  spans: number[] | undefined;
  /** Absent: every channel of each span. */
  channels: number[] | undefined;
  direction: ChannelDirection;
  callerId: CallerIdPolicy;
  callerIdNumber: string | undefined;
}

export interface RoutePlan {
  name: string;
  pattern: DigitPattern | undefined; // undefined: any number (the default route)
  trunks: string[];
  digits: DigitManipulation;
  tenants: ReadonlySet<string> | undefined;
}

/** Where an inbound call to a DID goes. */
export type DidTarget =
  | { kind: 'extension'; extension: string }
  | { kind: 'group'; group: string }
  | { kind: 'voicemail'; mailbox: string }
  | { kind: 'app'; app: string };

export interface DidPlan {
  number: string;
  target: DidTarget;
  tenant: string;
}

export interface TenantPlan {
  policy: TenantPolicy;
  extensions: DigitPattern[];
  callerId: string | undefined;
}

/** A channel of a trunk group, with where it lives on its card. */
export interface PlannedChannel extends PooledChannel {
  card: string;
  span: number;
  channel: number;
}

/** What the line-card side tells the plan: each card's spans and their channel counts. */
export type CardSpans = ReadonlyMap<string, ReadonlyArray<{ span: number; channels: number }>>;

export interface OutboundPlan {
  tenant: string;
  /** Trunk groups to try, in order. */
  groups: string[];
  /** The digits to send on the line. */
  dialled: string;
  route: string;
}

export interface OutgoingCallerId {
  number?: string;
  name?: string;
  presentation: 'allowed' | 'restricted' | 'unavailable';
}

type TrunkInput = Pick<AgentConfig, 'linecards' | 'trunks' | 'routes' | 'dids' | 'tenants' | 'trunking'>;

/** "1-15,17" → [1..15, 17]; throws an Error saying what is wrong. */
export function parseChannelList(text: string): number[] {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(part.trim());
    if (!m) throw new Error(`"${part}" is not a channel or a range like 1-15`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from < 1) throw new Error(`channels are numbered from 1, not ${from}`);
    if (to < from) throw new Error(`range ${part} runs backwards`);
    for (let c = from; c <= to; c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

export class TrunkPlan {
  readonly groups: readonly TrunkGroupPlan[];
  readonly routes: readonly RoutePlan[];
  readonly dids: readonly DidPlan[];
  readonly tenants: ReadonlyMap<string, TenantPlan>;
  readonly numbering: NumberingPlan;
  readonly maxWaitMs: number;
  readonly retryAfterSec: number;
  readonly progressTimeoutMs: number;
  readonly usageFlushMs: number;

  constructor(config: TrunkInput) {
    const t = config.trunking;
    this.numbering = {
      ...(t.country_code !== undefined ? { countryCode: t.country_code } : {}),
      ...(t.area_code !== undefined ? { areaCode: t.area_code } : {}),
      internationalPrefix: t.international_prefix,
      nationalPrefix: t.national_prefix,
      localDigits: t.local_digits,
    };
    this.maxWaitMs = Math.round(t.max_queue_wait * 1000);
    this.retryAfterSec = t.retry_after;
    this.progressTimeoutMs = Math.round(t.progress_timeout * 1000);
    this.usageFlushMs = Math.round(t.usage_flush * 1000);

    this.groups =
      config.trunks.length > 0
        ? config.trunks.map((tr) => ({
            name: tr.name,
            linecard: tr.linecard,
            spans: tr.spans,
            channels: tr.channels === undefined ? undefined : parseChannelList(tr.channels),
            direction: tr.direction,
            callerId: tr.caller_id,
            callerIdNumber: tr.caller_id_number,
          }))
        : config.linecards.map((card) => ({ name: card.name, linecard: card.name, spans: undefined, channels: undefined, direction: 'both', callerId: 'pass', callerIdNumber: undefined }));

    const tenants = new Map<string, TenantPlan>();
    for (const tc of config.tenants) {
      tenants.set(tc.name, {
        policy: {
          name: tc.name,
          ...(tc.max_channels !== undefined ? { maxChannels: tc.max_channels } : {}),
          ...(tc.calls_per_minute !== undefined ? { callsPerMinute: tc.calls_per_minute } : {}),
          burst: tc.burst,
          maxQueued: tc.max_queued,
        },
        extensions: tc.extensions.map((e) => compileDigitPattern(e)),
        callerId: tc.caller_id,
      });
    }
    this.tenants = tenants;

    this.routes =
      config.routes.length > 0
        ? config.routes.map((r, i) => ({
            name: r.name ?? `routes[${i}] ${r.pattern}`,
            pattern: compileDigitPattern(r.pattern),
            trunks: r.trunks,
            digits: { strip: r.strip, prefix: r.prefix, e164: r.e164 },
            tenants: r.tenants === undefined ? undefined : new Set(r.tenants),
          }))
        : [{ name: 'default route', pattern: undefined, trunks: this.groups.map((g) => g.name), digits: { strip: 0, prefix: '', e164: false }, tenants: undefined }];

    this.dids = config.dids.map((d) => {
      const target: DidTarget =
        d.extension !== undefined
          ? { kind: 'extension', extension: d.extension }
          : d.group !== undefined
            ? { kind: 'group', group: d.group }
            : d.voicemail !== undefined
              ? { kind: 'voicemail', mailbox: d.voicemail }
              : { kind: 'app', app: d.app ?? '' };
      const owner = d.extension ?? d.voicemail;
      return { number: d.number, target, tenant: d.tenant ?? (owner !== undefined ? this.tenantOf(owner) : DEFAULT_TENANT) };
    });
  }

  /** The tenant policies for the allocator; "default" (if configured) governs every other caller. */
  tenantPolicies(): { tenants: TenantPolicy[]; otherTenants: Omit<TenantPolicy, 'name'> } {
    const all = [...this.tenants.values()].map((t) => t.policy);
    const fallback = this.tenants.get(DEFAULT_TENANT)?.policy;
    const { name: _name, ...otherTenants } = fallback ?? { name: DEFAULT_TENANT };
    return { tenants: all, otherTenants };
  }

  /** The tenant an extension belongs to (first tenant listing it), else "default". */
  tenantOf(extension: string | undefined): string {
    if (extension === undefined) return DEFAULT_TENANT;
    for (const [name, t] of this.tenants) if (t.extensions.some((p) => p.matches(extension))) return name;
    return DEFAULT_TENANT;
  }

  /**
   * Every channel of every trunk group, checked against the cards' real spans.
   * Throws an Error naming the trunk when it asks for a span or channel the card lacks.
   */
  channels(cards: CardSpans): PlannedChannel[] {
    const out: PlannedChannel[] = [];
    const owner = new Map<string, string>();
    for (const group of this.groups) {
      const spans = cards.get(group.linecard);
      if (!spans) throw new Error(`trunk ${group.name}: line card ${group.linecard} is not running`);
      const chosen = group.spans ?? spans.map((s) => s.span);
      for (const spanNumber of chosen) {
        const span = spans.find((s) => s.span === spanNumber);
        if (!span) throw new Error(`trunk ${group.name}: line card ${group.linecard} has no span ${spanNumber} (it has ${spans.length})`);
        const numbers = group.channels ?? Array.from({ length: span.channels }, (_, i) => i + 1);
        for (const channel of numbers) {
          if (channel > span.channels) throw new Error(`trunk ${group.name}: span ${spanNumber} of ${group.linecard} has ${span.channels} channels, not ${channel}`);
          const id = `${group.linecard}/${spanNumber}/${channel}`;
          const first = owner.get(id);
          if (first !== undefined) throw new Error(`trunk ${group.name}: channel ${id} is already in trunk ${first}`);
          owner.set(id, group.name);
          out.push({ id, group: group.name, direction: group.direction, card: group.linecard, span: spanNumber, channel });
        }
      }
    }
    return out;
  }

  /**
   * Which trunk groups an outside number goes to and the digits to send. The first
   * route whose pattern matches (and that the tenant may use) wins. An emergency call
   * with no matching route still goes out, as dialled, on every outbound-capable
   * group; emergency numbers are never rewritten to E.164.
   */
  outbound(number: string, tenant: string, emergency: boolean): OutboundPlan {
    const route = this.routes.find((r) => (r.pattern === undefined || r.pattern.matches(number)) && (r.tenants === undefined || r.tenants.has(tenant)));
    if (!route) {
      if (emergency) return { tenant, groups: this.groups.filter((g) => g.direction !== 'inbound').map((g) => g.name), dialled: number, route: 'emergency (no route matched)' };
      throw new TrunkError('ENO_ROUTE', `no outbound route for ${number}${this.tenants.size > 0 ? ` (tenant ${tenant})` : ''}`, { tenant });
    }
    const digits = emergency ? { ...route.digits, e164: false } : route.digits;
    let dialled: string;
    try {
      dialled = manipulateDigits(number, digits, this.numbering);
    } catch (err) {
      throw new TrunkError('ENO_ROUTE', `route ${route.name} cannot dial ${number}: ${(err as Error).message}`, { tenant, cause: err });
    }
    const groups = route.trunks.filter((name) => this.groups.find((g) => g.name === name)?.direction !== 'inbound');
    return { tenant, groups, dialled, route: route.name };
  }

  /** The DID entry for a dialled number: equal as delivered, or equal in E.164. */
  inbound(dialled: string): DidPlan | undefined {
    return this.dids.find((d) => d.number === dialled) ?? this.dids.find((d) => sameNumber(d.number, dialled, this.numbering));
  }

  /** The caller ID to send on a trunk group, by its policy. */
  callerId(groupName: string, tenant: string, caller: OutgoingCallerId): OutgoingCallerId {
    const group = this.groups.find((g) => g.name === groupName);
    if (!group || group.callerId === 'pass') return caller;
    const tenantNumber = group.callerId === 'tenant' ? this.tenants.get(tenant)?.callerId : undefined;
    const number = tenantNumber ?? group.callerIdNumber;
    if (number === undefined) return caller;
    // A fixed or tenant number replaces the caller's, but a caller who withheld
    // their number stays withheld.
    return { ...caller, number };
  }
}
