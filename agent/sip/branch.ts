// Random identifiers the transaction layer puts on the wire: Via branch ids
// (RFC 3261 8.1.1.7) and tags (19.3).
//
// A branch must be unique across space and time for every request we originate:
// at thousands of live transactions per second, a collision would make a response
// match the wrong client transaction. So a branch carries 96 bits from the OS CSPRNG
// (birthday bound: a collision among 10^9 live ids has odds around 10^-11), never
// Math.random. The bytes are drawn from a pooled buffer refilled 4 KB at a time,
// because one crypto call per request costs more than the rest of the id building.

import { randomFillSync } from 'node:crypto';

/** RFC 3261 17.2.3: a branch starting with this was built by an RFC 3261 element. */
export const MAGIC_COOKIE = 'z9hG4bK';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolOffset = POOL_BYTES;

function randomSlice(bytes: number): Buffer {
  if (poolOffset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const slice = pool.subarray(poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return slice;
}

/** A new RFC 3261 branch: the magic cookie plus 96 random bits (16 base64url chars). */
export function newBranch(): string {
  return MAGIC_COOKIE + randomSlice(12).toString('base64url');
}

/** A new To/From tag: 64 random bits (19.3 asks for at least 32). */
export function newTag(): string {
  return randomSlice(8).toString('base64url');
}

/** A new Call-ID local part: 96 random bits. */
export function newCallId(): string {
  return randomSlice(12).toString('base64url');
}

/** True when the branch was built by an RFC 3261 element (so it alone names the transaction). */
export function hasMagicCookie(branch: string | null | undefined): branch is string {
  return typeof branch === 'string' && branch.length > MAGIC_COOKIE.length && branch.startsWith(MAGIC_COOKIE);
}
