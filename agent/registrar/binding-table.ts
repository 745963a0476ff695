import type { Binding } from '../store/bindings.ts';

/**
 * The registrar's live view of bindings, by extension. The store is the durable
 * copy; this table answers lookups (routing, status, the 200 OK contact list)
 * without touching disk.
 */
export class BindingTable {
  readonly #byExtension = new Map<string, Binding[]>();
  #count = 0;

  get size(): number {
    return this.#count;
  }

  of(extension: string): readonly Binding[] {
    return this.#byExtension.get(extension) ?? [];
  }

  extensions(): IterableIterator<string> {
    return this.#byExtension.keys();
  }

  /** Replaces an extension's bindings with `next` (an empty list removes them all). */
  set(extension: string, next: Binding[]): void {
    this.#count += next.length - this.of(extension).length;
    if (next.length === 0) this.#byExtension.delete(extension);
    else this.#byExtension.set(extension, next);
  }

  /** Removes and returns every binding whose expiry is at or before `now`. */
  takeExpired(now: number): Binding[] {
    const expired: Binding[] = [];
    for (const [extension, list] of this.#byExtension) {
      if (!list.some((b) => b.expiresAt <= now)) continue;
      const keep = list.filter((b) => {
        if (b.expiresAt > now) return true;
        expired.push(b);
        return false;
      });
      this.set(extension, keep);
    }
    return expired;
  }

  all(): Binding[] {
    return [...this.#byExtension.values()].flat();
  }
}
