// What users changed with feature codes (*78 do-not-disturb, *72 forward...), per
// extension, in the agent's SQLite store (table from migration 3). The dial plan is
// synchronous, so the state is loaded once at start and kept in memory; a change is
// durable before it shows in memory, so a confirmation tone never lies.
import type { Database } from './db.ts';
import type { GroupCommitter } from './group-commit.ts';

/**
 * Overrides of an extension's configured routing. For each key: absent means "as the
 * config says"; for forwards, `false` means "off" (turned off by feature code even if
 * the config sets one) and a string is the number calls are forwarded to.
 */
export interface FeatureOverrides {
  dnd?: boolean;
  forwardAlways?: string | false;
  forwardBusy?: string | false;
  forwardNoAnswer?: string | false;
}

/** What the dial plan reads. */
export interface FeatureStateSource {
  get(extension: string): Readonly<FeatureOverrides> | undefined;
}

interface FeatureRow {
  extension: string;
  dnd: number | null;
  forward_always: string | null;
  forward_busy: string | null;
  forward_no_answer: string | null;
}

/** NULL: no override; '': off; digits: forward there. */
function forwardFromColumn(v: string | null): string | false | undefined {
  if (v === null) return undefined;
  return v === '' ? false : v;
}

function forwardToColumn(v: string | false | undefined): string | null {
  if (v === undefined) return null;
  return v === false ? '' : v;
}

function fromRow(r: FeatureRow): FeatureOverrides {
  const o: FeatureOverrides = {};
  if (r.dnd !== null) o.dnd = r.dnd === 1;
  const always = forwardFromColumn(r.forward_always);
  const busy = forwardFromColumn(r.forward_busy);
  const noAnswer = forwardFromColumn(r.forward_no_answer);
  if (always !== undefined) o.forwardAlways = always;
  if (busy !== undefined) o.forwardBusy = busy;
  if (noAnswer !== undefined) o.forwardNoAnswer = noAnswer;
  return o;
}

export class FeatureStateStore implements FeatureStateSource {
  readonly #committer: GroupCommitter;
  readonly #state = new Map<string, FeatureOverrides>();

  private constructor(committer: GroupCommitter) {
    this.#committer = committer;
  }

  /** Reads every extension's overrides into memory. */
  static async load(db: Database, committer: GroupCommitter): Promise<FeatureStateStore> {
    const store = new FeatureStateStore(committer);
    for (const row of await db.all<FeatureRow>('SELECT extension, dnd, forward_always, forward_busy, forward_no_answer FROM feature_state')) {
      store.#state.set(row.extension, fromRow(row));
    }
    return store;
  }

  get(extension: string): Readonly<FeatureOverrides> | undefined {
    return this.#state.get(extension);
  }

  /**
   * Replaces an extension's overrides; resolves once durable, and only then does the
   * dial plan see them. An empty object clears them (back to the config). The
   * extension must exist in the store (it is synced from the config at start).
   */
  async set(extension: string, overrides: FeatureOverrides): Promise<void> {
    const o = { ...overrides };
    const empty = o.dnd === undefined && o.forwardAlways === undefined && o.forwardBusy === undefined && o.forwardNoAnswer === undefined;
    if (empty) {
      await this.#committer.submit([{ sql: 'DELETE FROM feature_state WHERE extension = ?', params: [extension] }]);
      this.#state.delete(extension);
      return;
    }
    await this.#committer.submit([
      {
        sql: `INSERT INTO feature_state (extension, dnd, forward_always, forward_busy, forward_no_answer, updated_at) VALUES (?, ?, ?, ?, ?, ?)
              ON CONFLICT(extension) DO UPDATE SET dnd = excluded.dnd, forward_always = excluded.forward_always,
                forward_busy = excluded.forward_busy, forward_no_answer = excluded.forward_no_answer, updated_at = excluded.updated_at`,
        params: [extension, o.dnd === undefined ? null : o.dnd ? 1 : 0, forwardToColumn(o.forwardAlways), forwardToColumn(o.forwardBusy), forwardToColumn(o.forwardNoAnswer), Date.now()],
      },
    ]);
    this.#state.set(extension, o);
  }
}
