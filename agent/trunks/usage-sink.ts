// What the channel allocator reports for capacity planning. The allocator calls these
// as things happen; agent/trunks/usage-stats.ts sums them per hour and tenant, and
// usage-store.ts keeps the sums in SQLite.

export type CallDirection = 'inbound' | 'outbound';

export interface UsageSink {
  /** A call asked for a channel. */
  attempt(tenant: string, direction: CallDirection, emergency: boolean, at: number): void;
  /** A call was refused a channel (throttled, queue full or timed out, out of service, cap). */
  blocked(tenant: string, direction: CallDirection, at: number): void;
  /** A call left the fair queue (with a channel, timed out or cancelled) after `ms`. */
  waited(tenant: string, ms: number, at: number): void;
  /** Channels in use changed: this tenant's count and the whole box's. */
  inUse(tenant: string, tenantChannels: number, totalChannels: number, at: number): void;
  /** A call of this tenant lost its channel to an emergency call. */
  preempted(tenant: string, at: number): void;
}
