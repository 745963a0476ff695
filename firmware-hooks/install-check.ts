// install-check: may this bundle go into the inactive slot of this system? Signature
// and hash (with the keys the running slot trusts), architecture, anti-rollback, free
// disk, and no other update half-way. Changes nothing but the work copy of the image.
import { createHash } from 'node:crypto';
import { mkdirSync, statfsSync } from 'node:fs';
import type { Manifest } from '../image/bundle/manifest.ts';
import type { KeyRing } from '../image/bundle/signing.ts';
import { verifyImage, verifySigned } from '../image/bundle/verify.ts';
import type { SlotName } from '../image/slots/state.ts';
import type { SlotTree } from '../image/slots/tree.ts';
import { ok, type HookResult } from './types.ts';

export class InstallCheckError extends Error {
  readonly code: 'EINSTALL_TRIAL' | 'EINSTALL_DISK';
  constructor(code: InstallCheckError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

export interface InstallCheckInput {
  tree: SlotTree;
  bundle: string;
  keys: KeyRing;
  architecture: string;
  /** Where the verified copy of the image goes (inside the tree's work folder). */
  imageCopy: string;
}

export interface InstallPlan {
  manifest: Manifest;
  keyId: string;
  /** sha256 of the signed manifest bytes. */
  bundleId: string;
  /** The slot running now; null on an empty tree. */
  active: SlotName | null;
  installedVersion: string | null;
  /** The slot the bundle goes into: never the active one. */
  target: SlotName;
  imageFile: string;
}

/** Room for the unpacked slot plus a tenth: a full disk must fail here, not half-way through unpacking. */
export function bytesNeeded(manifest: Manifest): number {
  return Math.ceil(manifest.image.unpacked_size * 1.1) + manifest.image.size;
}

export function freeBytes(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Names one update in the journal: the version and the bundle it came from. */
export function updateId(version: string, bundleId: string): string {
  return `${version}-${bundleId.slice(0, 12)}`;
}

export async function installCheck(input: InstallCheckInput): Promise<HookResult<InstallPlan>> {
  const { tree } = input;
  const state = tree.readState();
  if (state.trial) {
    throw new InstallCheckError('EINSTALL_TRIAL', `slot ${state.trial.slot} is on trial since ${state.trial.switched_at}; it must commit or roll back before another update`);
  }
  const active = tree.boot.selected();
  const installedVersion = active ? state.slots[active].version : null;
  const signed = await verifySigned(input.bundle, { keys: input.keys, architecture: input.architecture, installedVersion });
  const need = bytesNeeded(signed.manifest);
  const free = freeBytes(tree.root);
  if (free < need) {
    throw new InstallCheckError('EINSTALL_DISK', `not enough free disk in ${tree.root}: ${mb(free)} free, ${mb(need)} needed`);
  }
  mkdirSync(tree.workDir, { recursive: true });
  await verifyImage(signed, input.imageCopy);
  const target: SlotName = active ? tree.other(active) : 'a';
  const bundleId = createHash('sha256').update(signed.parts.manifest).digest('hex');
  const m = signed.manifest;
  return {
    outcome: ok(`bundle ${m.version} (${m.architecture}) signed by ${signed.keyId} may replace ${installedVersion ?? 'nothing'}; target slot ${target}`, {
      installed: installedVersion,
      target,
      key_id: signed.keyId,
      free_bytes: free,
      needed_bytes: need,
    }),
    value: { manifest: m, keyId: signed.keyId, bundleId, active, installedVersion, target, imageFile: input.imageCopy },
    scope: { update_id: updateId(m.version, bundleId), slot: target, version: m.version },
  };
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
