// pre-install: clear the target slot and mark it `installing`, so that a power cut
// from here on leaves a slot that is plainly unusable rather than half of something.
// Never touches the active slot. Skipped when the slot already holds this bundle.
import { existsSync, rmSync } from 'node:fs';
import type { SlotTree } from '../image/slots/tree.ts';
import type { InstallPlan } from './install-check.ts';
import { ok, skipped, type HookResult } from './types.ts';

export class PreInstallError extends Error {
  readonly code = 'EPREINSTALL_ACTIVE';
}

/** Whether the target already holds exactly this bundle, installed and checked. */
export function alreadyInstalled(tree: SlotTree, plan: InstallPlan): boolean {
  const slot = tree.readState().slots[plan.target];
  return slot.state === 'installed' && slot.bundle_id === plan.bundleId && existsSync(tree.slotDir(plan.target));
}

export async function preInstall(tree: SlotTree, plan: InstallPlan): Promise<HookResult<{ fresh: boolean }>> {
  if (tree.boot.selected() === plan.target) throw new PreInstallError(`slot ${plan.target} is the active slot; refusing to overwrite it`);
  if (alreadyInstalled(tree, plan)) {
    return { outcome: skipped(`slot ${plan.target} already holds ${plan.manifest.version}`), value: { fresh: false } };
  }
  tree.updateState((s) => {
    s.slots[plan.target] = {
      state: 'installing',
      version: plan.manifest.version,
      bundle_id: plan.bundleId,
      key_id: plan.keyId,
      installed_at: null,
      committed_at: null,
      rolled_back_at: null,
      reason: null,
    };
  });
  rmSync(tree.slotDir(plan.target), { recursive: true, force: true });
  rmSync(`${tree.slotDir(plan.target)}.new`, { recursive: true, force: true });
  return { outcome: ok(`slot ${plan.target} cleared for ${plan.manifest.version}`), value: { fresh: true } };
}
