// Every hook outcome becomes one JSON line in the slot tree's journal.jsonl, written
// and fsynced before the next step starts: after a power cut the journal says how far
// the update got. Reporting the same lines upstream arrives with the MQTT link.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { HookName, HookOutcome, HookResult, HookScope, HookStatus } from './types.ts';
import { HookFailure } from './types.ts';

export interface JournalEntry {
  time: string;
  update_id: string | null;
  hook: HookName;
  slot: string | null;
  version: string | null;
  status: HookStatus;
  ms: number;
  detail: string;
  data?: Record<string, unknown>;
}

export class Journal {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  append(entry: JournalEntry): void {
    const fd = openSync(this.file, 'a', 0o644);
    try {
      writeSync(fd, `${JSON.stringify(entry)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  record(hook: HookName, scope: HookScope, outcome: HookOutcome, ms: number): JournalEntry {
    const entry: JournalEntry = {
      time: new Date().toISOString(),
      update_id: scope.update_id,
      hook,
      slot: scope.slot,
      version: scope.version,
      status: outcome.status,
      ms: Math.round(ms),
      detail: outcome.detail,
    };
    if (outcome.data) entry.data = outcome.data;
    this.append(entry);
    return entry;
  }

  entries(): JournalEntry[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((line) => line.trim())
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as JournalEntry];
        } catch {
          return []; // a line torn by a power cut: the rest of the journal still reads
        }
      });
  }
}

/**
 * Runs one hook, times it and journals its outcome. A hook that throws is journaled
 * as failed with the error's message; failed and postponed outcomes stop the sequence
 * by throwing HookFailure.
 */
export async function runHook<T>(journal: Journal, hook: HookName, scope: HookScope, body: () => Promise<HookResult<T>>): Promise<T> {
  const started = performance.now();
  let result: HookResult<T>;
  try {
    result = await body();
  } catch (err) {
    const outcome: HookOutcome = { status: 'failed', detail: err instanceof Error ? err.message : String(err) };
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') outcome.data = { code };
    journal.record(hook, scope, outcome, performance.now() - started);
    throw new HookFailure(hook, outcome, { cause: err });
  }
  journal.record(hook, { ...scope, ...result.scope }, result.outcome, performance.now() - started);
  if (result.outcome.status === 'failed' || result.outcome.status === 'postponed') throw new HookFailure(hook, result.outcome);
  return result.value;
}
