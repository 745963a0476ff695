// Small durable facts of the sync subsystem (applied config and its version, the
// health mode, answers to recent commands), in the agent's store (migration 2).
import type { Database } from '../store/db.ts';
import type { GroupCommitter } from '../store/group-commit.ts';

export class SyncStateStore {
  readonly #db: Database;
  readonly #committer: GroupCommitter;

  constructor(db: Database, committer: GroupCommitter) {
    this.#db = db;
    this.#committer = committer;
  }

  async get<T>(key: string): Promise<T | undefined> {
    const row = await this.#db.get<{ value: string }>('SELECT value FROM sync_state WHERE key = ?', [key]);
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  async set(entries: Record<string, unknown>): Promise<void> {
    const now = Date.now();
    await this.#committer.submit(
      Object.entries(entries).map(([key, value]) => ({
        sql: 'INSERT INTO sync_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
        params: [key, JSON.stringify(value), now],
      })),
    );
  }

  async commandResponse(id: string): Promise<string | undefined> {
    const row = await this.#db.get<{ response: string }>('SELECT response FROM sync_commands WHERE id = ?', [id]);
    return row?.response;
  }

  async saveCommandResponse(id: string, response: string): Promise<void> {
    await this.#committer.submit([{ sql: 'INSERT OR IGNORE INTO sync_commands (id, response, at) VALUES (?, ?, ?)', params: [id, response, Date.now()] }]);
  }

  async pruneCommands(olderThanMs: number): Promise<void> {
    await this.#committer.submit([{ sql: 'DELETE FROM sync_commands WHERE at < ?', params: [Date.now() - olderThanMs] }]);
  }
}
