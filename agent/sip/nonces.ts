// Digest nonces: unforgeable, stateless to verify, with bounded replay memory.
//
// A nonce is 30 bytes, base64url (40 characters, no padding, so every nonce has
// exactly one spelling):
//
//   version (1) | issued at, ms (6) | serial (4) | instance id (4) | tag (15)
//
// The tag is HMAC-SHA256 over the first 15 bytes, truncated to 120 bits, under a
// per-process random secret. Verifying a nonce needs no lookup: recompute the tag.
//
// Replay protection follows the shape of Kamailio's auth module (nid/nc arrays): the
// serial picks a slot in a fixed circular Uint32Array that holds the highest nonce
// count accepted for the nonce currently owning that slot. Issuing a nonce takes the
// next slot and resets it. Once the array has wrapped past a nonce (trackerSize newer
// nonces issued), that nonce no longer owns its slot and is reported stale, so the
// phone re-authenticates with a fresh nonce instead of being let in unchecked. Memory
// is trackerSize * 4 bytes, allocated once, whatever the load. The trade-off and the
// sizing rule are in docs/decisions/0002-digest-and-nonces.md.

import { createHmac, createSecretKey, randomBytes, timingSafeEqual } from 'node:crypto';
import type { KeyObject } from 'node:crypto';

export type NonceState = 'valid' | 'stale' | 'invalid';

export interface NonceServiceOptions {
  /** How long a nonce stays valid after it was issued. */
  lifetimeMs: number;
  /** HMAC key; at least 16 bytes. Defaults to 32 random bytes per instance. */
  secret?: Buffer;
  /** Clock in ms. Defaults to a monotonic clock, so wall-clock steps (NTP) do not
   * expire or resurrect nonces. */
  now?: () => number;
  /** Slots in the replay tracker; a power of two. Default 2^20 (4 MB). */
  trackerSize?: number;
}

const VERSION = 1;
const ISSUED_OFFSET = 1;
const SERIAL_OFFSET = 7;
const INSTANCE_OFFSET = 11;
const TAG_OFFSET = 15;
const TAG_LENGTH = 15;
const NONCE_BYTES = TAG_OFFSET + TAG_LENGTH; // 30
const NONCE_CHARS = (NONCE_BYTES / 3) * 4; // 40
const NONCE_SHAPE = /^[A-Za-z0-9_-]{40}$/;
const NONCE_COUNT_SHAPE = /^[0-9a-fA-F]{8}$/;
const MAX_ISSUED_MS = 2 ** 48 - 1;

export const DEFAULT_TRACKER_SIZE = 2 ** 20;
const MAX_TRACKER_SIZE = 2 ** 28;
const MIN_SECRET_BYTES = 16;

function monotonicNow(): number {
  return Math.floor(performance.timeOrigin + performance.now());
}

interface DecodedNonce {
  issuedMs: number;
  serial: number;
}

export class NonceService {
  readonly #lifetimeMs: number;
  // A KeyObject, not a Buffer: createHmac with a raw key re-imports it on every call
  // (~19 µs measured); with a KeyObject an HMAC costs ~2.5 µs.
  readonly #secret: KeyObject;
  readonly #now: () => number;
  readonly #slotMask: number;
  readonly #trackerSize: number;
  /** Highest nonce count accepted for the nonce that owns each slot. */
  readonly #highestCount: Uint32Array;
  /** Random per instance: nonces of an earlier instance are invalid even if the
   * secret was carried over, because its tracker state is gone. */
  readonly #instanceId: number;
  #nextSerial = 0;
  // The last nonce whose tag checked out. verifyAuthorization calls check() then
  // acceptCount() on the same nonce; remembering it saves the second HMAC. A string
  // equal to an authenticated nonce is itself authentic, so this is safe.
  #lastAuthentic: string | undefined;
  #lastDecoded: DecodedNonce = { issuedMs: 0, serial: 0 };

