// commit: the trial slot passed its verify; mark it good and end the trial. The other
// slot keeps the previous release as the fallback for the next update. Idempotent: a
// commit with no trial left has nothing to do.
import type { SlotTree } from '../image/slots/tree.ts';
import { ok, skipped, type HookResult } from './types.ts';

export interface CommitValue {
  /** install-check start → commit, for the figure. */
  updateMs: number | null;
}

export async function commit(tree: SlotTree): Promise<HookResult<CommitValue>> {
  const before = tree.readState();
  const trial = before.trial;
  if (!trial) {
    const active = tree.boot.selected();
    return { outcome: skipped(`nothing on trial; slot ${active ?? '-'} is ${active ? before.slots[active].state : 'empty'}`), value: { updateMs: null } };
  }
  const now = new Date();
  tree.updateState((s) => {
    s.slots[trial.slot] = { ...s.slots[trial.slot], state: 'committed', committed_at: now.toISOString(), reason: null };
    s.trial = null;
  });
  const updateMs = now.getTime() - Date.parse(trial.started_at);
  return {
    outcome: ok(`slot ${trial.slot} (${before.slots[trial.slot].version}) committed; slot ${trial.previous} (${before.slots[trial.previous].version ?? '-'}) stays as fallback`, {
      update_ms: updateMs,
      boots: trial.boots,
    }),
    value: { updateMs },
  };
}
