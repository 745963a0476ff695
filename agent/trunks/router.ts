// Where an `external` dial-plan target goes: the ordered trunk-group candidates for a
// number and tenant (route, digits, caller ID), and a channel from one of them
// through the allocator. Carrying the call on the line — and moving on to the next
// candidate when one fails — is trunk-service.ts's job.

import type { ChannelAllocator, ChannelGrant } from './channel-allocator.ts';
import { TrunkError } from './errors.ts';
import type { OutgoingCallerId, TrunkPlan } from './plan.ts';

export interface ExternalCallRequest {
  /** The number from the dial plan's `external` target. */
  number: string;
  emergency: boolean;
  /** The tenant, when the caller already knows it; otherwise the caller's extension decides. */
  tenant?: string;
  callerExtension?: string;
  /** What the caller would present; the trunk's caller ID policy may replace the number. */
  callerId: OutgoingCallerId;
  /** The call this is for (logs, grants). */
  callRef?: string;
  /** Aborted when the caller hangs up: leaves the queue, or clears the line. */
  signal?: AbortSignal;
}

/** One trunk group the call may go out on, with what to send there. */
export interface TrunkCandidate {
  group: string;
  dialled: string;
  callerId: OutgoingCallerId;
}

export interface RoutedCall {
  tenant: string;
  route: string;
  /** In failover order. */
  candidates: TrunkCandidate[];
}

export class TrunkRouter {
  readonly #plan: TrunkPlan;
  readonly #allocator: ChannelAllocator;

  constructor(plan: TrunkPlan, allocator: ChannelAllocator) {
    this.#plan = plan;
    this.#allocator = allocator;
  }

  /** The candidates for a call, best first. Throws TrunkError ENO_ROUTE when no route takes the number. */
  route(request: ExternalCallRequest): RoutedCall {
    const tenant = request.tenant ?? this.#plan.tenantOf(request.callerExtension);
    const outbound = this.#plan.outbound(request.number, tenant, request.emergency);
    if (outbound.groups.length === 0) throw new TrunkError('ENO_ROUTE', `route ${outbound.route} has no outbound trunk group`, { tenant });
    return {
      tenant,
      route: outbound.route,
      candidates: outbound.groups.map((group) => ({ group, dialled: outbound.dialled, callerId: this.#plan.callerId(group, tenant, request.callerId) })),
    };
  }

  /**
   * A channel from the first candidate group, not in `exclude`, that has one free;
   * waits in the fair queue when all are busy. Rejects with the allocator's
   * TrunkError, or with `lastFailure` when every candidate has been excluded.
   */
  async acquire(request: ExternalCallRequest, routed: RoutedCall, exclude: ReadonlySet<string>, lastFailure?: TrunkError): Promise<{ grant: ChannelGrant; candidate: TrunkCandidate }> {
    const remaining = routed.candidates.filter((c) => !exclude.has(c.group));
    if (remaining.length === 0) {
      throw lastFailure ?? new TrunkError('ECONGESTION', `every trunk group of route ${routed.route} failed`, { tenant: routed.tenant });
    }
    const grant = await this.#allocator.requestOutbound({
      tenant: routed.tenant,
      groups: remaining.map((c) => c.group),
      emergency: request.emergency,
      ...(request.callRef !== undefined ? { callRef: request.callRef } : {}),
      ...(request.signal !== undefined ? { signal: request.signal } : {}),
    });
    // An emergency call may be given a channel outside its route's groups (any idle
    // outbound channel, or a pre-empted one): it dials the route's digits there.
    const candidate = remaining.find((c) => c.group === grant.group) ?? { ...(remaining[0] as TrunkCandidate), group: grant.group };
    return { grant, candidate };
  }
}