  constructor(opts: NonceServiceOptions) {
    if (!Number.isFinite(opts.lifetimeMs) || opts.lifetimeMs <= 0) {
      throw new RangeError(`nonce lifetimeMs must be a positive number, got ${opts.lifetimeMs}`);
    }
    const trackerSize = opts.trackerSize ?? DEFAULT_TRACKER_SIZE;
    // A power of two keeps slot = serial mod size consistent when the 32-bit serial
    // wraps; otherwise two live nonces could share a slot.
    if (!Number.isInteger(trackerSize) || trackerSize < 1 || trackerSize > MAX_TRACKER_SIZE ||
        (trackerSize & (trackerSize - 1)) !== 0) {
      throw new RangeError(`nonce trackerSize must be a power of two up to 2^28, got ${trackerSize}`);
    }
    if (opts.secret !== undefined && opts.secret.length < MIN_SECRET_BYTES) {
      throw new RangeError(`nonce secret must be at least ${MIN_SECRET_BYTES} bytes`);
    }
    this.#lifetimeMs = opts.lifetimeMs;
    this.#secret = createSecretKey(opts.secret ?? randomBytes(32));
    this.#now = opts.now ?? monotonicNow;
    this.#trackerSize = trackerSize;
    this.#slotMask = trackerSize - 1;
    this.#highestCount = new Uint32Array(trackerSize);
    this.#instanceId = randomBytes(4).readUInt32BE(0);
  }

  issue(): string {
    const issuedMs = this.#now();
    if (!Number.isSafeInteger(issuedMs) || issuedMs < 0 || issuedMs > MAX_ISSUED_MS) {
      throw new RangeError(`nonce clock returned an unusable time: ${issuedMs}`);
    }
    const serial = this.#nextSerial;
    this.#nextSerial = (serial + 1) >>> 0;
    this.#highestCount[serial & this.#slotMask] = 0;

    const nonce = Buffer.allocUnsafe(NONCE_BYTES);
    nonce.writeUInt8(VERSION, 0);
    nonce.writeUIntBE(issuedMs, ISSUED_OFFSET, 6);
    nonce.writeUInt32BE(serial, SERIAL_OFFSET);
    nonce.writeUInt32BE(this.#instanceId, INSTANCE_OFFSET);
    this.#tag(nonce).copy(nonce, TAG_OFFSET, 0, TAG_LENGTH);
    return nonce.toString('base64url');
  }

  check(nonce: string): NonceState {
    const decoded = this.#authenticate(nonce);
    if (decoded === undefined) return 'invalid';
    return this.#isCurrent(decoded) ? 'valid' : 'stale';
  }

  /**
   * Records nc for this nonce if it is greater than every count accepted so far.
   * Returns false for a malformed nc, a repeated or lower nc, and for a nonce that is
   * not currently valid (forged, expired, or whose tracker slot was reused).
   */
  acceptCount(nonce: string, nc: string): boolean {
    if (!NONCE_COUNT_SHAPE.test(nc)) return false;
    const decoded = this.#authenticate(nonce);
    if (decoded === undefined || !this.#isCurrent(decoded)) return false;
    const count = Number.parseInt(nc, 16);
    const slot = decoded.serial & this.#slotMask;
    if (count <= (this.#highestCount[slot] ?? 0)) return false;
    this.#highestCount[slot] = count;
    return true;
  }

  #tag(nonce: Buffer): Buffer {
    return createHmac('sha256', this.#secret).update(nonce.subarray(0, TAG_OFFSET)).digest();
  }

  /** Decodes a nonce if it is well formed, ours (this secret, this instance) and untampered. */
  #authenticate(nonce: string): DecodedNonce | undefined {
    if (nonce === this.#lastAuthentic) return this.#lastDecoded;
    if (nonce.length !== NONCE_CHARS || !NONCE_SHAPE.test(nonce)) return undefined;
    const bytes = Buffer.from(nonce, 'base64url');
    if (bytes.length !== NONCE_BYTES || bytes[0] !== VERSION) return undefined;
    if (bytes.readUInt32BE(INSTANCE_OFFSET) !== this.#instanceId) return undefined;
    const expected = this.#tag(bytes).subarray(0, TAG_LENGTH);
    if (!timingSafeEqual(expected, bytes.subarray(TAG_OFFSET))) return undefined;
    const decoded = { issuedMs: bytes.readUIntBE(ISSUED_OFFSET, 6), serial: bytes.readUInt32BE(SERIAL_OFFSET) };
    this.#lastAuthentic = nonce;
    this.#lastDecoded = decoded;
    return decoded;
  }

  /** Within its lifetime and still the owner of its tracker slot. */
  #isCurrent(decoded: DecodedNonce): boolean {
    const ageMs = this.#now() - decoded.issuedMs;
    // A negative age means the injected clock went backwards; treat the nonce as
    // stale so the phone simply fetches a fresh one.
    if (ageMs < 0 || ageMs > this.#lifetimeMs) return false;
    // How many nonces were issued after this one, modulo 2^32.
    const newerIssued = (this.#nextSerial - 1 - decoded.serial) >>> 0;
    return newerIssued < this.#trackerSize;
  }
}
