// Hourly channel usage in SQLite (table trunk_usage_hourly, migration 5). Each write
// adds the recorder's new sums to the stored row of the same hour and tenant, so
// writes can be as frequent as wanted and a restart loses at most the sums since the
// last write.

import type { Database, SqlValue } from '../store/db.ts';
import type { TrunkClock } from './clock.ts';
import { ALL_TENANTS, emptyUsage, mergeUsage, type HourlyUsage, type UsageRecorder } from './usage-stats.ts';

const UPSERT = `INSERT INTO trunk_usage_hourly
  (hour_start, tenant, attempts_in, attempts_out, emergency, blocked_in, blocked_out, queued, queue_wait_ms, queue_wait_max_ms, peak_channels, preempted)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (hour_start, tenant) DO UPDATE SET
    attempts_in = attempts_in + excluded.attempts_in,
    attempts_out = attempts_out + excluded.attempts_out,
    emergency = emergency + excluded.emergency,
    blocked_in = blocked_in + excluded.blocked_in,
    blocked_out = blocked_out + excluded.blocked_out,
    queued = queued + excluded.queued,
    queue_wait_ms = queue_wait_ms + excluded.queue_wait_ms,
    queue_wait_max_ms = MAX(queue_wait_max_ms, excluded.queue_wait_max_ms),
    peak_channels = MAX(peak_channels, excluded.peak_channels),
    preempted = preempted + excluded.preempted`;

export function usageStatements(rows: readonly HourlyUsage[]): Array<{ sql: string; params: SqlValue[] }> {
  return rows.map((r) => ({
    sql: UPSERT,
    params: [r.hourStart, r.tenant, r.attemptsIn, r.attemptsOut, r.emergency, r.blockedIn, r.blockedOut, r.queued, Math.round(r.queueWaitMs), Math.round(r.queueWaitMaxMs), r.peakChannels, r.preempted],
  }));
}

interface UsageRow {
  hour_start: number;
  tenant: string;
  attempts_in: number;
  attempts_out: number;
  emergency: number;
  blocked_in: number;
  blocked_out: number;
  queued: number;
  queue_wait_ms: number;
  queue_wait_max_ms: number;
  peak_channels: number;
  preempted: number;
}

function fromRow(r: UsageRow): HourlyUsage {
  return {
    hourStart: r.hour_start,
    tenant: r.tenant,
    attemptsIn: r.attempts_in,
    attemptsOut: r.attempts_out,
    emergency: r.emergency,
    blockedIn: r.blocked_in,
    blockedOut: r.blocked_out,
    queued: r.queued,
    queueWaitMs: r.queue_wait_ms,
    queueWaitMaxMs: r.queue_wait_max_ms,
    peakChannels: r.peak_channels,
    preempted: r.preempted,
  };
}

/** Stored hours in [from, to), oldest first; one tenant, or every tenant and the box total. */
export async function loadHourlyUsage(db: Database, range: { from: number; to: number; tenant?: string }): Promise<HourlyUsage[]> {
  const params: SqlValue[] = [range.from, range.to];
  let sql = 'SELECT * FROM trunk_usage_hourly WHERE hour_start >= ? AND hour_start < ?';
  if (range.tenant !== undefined) {
    sql += ' AND tenant = ?';
    params.push(range.tenant);
  }
  return (await db.all<UsageRow>(`${sql} ORDER BY hour_start, tenant`, params)).map(fromRow);
}

export interface HourOfDayUsage extends Omit<HourlyUsage, 'hourStart'> {
  /** 0-23, in the time zone given by the offset. */
  hourOfDay: number;
  /** How many stored hours were folded into this one. */
  samples: number;
}

/**
 * The capacity-planning view: stored hours in [from, to) folded by hour of day, counts
 * summed and peaks the highest seen. `utcOffsetMinutes` moves the day to local time
 * (e.g. -300 for UTC-5); default UTC.
 */
export async function usageByHourOfDay(db: Database, range: { from: number; to: number; tenant?: string; utcOffsetMinutes?: number }): Promise<HourOfDayUsage[]> {
  const tenant = range.tenant ?? ALL_TENANTS;
  const offsetMs = (range.utcOffsetMinutes ?? 0) * 60_000;
  const sums = Array.from({ length: 24 }, () => emptyUsage(0, tenant));
  const samples = new Array<number>(24).fill(0);
  for (const row of await loadHourlyUsage(db, { from: range.from, to: range.to, tenant })) {
    const hour = (((Math.floor((row.hourStart + offsetMs) / 3_600_000) % 24) + 24) % 24) as number;
    mergeUsage(sums[hour] as HourlyUsage, row);
    samples[hour] = (samples[hour] as number) + 1;
  }
  return sums.map(({ hourStart: _unused, ...sum }, hourOfDay) => ({ ...sum, hourOfDay, samples: samples[hourOfDay] as number }));
}

/**
 * Writes the recorder's sums every `intervalMs` and on stop. A failed write puts the
 * sums back for the next attempt rather than dropping them.
 */
export class UsagePersister {
  readonly #db: Database;
  readonly #recorder: UsageRecorder;
  readonly #clock: TrunkClock;
  readonly #intervalMs: number;
  readonly #onError: (err: unknown) => void;
  #cancelTimer: (() => void) | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(opts: { db: Database; recorder: UsageRecorder; clock: TrunkClock; intervalMs?: number; onError?: (err: unknown) => void }) {
    this.#db = opts.db;
    this.#recorder = opts.recorder;
    this.#clock = opts.clock;
    this.#intervalMs = opts.intervalMs ?? 60_000;
    this.#onError = opts.onError ?? (() => undefined);
  }

  start(): void {
    if (this.#cancelTimer) return;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    await this.flush();
  }

  /** Writes what was gathered since the last write; resolves once it is committed. */
  flush(): Promise<void> {
    // Open this hour's rows now, while the channels in use are those of this moment.
    this.#recorder.touch(this.#clock.now());
    // One write at a time keeps the deltas in order.
    this.#writing = this.#writing.catch(() => undefined).then(() => this.#write());
    return this.#writing;
  }

  async #write(): Promise<void> {
    const rows = this.#recorder.drain();
    if (rows.length === 0) return;
    try {
      await this.#db.transaction(usageStatements(rows));
    } catch (err) {
      this.#recorder.restore(rows);
      throw err;
    }
  }

  #schedule(): void {
    this.#cancelTimer = this.#clock.setTimer(this.#intervalMs, () => {
      this.flush().catch(this.#onError);
      if (this.#cancelTimer) this.#schedule();
    });
  }
}
