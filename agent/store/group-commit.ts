import type { Database, SqlValue } from './db.ts';

export interface Statement {
  sql: string;
  params: SqlValue[];
}

interface Job {
  statements: Statement[];
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Group commit: writes submitted while a transaction is being fsynced wait and then
 * go together in the next one. Each caller's promise resolves only once its
 * statements are durable, so "respond after commit" costs one fsync per batch, not
 * one per request. If a batch fails, its jobs are retried one by one so a single
 * bad write cannot take its neighbours down with it.
 */
export class GroupCommitter {
  readonly #db: Database;
  #queue: Job[] = [];
  #running = false;
  #batches = 0;
  #jobs = 0;

  readonly #coalesceMs: number;

  constructor(db: Database, opts: { coalesceMs?: number } = {}) {
    this.#db = db;
    this.#coalesceMs = opts.coalesceMs ?? 0;
  }

  submit(statements: Statement[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ statements, resolve, reject });
      if (!this.#running) this.#drain();
    });
  }

  get stats(): { batches: number; jobs: number; queued: number } {
    return { batches: this.#batches, jobs: this.#jobs, queued: this.#queue.length };
  }

  /** Resolves when nothing is queued or in flight. */
  async idle(): Promise<void> {
    while (this.#running || this.#queue.length > 0) await new Promise((r) => setTimeout(r, 5));
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        // Let writes that arrive in the next moment join this batch: a commit (and
        // its fsync) costs about the same for one statement as for fifty.
        if (this.#coalesceMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#coalesceMs));
        const batch = this.#queue;
        this.#queue = [];
        this.#batches++;
        this.#jobs += batch.length;
        try {
          await this.#db.transaction(batch.flatMap((j) => j.statements));
          for (const job of batch) job.resolve();
        } catch (err) {
          if (batch.length === 1) {
            batch[0]?.reject(err as Error);
            continue;
          }
          for (const job of batch) {
            await this.#db.transaction(job.statements).then(job.resolve, job.reject);
          }
        }
      }
    } finally {
      this.#running = false;
    }
  }
}
