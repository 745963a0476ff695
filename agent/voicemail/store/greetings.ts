// Greetings: one WAV per kind under <mailbox>/greetings/. Written like messages
// (temporary name, fsync, rename, fsync folder), so a greeting is the old one or the
// new one, never half of one. Which greeting a caller hears is decided in
// deposit/greeting.ts.
import { unlink } from 'node:fs/promises';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { syncDirectory, type VoicemailStore } from './voicemail-store.ts';

export type GreetingKind = 'unavailable' | 'busy' | 'name' | 'temporary';
export const GREETING_KINDS: readonly GreetingKind[] = ['unavailable', 'busy', 'name', 'temporary'];

export class Greetings {
  readonly #store: VoicemailStore;

  constructor(store: VoicemailStore) {
    this.#store = store;
  }

  file(mailbox: string, kind: GreetingKind): string {
    return path.join(this.#store.mailboxDir(mailbox), 'greetings', `${kind}.wav`);
  }

  /** Creates the folder a greeting is recorded into; returns the final path. */
  async prepare(mailbox: string, kind: GreetingKind): Promise<string> {
    const file = this.file(mailbox, kind);
    await mkdir(path.dirname(file), { recursive: true });
    return file;
  }

  async has(mailbox: string, kind: GreetingKind): Promise<boolean> {
    return stat(this.file(mailbox, kind)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  /** Returns whether there was one. */
  async remove(mailbox: string, kind: GreetingKind): Promise<boolean> {
    const file = this.file(mailbox, kind);
    try {
      await unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    await syncDirectory(path.dirname(file));
    return true;
  }
}
