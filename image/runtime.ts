// Where the running binary sits. Built as a single executable it lives at
// SLOT/bin/branchline and finds its image (keys, addons) from its own path; run from
// the sources (node agent/cli.ts) it has no image around it.
import path from 'node:path';
import { isSea } from 'node:sea';
import { keyRingFromDir, type KeyRing } from './bundle/signing.ts';
import { IMAGE_KEYS_DIR } from './layout.ts';

/** The image (or slot) folder of the running single executable; null from sources. */
export function ownImageDir(): string | null {
  // process.execPath is the resolved path, so a binary started through the `current`
  // symlink still names its real slot.
  return isSea() ? path.resolve(path.dirname(process.execPath), '..') : null;
}

/** The keys the running image trusts; empty when running from sources. */
export function ownImageKeys(): KeyRing {
  const dir = ownImageDir();
  return dir ? keyRingFromDir(path.join(dir, IMAGE_KEYS_DIR)) : new Map();
}
