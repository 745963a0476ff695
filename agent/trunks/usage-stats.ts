// Channel usage summed per hour and tenant, for capacity planning: how many calls
// tried, how many were refused, how long the queued ones waited and how many channels
// were busy at the peak. Sums live in memory until usage-store.ts writes them; a
// write adds to what the store already holds, so nothing is lost across restarts.

import type { CallDirection, UsageSink } from './usage-sink.ts';

/** The tenant name under which the whole box's figures are kept. */
export const ALL_TENANTS = '*';

const HOUR_MS = 3_600_000;

export interface HourlyUsage {
  /** Start of the hour, epoch milliseconds (UTC hour boundary). */
  hourStart: number;
  /** Tenant name, or ALL_TENANTS for the box as a whole. */
  tenant: string;
  attemptsIn: number;
  attemptsOut: number;
  /** Outbound emergency calls (also counted in attemptsOut). */
  emergency: number;
  blockedIn: number;
  blockedOut: number;
  /** Outbound calls that waited in the fair queue. */
  queued: number;
  queueWaitMs: number;
  queueWaitMaxMs: number;
  /** Most channels in use at once during the hour. */
  peakChannels: number;
  /** Calls that lost their channel to an emergency call. */
  preempted: number;
}

export function hourStartOf(at: number): number {
  return Math.floor(at / HOUR_MS) * HOUR_MS;
}

export function emptyUsage(hourStart: number, tenant: string, peakChannels = 0): HourlyUsage {
  return { hourStart, tenant, attemptsIn: 0, attemptsOut: 0, emergency: 0, blockedIn: 0, blockedOut: 0, queued: 0, queueWaitMs: 0, queueWaitMaxMs: 0, peakChannels, preempted: 0 };
}

/** Adds `b` into `a` (same hour and tenant): counts add, maxima take the larger. */
export function mergeUsage(a: HourlyUsage, b: HourlyUsage): void {
  a.attemptsIn += b.attemptsIn;
  a.attemptsOut += b.attemptsOut;
  a.emergency += b.emergency;
  a.blockedIn += b.blockedIn;
  a.blockedOut += b.blockedOut;
  a.queued += b.queued;
  a.queueWaitMs += b.queueWaitMs;
  a.queueWaitMaxMs = Math.max(a.queueWaitMaxMs, b.queueWaitMaxMs);
  a.peakChannels = Math.max(a.peakChannels, b.peakChannels);
  a.preempted += b.preempted;
}

export class UsageRecorder implements UsageSink {
  readonly #buckets = new Map<string, HourlyUsage>();
  /** Channels in use now, by tenant, and for the box (ALL_TENANTS). */
  readonly #current = new Map<string, number>();

  attempt(tenant: string, direction: CallDirection, emergency: boolean, at: number): void {
    for (const b of this.#both(tenant, at)) {
      if (direction === 'inbound') b.attemptsIn++;
      else b.attemptsOut++;
      if (emergency) b.emergency++;
    }
  }

  blocked(tenant: string, direction: CallDirection, at: number): void {
    for (const b of this.#both(tenant, at)) {
      if (direction === 'inbound') b.blockedIn++;
      else b.blockedOut++;
    }
  }

  waited(tenant: string, ms: number, at: number): void {
    for (const b of this.#both(tenant, at)) {
      b.queued++;
      b.queueWaitMs += ms;
      b.queueWaitMaxMs = Math.max(b.queueWaitMaxMs, ms);
    }
  }

  inUse(tenant: string, tenantChannels: number, totalChannels: number, at: number): void {
    this.#current.set(tenant, tenantChannels);
    this.#current.set(ALL_TENANTS, totalChannels);
    const own = this.#bucket(tenant, at);
    own.peakChannels = Math.max(own.peakChannels, tenantChannels);
    const all = this.#bucket(ALL_TENANTS, at);
    all.peakChannels = Math.max(all.peakChannels, totalChannels);
  }

  preempted(tenant: string, at: number): void {
    for (const b of this.#both(tenant, at)) b.preempted++;
  }

  /**
   * Opens this hour's rows for every tenant with channels in use, so an hour in which
   * long calls merely continued still shows them at its peak.
   */
  touch(at: number): void {
    this.#bucket(ALL_TENANTS, at);
    for (const [tenant, n] of this.#current) if (n > 0) this.#bucket(tenant, at);
  }

  /** Hands over the sums gathered so far and starts again from zero. */
  drain(): HourlyUsage[] {
    const rows = [...this.#buckets.values()];
    this.#buckets.clear();
    return rows;
  }

  /** Puts back rows that could not be written, so the next write carries them. */
  restore(rows: readonly HourlyUsage[]): void {
    for (const row of rows) mergeUsage(this.#bucket(row.tenant, row.hourStart), row);
  }

  #both(tenant: string, at: number): [HourlyUsage, HourlyUsage] {
    return [this.#bucket(tenant, at), this.#bucket(ALL_TENANTS, at)];
  }

  #bucket(tenant: string, at: number): HourlyUsage {
    const hourStart = hourStartOf(at);
    const key = `${hourStart}\0${tenant}`;
    let b = this.#buckets.get(key);
    if (!b) {
      // Calls that were up when the hour began count towards its peak.
      b = emptyUsage(hourStart, tenant, this.#current.get(tenant) ?? 0);
      this.#buckets.set(key, b);
    }
    return b;
  }
}
