import { mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fsyncDir, SLOT_NAMES, type SlotName } from './state.ts';

/**
 * The one thing a bootloader decides: which slot starts next. On an appliance this is
 * a bootloader variable (U-Boot/GRUB environment); in a slot tree of directories it is
 * a symlink. Everything above this interface is the same for both.
 */
export interface BootSelector {
  /** The slot that starts next (and, once started, the one running); null before the first install. */
  selected(): SlotName | null;
  /** Makes `slot` the one that starts next, atomically: a power cut leaves the old or the new choice. */
  select(slot: SlotName): void;
}

export const POINTER = 'current';
export const SLOTS_DIR = 'slots';

/** `ROOT/current -> slots/a`, switched by renaming a fresh symlink over the old one. */
export class SymlinkBootSelector implements BootSelector {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  selected(): SlotName | null {
    let target: string;
    try {
      target = readlinkSync(path.join(this.root, POINTER));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const name = path.basename(target);
    return (SLOT_NAMES as readonly string[]).includes(name) ? (name as SlotName) : null;
  }

  select(slot: SlotName): void {
    mkdirSync(this.root, { recursive: true });
    const tmp = path.join(this.root, `${POINTER}.next`);
    rmSync(tmp, { force: true });
    // Relative, so the tree can be moved or mounted elsewhere and still boot.
    symlinkSync(path.join(SLOTS_DIR, slot), tmp);
    renameSync(tmp, path.join(this.root, POINTER));
    fsyncDir(this.root);
  }
}
