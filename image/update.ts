// `branchline update`: puts a bundle into the inactive slot and selects it for the next
// start, hook by hook, each outcome journaled. The running slot is never written. The
// trial ends later, in the new slot: post-boot verify commits it or rolls it back.
import { renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { installCheck, updateId, type InstallPlan } from '../firmware-hooks/install-check.ts';
import { Journal, runHook } from '../firmware-hooks/journal.ts';
import { postInstall } from '../firmware-hooks/post-install.ts';
import { preInstall } from '../firmware-hooks/pre-install.ts';
import { preReboot } from '../firmware-hooks/pre-reboot.ts';
import type { ActiveCallsSource } from '../firmware-hooks/probes/active-calls.ts';
import { ok, skipped, type HookScope } from '../firmware-hooks/types.ts';
import { BundleError } from './bundle/errors.ts';
import { keyRingFromDir, type KeyRing } from './bundle/signing.ts';
import { IMAGE_KEYS_DIR } from './layout.ts';
import { fsyncDir, type SlotName } from './slots/state.ts';
import type { SlotTree } from './slots/tree.ts';
import { settleUnpackedFiles } from './settle-files.ts';
import { unpackImage } from './squashfs.ts';

export const DEFAULT_MAX_BOOTS = 3;

export interface UpdateOptions {
  tree: SlotTree;
  bundle: string;
  /** Trust these keys instead of the running slot's (first flash, or an operator's choice). */
  keys?: KeyRing;
  architecture?: string;
  calls: ActiveCallsSource;
  /** Longest pre-reboot wait for calls to end. */
  callDeadlineMs: number;
  callPollMs?: number;
  /** The agent's state folder (registrations snapshot); null when no agent config was given. */
  stateDir: string | null;
  /** Starts of the new slot allowed without a commit before the boot step rolls back. */
  maxBoots?: number;
}

export interface UpdateResult {
  /** `flashed`: first install into an empty tree, committed at once. `selected`: on trial, boots next. */
  status: 'flashed' | 'selected';
  updateId: string;
  slot: SlotName;
  version: string;
  previous: { slot: SlotName; version: string | null } | null;
}

/** The trusted keys of the slot that runs now: the chain of trust moves with each update. */
export function activeSlotKeys(tree: SlotTree): KeyRing {
  const active = tree.boot.selected();
  return active ? keyRingFromDir(path.join(tree.slotDir(active), IMAGE_KEYS_DIR)) : new Map();
}

export async function installUpdate(opts: UpdateOptions): Promise<UpdateResult> {
  const { tree } = opts;
  const release = tree.lock();
  const journal = new Journal(tree.journalFile);
  const imageCopy = path.join(tree.workDir, 'image.squashfs');
  const startedAt = new Date().toISOString();
  try {
    const keys = opts.keys ?? activeSlotKeys(tree);
    if (keys.size === 0 && !tree.boot.selected()) {
      throw new BundleError('EBUNDLE_NO_TRUST', `slot tree ${tree.root} is empty: the first install needs --key FILE to know whom to trust`);
    }
    const unscoped: HookScope = { update_id: null, slot: null, version: null };
    const plan: InstallPlan = await runHook(journal, 'install-check', unscoped, () =>
      installCheck({ tree, bundle: opts.bundle, keys, architecture: opts.architecture ?? process.arch, imageCopy }),
    );
    const scope: HookScope = { update_id: updateId(plan.manifest.version, plan.bundleId), slot: plan.target, version: plan.manifest.version };
    const { fresh } = await runHook(journal, 'pre-install', scope, () => preInstall(tree, plan));
    await runHook(journal, 'install', scope, async () => {
      if (!fresh) return { outcome: skipped('already unpacked'), value: undefined };
      const dest = tree.slotDir(plan.target);
      const staging = `${dest}.new`;
      await unpackImage(plan.imageFile, staging);
      const settled = await settleUnpackedFiles(staging);
      renameSync(staging, dest);
      fsyncDir(path.dirname(dest));
      return { outcome: ok(`unpacked into ${dest} (${settled.synced} files synced, ${settled.dropped} dropped from the page cache)`), value: undefined };
    });
    await runHook(journal, 'post-install', scope, () => postInstall(tree, plan));

    const state = tree.readState();
    const previous = plan.active ? { slot: plan.active, version: state.slots[plan.active].version } : null;
    if (!plan.active) {
      // A first flash: no agent runs and there is nothing to fall back to, so there is
      // no call to wait for and no trial; the factory image is committed as installed.
      tree.boot.select(plan.target);
      journal.record('switch', scope, ok(`slot ${plan.target} selected (first install)`), 0);
      const now = new Date().toISOString();
      tree.updateState((s) => {
        s.slots[plan.target] = { ...s.slots[plan.target], state: 'committed', committed_at: now };
      });
      journal.record('commit', scope, ok(`slot ${plan.target} (${plan.manifest.version}) committed: first install, nothing to fall back to`), 0);
      return { status: 'flashed', updateId: scope.update_id ?? '', slot: plan.target, version: plan.manifest.version, previous: null };
    }

    const { expectBindings } = await runHook(journal, 'pre-reboot', scope, () =>
      preReboot({ calls: opts.calls, deadlineMs: opts.callDeadlineMs, pollMs: opts.callPollMs, stateDir: opts.stateDir }),
    );
    await runHook(journal, 'switch', scope, async () => {
      const switchedAt = new Date().toISOString();
      // Record the trial before moving the pointer: a power cut in between leaves a
      // trial whose slot is not selected, which the boot step ignores and the old slot serves.
      tree.updateState((s) => {
        s.slots[plan.target] = { ...s.slots[plan.target], state: 'trial' };
        s.trial = {
          slot: plan.target,
          previous: plan.active as SlotName,
          update_id: scope.update_id ?? '',
          started_at: startedAt,
          switched_at: switchedAt,
          boots: 0,
          max_boots: opts.maxBoots ?? DEFAULT_MAX_BOOTS,
          expect_bindings: expectBindings,
        };
      });
      tree.boot.select(plan.target);
      return { outcome: ok(`slot ${plan.target} (${plan.manifest.version}) boots next, on trial; slot ${plan.active} (${previous?.version}) is the fallback`), value: undefined };
    });
    return { status: 'selected', updateId: scope.update_id ?? '', slot: plan.target, version: plan.manifest.version, previous };
  } catch (err) {
    markFailed(tree, err);
    throw err;
  } finally {
    rmSync(tree.workDir, { recursive: true, force: true });
    release();
  }
}

/** A slot left `installing` by a failed step is unusable: say so in the slots view. */
function markFailed(tree: SlotTree, err: unknown): void {
  const state = tree.readState();
  for (const name of ['a', 'b'] as const) {
    if (state.slots[name].state === 'installing') {
      state.slots[name] = { ...state.slots[name], state: 'empty', reason: `install failed: ${(err as Error).message}` };
      tree.writeState(state);
    }
  }
}
