// The slot tree's own record of what each slot holds and how far an update got. It
// is rewritten whole and atomically (temp file, fsync, rename, fsync the folder), so
// a power cut leaves either the old record or the new one.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';

export const SLOT_NAMES = ['a', 'b'] as const;
export type SlotName = (typeof SLOT_NAMES)[number];

/**
 * empty → installing → installed → trial → committed, or trial → rolled-back.
 * `installing` left behind by a crash means the slot holds nothing usable.
 */
export type SlotState = 'empty' | 'installing' | 'installed' | 'trial' | 'committed' | 'rolled-back';

export interface SlotRecord {
  state: SlotState;
  version: string | null;
  /** sha256 of the signed manifest bytes: names the bundle a slot came from. */
  bundle_id: string | null;
  key_id: string | null;
  installed_at: string | null;
  committed_at: string | null;
  rolled_back_at: string | null;
  /** Why the slot was rolled back, in one line. */
  reason: string | null;
}

/** A registration the agent held before the switch, to be found again after it. */
export interface ExpectedBinding {
  extension: string;
  contact: string;
  expires_at: number;
}

/** An update that has switched slots and waits for its post-boot verify. */
export interface Trial {
  slot: SlotName;
  /** The committed slot to fall back to. */
  previous: SlotName;
  update_id: string;
  /** When install-check started: the start of the install-check → commit figure. */
  started_at: string;
  switched_at: string;
  /** Boots of the trial slot so far; more than max_boots without a commit rolls back. */
  boots: number;
  max_boots: number;
  expect_bindings: ExpectedBinding[];
}

export interface SlotTreeState {
  format: 1;
  slots: Record<SlotName, SlotRecord>;
  trial: Trial | null;
}

export function emptySlot(): SlotRecord {
  return { state: 'empty', version: null, bundle_id: null, key_id: null, installed_at: null, committed_at: null, rolled_back_at: null, reason: null };
}

export function initialState(): SlotTreeState {
  return { format: 1, slots: { a: emptySlot(), b: emptySlot() }, trial: null };
}

export class SlotStateError extends Error {
  readonly code = 'ESLOTSTATE';
}

export function readState(file: string): SlotTreeState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return initialState();
    throw err;
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new SlotStateError(`${file} is not JSON; the slot tree is damaged`);
  }
  const s = data as Partial<SlotTreeState> | null;
  if (!s || s.format !== 1 || !s.slots || !s.slots.a || !s.slots.b) throw new SlotStateError(`${file} is not a slot state this build reads`);
  return { format: 1, slots: { a: { ...emptySlot(), ...s.slots.a }, b: { ...emptySlot(), ...s.slots.b } }, trial: s.trial ?? null };
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function writeState(file: string, state: SlotTreeState): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}
