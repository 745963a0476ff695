// What the controller keeps about the fleet — ingested up messages (stored once by
// id), site states, reported and desired configuration, latest telemetry — behind one
// interface with two implementations: SQLite in the state directory (the default,
// controller/store.ts) and PostgreSQL when a database URL is configured
// (controller/postgres-store.ts). Both are run through the same contract tests.
import type { RecordRow, SiteStateName, SiteSummary, StreamName, UpMessage } from '../agent/sync/protocol.ts';

/** The site list, the same SQL on SQLite and PostgreSQL (no parameters). */
export const SITES_QUERY = `SELECT s.site, s.state, s.state_since, s.agent, s.boot, s.config_version, s.desired_version, s.last_seen,
       (SELECT COUNT(*) FROM messages m WHERE m.site = s.site AND m.stream = 'records') AS records
  FROM sites s ORDER BY s.site`;

/** A row of SITES_QUERY: a SiteSummary whose state is still the stored text. */
export type SiteRow = Omit<SiteSummary, 'state'> & { state: string };

export function siteSummary(r: SiteRow): SiteSummary {
  return { ...r, state: r.state as SiteStateName };
}

/** A stored message as both stores read it: its data still the stored JSON text. */
export type MessageRow = Omit<RecordRow, 'data'> & { data: string };

export function recordRow(r: MessageRow): RecordRow {
  return { ...r, data: JSON.parse(r.data) as unknown };
}

export interface IngestResult {
  inserted: number;
  duplicates: number;
}

export interface SiteStateUpdate {
  site: string;
  state: SiteStateName;
  agent: string;
  boot: string;
  config_version: number;
  since: number;
}

export interface FleetStore {
  /** Which implementation, for logs: `sqlite` or `postgres`. */
  readonly kind: 'sqlite' | 'postgres';
  /**
   * Commits a batch of up messages in one transaction; a message whose id is stored
   * already is ignored. Telemetry is not kept as history: each site's latest sample
   * replaces the previous one. Resolves once durable.
   */
  ingest(messages: readonly UpMessage[], now?: number): Promise<IngestResult>;
  setSiteState(s: SiteStateUpdate, now?: number): Promise<void>;
  setReported(site: string, version: number, reported: unknown): Promise<void>;
  /**
   * Sets the site's desired config to the next version; with `baseVersion`, only if
   * that is still the current one (optimistic concurrency, safe across instances).
   */
  pushDesired(site: string, config: Record<string, unknown>, baseVersion?: number): Promise<{ version: number } | { conflict: number }>;
  desired(site: string): Promise<{ version: number; config: Record<string, unknown> } | undefined>;
  sites(): Promise<SiteSummary[]>;
  /** A site's stored messages of one stream, in seq order. */
  messages(site: string, stream: StreamName, opts?: { limit?: number; afterSeq?: number }): Promise<RecordRow[]>;
  count(site: string, stream: StreamName): Promise<number>;
  telemetry(site: string): Promise<unknown>;
  close(): Promise<void>;
}

export interface FleetStoreConfig {
  stateDir: string;
  /** `postgres://…`: use PostgreSQL instead of SQLite in the state directory. */
  databaseUrl?: string;
}

export async function openFleetStore(config: FleetStoreConfig): Promise<FleetStore> {
  if (config.databaseUrl !== undefined) {
    const { PostgresFleetStore } = await import('./postgres-store.ts');
    return PostgresFleetStore.open(config.databaseUrl);
  }
  const { ControllerStore } = await import('./store.ts');
  return ControllerStore.open(config.stateDir);
}
