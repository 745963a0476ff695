// What happens around each start of the agent on a slot tree — the part a bootloader
// and the service manager play on an appliance:
//   boot step  (before the agent starts): counts the trial slot's starts and rolls back
//              when it keeps starting without ever committing (crash loop, watchdog);
//   verify step (after it started): post-boot verify, then commit or rollback.
import type { AgentConfig } from '../agent/config/types.ts';
import { commit } from '../firmware-hooks/commit.ts';
import { Journal, runHook } from '../firmware-hooks/journal.ts';
import { postBootVerify, type CheckResult } from '../firmware-hooks/post-boot-verify.ts';
import { rollback } from '../firmware-hooks/rollback.ts';
import { HookFailure, ok, type HookScope } from '../firmware-hooks/types.ts';
import type { SlotName } from './slots/state.ts';
import type { SlotTree } from './slots/tree.ts';

export type BootAction =
  | { action: 'none'; slot: SlotName | null; detail: string }
  | { action: 'trial'; slot: SlotName; boots: number; maxBoots: number }
  | { action: 'rolled-back'; slot: SlotName | null; version: string | null; reason: string };

/** Before the agent starts: one more start of the trial slot, or a rollback if it had enough. */
export async function bootStep(tree: SlotTree): Promise<BootAction> {
  const release = tree.lock();
  try {
    const state = tree.readState();
    const selected = tree.boot.selected();
    const trial = state.trial;
    if (!trial) return { action: 'none', slot: selected, detail: selected ? `slot ${selected} (${state.slots[selected].version}) is ${state.slots[selected].state}` : 'no slot installed' };
    const journal = new Journal(tree.journalFile);
    const scope: HookScope = { update_id: trial.update_id, slot: trial.slot, version: state.slots[trial.slot].version };
    if (selected !== trial.slot) {
      // The switch never completed (power cut between recording and pointing): the old
      // slot serves; end the trial so the next update can start cleanly.
      const r = await runHook(journal, 'rollback', scope, () => rollback(tree, `the switch to slot ${trial.slot} did not complete`));
      return { action: 'rolled-back', slot: r.slot as SlotName | null, version: r.version, reason: `the switch to slot ${trial.slot} did not complete` };
    }
    const boots = trial.boots + 1;
    if (boots > trial.max_boots) {
      const reason = `watchdog: slot ${trial.slot} started ${trial.boots} time(s) without passing post-boot verify`;
      const r = await runHook(journal, 'rollback', scope, () => rollback(tree, reason));
      return { action: 'rolled-back', slot: r.slot as SlotName | null, version: r.version, reason };
    }
    tree.updateState((s) => {
      if (s.trial) s.trial.boots = boots;
    });
    journal.record('boot', scope, ok(`start ${boots} of ${trial.max_boots} of slot ${trial.slot} on trial`), 0);
    return { action: 'trial', slot: trial.slot, boots, maxBoots: trial.max_boots };
  } finally {
    release();
  }
}

export type VerifyAction =
  | { action: 'none'; detail: string }
  | { action: 'committed'; slot: SlotName; version: string | null; updateMs: number | null; checks: CheckResult[] }
  | { action: 'rolled-back'; slot: SlotName; version: string | null; failedSlot: SlotName; reason: string };

/**
 * After the agent started from the selected slot: verify it; commit on success, roll
 * back on failure. A rollback only moves the pointer — the caller (the service
 * manager) restarts the agent, which then starts from the previous slot.
 */
export async function verifyStep(tree: SlotTree, config: AgentConfig, deadlineMs: number): Promise<VerifyAction> {
  const release = tree.lock();
  try {
    const state = tree.readState();
    const trial = state.trial;
    const selected = tree.boot.selected();
    if (!trial || selected !== trial.slot) {
      return { action: 'none', detail: selected ? `nothing on trial; slot ${selected} (${state.slots[selected].version}) is ${state.slots[selected].state}` : 'no slot installed' };
    }
    const journal = new Journal(tree.journalFile);
    const scope: HookScope = { update_id: trial.update_id, slot: trial.slot, version: state.slots[trial.slot].version };
    let checks: CheckResult[];
    try {
      checks = await runHook(journal, 'post-boot-verify', scope, () => postBootVerify({ config, expectBindings: trial.expect_bindings, deadlineMs }));
    } catch (err) {
      if (!(err instanceof HookFailure)) throw err;
      const reason = `post-boot verify failed: ${err.outcome.detail}`;
      const r = await runHook(journal, 'rollback', scope, () => rollback(tree, reason));
      return { action: 'rolled-back', slot: r.slot as SlotName, version: r.version, failedSlot: trial.slot, reason };
    }
    const c = await runHook(journal, 'commit', scope, () => commit(tree));
    return { action: 'committed', slot: trial.slot, version: state.slots[trial.slot].version, updateMs: c.updateMs, checks };
  } finally {
    release();
  }
}
