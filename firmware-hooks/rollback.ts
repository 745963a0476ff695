// rollback: the trial slot failed its verify or kept crashing; point the boot back at
// the previous slot and mark the trial slot rolled back with the reason. Idempotent:
// with no trial left, the pointer is already where it belongs.
import type { SlotTree } from '../image/slots/tree.ts';
import { ok, skipped, type HookResult } from './types.ts';

export interface RollbackValue {
  /** The slot that boots next, or null when there was nothing to roll back. */
  slot: string | null;
  version: string | null;
}

export async function rollback(tree: SlotTree, reason: string): Promise<HookResult<RollbackValue>> {
  const before = tree.readState();
  const trial = before.trial;
  if (!trial) return { outcome: skipped('nothing on trial to roll back'), value: { slot: null, version: null } };
  // Pointer first: if power fails between the two writes, the next boot step sees a
  // trial whose slot is no longer selected and the old slot serves either way.
  tree.boot.select(trial.previous);
  tree.updateState((s) => {
    s.slots[trial.slot] = { ...s.slots[trial.slot], state: 'rolled-back', rolled_back_at: new Date().toISOString(), reason };
    s.trial = null;
  });
  const version = before.slots[trial.previous].version;
  return {
    outcome: ok(`slot ${trial.slot} (${before.slots[trial.slot].version}) rolled back to slot ${trial.previous} (${version}): ${reason}`, { reason }),
    value: { slot: trial.previous, version },
  };
}
