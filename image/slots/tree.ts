import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { POINTER, SLOTS_DIR, SymlinkBootSelector, type BootSelector } from './boot-selector.ts';
import { readState, writeState, type SlotName, type SlotTreeState } from './state.ts';

export class SlotTreeError extends Error {
  readonly code: 'ESLOTS_MISSING' | 'ESLOTS_BUSY' | 'ESLOTS_NOT_A_TREE';
  constructor(code: SlotTreeError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * A slot tree:
 *
 *     ROOT/current -> slots/a     the boot pointer (BootSelector)
 *     ROOT/slots/a/, slots/b/     unpacked images
 *     ROOT/state.json             what each slot holds; the update in trial
 *     ROOT/journal.jsonl          one line per hook outcome
 *     ROOT/work/                  an update's temporary files
 *     ROOT/lock                   held by whoever changes the tree
 */
export class SlotTree {
  readonly root: string;
  readonly boot: BootSelector;

  constructor(root: string, boot?: BootSelector) {
    this.root = path.resolve(root);
    this.boot = boot ?? new SymlinkBootSelector(this.root);
  }

  /** Opens an existing tree; `create` makes an empty one (a first flash). */
  static open(root: string, opts: { create?: boolean } = {}): SlotTree {
    const tree = new SlotTree(root);
    if (!existsSync(tree.root)) {
      if (!opts.create) throw new SlotTreeError('ESLOTS_MISSING', `no slot tree at ${tree.root}`);
      mkdirSync(tree.root, { recursive: true });
    }
    if (!statSync(tree.root).isDirectory()) throw new SlotTreeError('ESLOTS_NOT_A_TREE', `${tree.root} is not a directory`);
    if (opts.create) mkdirSync(path.join(tree.root, SLOTS_DIR), { recursive: true });
    else if (!existsSync(tree.stateFile) && !existsSync(path.join(tree.root, POINTER))) {
      throw new SlotTreeError('ESLOTS_NOT_A_TREE', `${tree.root} is not a slot tree (no state.json, no ${POINTER})`);
    }
    return tree;
  }

  get stateFile(): string {
    return path.join(this.root, 'state.json');
  }

  get journalFile(): string {
    return path.join(this.root, 'journal.jsonl');
  }

  get workDir(): string {
    return path.join(this.root, 'work');
  }

  slotDir(slot: SlotName): string {
    return path.join(this.root, SLOTS_DIR, slot);
  }

  other(slot: SlotName): SlotName {
    return slot === 'a' ? 'b' : 'a';
  }

  readState(): SlotTreeState {
    return readState(this.stateFile);
  }

  writeState(state: SlotTreeState): void {
    writeState(this.stateFile, state);
  }

  /** Reads, changes and writes the state in one step; returns the new state. */
  updateState(change: (state: SlotTreeState) => void): SlotTreeState {
    const state = this.readState();
    change(state);
    this.writeState(state);
    return state;
  }

  /**
   * Takes the tree's lock: an update, a boot step and a verify must never interleave.
   * A lock left by a dead process (power cut, kill -9) is taken over.
   */
  lock(): () => void {
    const file = path.join(this.root, 'lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o644);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return () => rmSync(file, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const holder = Number(readFileSync(file, 'utf8').trim());
        if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
          throw new SlotTreeError('ESLOTS_BUSY', `slot tree ${this.root} is busy: process ${holder} holds its lock`);
        }
        rmSync(file, { force: true });
      }
    }
    throw new SlotTreeError('ESLOTS_BUSY', `cannot take the lock of ${this.root}`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
