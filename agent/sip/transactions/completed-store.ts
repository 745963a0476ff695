// Completed non-INVITE server transactions (RFC 3261 17.2.2, state "Completed"):
// all that is left of one is its key and the response bytes to resend if the
// request is retransmitted before Timer J (64*T1, 32 s) ends it.
//
// At thousands of REGISTERs a second that is hundreds of thousands of live entries,
// so an object, a closure and a setTimeout per entry (about 4 KB each, and GC work
// that shows up as retransmissions) is out. Here an entry is a few typed-array
// slots plus its key and response bytes copied into large shared chunks:
//
// - Every entry lives exactly Timer J, so expiry order is insertion order: entries
//   sit in a ring indexed by sequence number, and one sweep advances the tail.
// - Key and response bytes are appended to 256 KB chunks; a chunk is recycled when
//   the tail has passed all of its entries. Chunks expire in the order they were
//   filled, so at a steady rate the store needs as many new chunks per sweep as it
//   frees: a few spares are kept for reuse instead of being left to the GC. A freed
//   chunk's memory only goes back when a full collection finds its Buffer (chunks
//   live 32 s, so they are in the old generation), and malloc may keep it after
//   that: at thousands of entries a second, megabytes of dead chunks in RSS.
// - Lookup is a chained hash over the ring: a bucket holds the newest slot with that
//   hash, each slot the previous one. Expired links need no unlinking: a link to a
//   slot that is no longer older-and-live ends the walk. The hash is seeded per
//   process and a walk is bounded, so crafted collisions cost a lookup miss at worst.
//
// Cost per entry: 44 bytes of slots (times up to 2 for ring slack) plus the key
// bytes. Measured figures are in docs/decisions/0003-transport-and-transactions.md.

import { randomInt } from 'node:crypto';

const DEFAULT_CHUNK_BYTES = 256 * 1024;
const MIN_CAPACITY = 1024;
const MAX_WALK = 32;
/** Spare chunks kept for reuse: a few sweeps' worth at thousands of entries a second. */
const MIN_SPARES = 4;
const SPARES_PER_LIVE_CHUNK = 1 / 32;

export interface CompletedStoreOptions {
  /** Arena chunk size; an entry (key + response) larger than this is not kept. */
  chunkBytes?: number;
  initialCapacity?: number;
}

export class CompletedResponseStore {
  private readonly chunkBytes: number;
  private readonly minCapacity: number;
  private readonly seed = randomInt(0, 0x7fffffff);

  private capacity = 0;
  private mask = 0;
  private buckets = new Int32Array(0); // slot + 1 of the newest entry in the bucket; 0 = none
  private prev = new Int32Array(0); // slot + 1 of the previous entry in the same bucket
  private seqs = new Float64Array(0);
  private hashes = new Int32Array(0);
  private expires = new Float64Array(0);
  private offsets = new Float64Array(0); // position in the chunk stream
  private keyLengths = new Int32Array(0);
  private responseLengths = new Int32Array(0);

  /** Sequence number of the next entry, and of the oldest live one. */
  private head = 0;
  private tail = 0;

  private chunks: Buffer[] = [];
  /** Chunks no entry uses any more, reused before allocating new ones. */
  private spares: Buffer[] = [];
  /** Chunk-stream number of chunks[0]. */
  private firstChunk = 0;
  /** Write position in the chunk stream. */
  private writePos = 0;
  private scratch = Buffer.allocUnsafe(256);

  constructor(opts: CompletedStoreOptions = {}) {
    this.chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    this.minCapacity = Math.max(MIN_CAPACITY, nextPowerOfTwo(opts.initialCapacity ?? MIN_CAPACITY));
  }

  get size(): number {
    return this.head - this.tail;
  }

  /** Bytes of key and response data held in chunks (including chunk slack). */
  get arenaBytes(): number {
    return this.chunks.length * this.chunkBytes;
  }

  /** Bytes of spare chunks kept for reuse (none while the store is empty). */
  get spareBytes(): number {
    return this.spares.length * this.chunkBytes;
  }

  /**
   * Keeps `response` for `key` until `expiresAt`. Entries must be added in
   * non-decreasing expiry order (they all live Timer J). Returns false when the
   * entry is too large to keep.
   */
  add(key: string, response: Buffer, expiresAt: number): boolean {
    const keyLength = Buffer.byteLength(key, 'utf8');
    const total = keyLength + response.length;
    if (total > this.chunkBytes) return false;
    if (this.size >= this.capacity) this.resize(Math.max(this.minCapacity, this.capacity * 2));
    const pos = this.reserve(total);
    const chunk = this.chunkAt(pos);
    const at = pos % this.chunkBytes;
    chunk.write(key, at, keyLength, 'utf8');
    response.copy(chunk, at + keyLength);

    const seq = this.head++;
    const slot = seq & this.mask;
    const hash = this.hash(key);
    this.seqs[slot] = seq;
    this.hashes[slot] = hash;
    this.expires[slot] = expiresAt;
    this.offsets[slot] = pos;
    this.keyLengths[slot] = keyLength;
    this.responseLengths[slot] = response.length;
    this.link(slot, hash);
    return true;
  }

  /** The stored response for `key`, or undefined. The view is valid until the next sweep. */
  lookup(key: string, now: number): Buffer | undefined {
    if (this.size === 0) return undefined;
    const hash = this.hash(key);
    const keyLength = Buffer.byteLength(key, 'utf8');
    if (this.scratch.length < keyLength) this.scratch = Buffer.allocUnsafe(nextPowerOfTwo(keyLength));
    this.scratch.write(key, 0, keyLength, 'utf8');
    const bucket = hash & this.mask;
    let link = this.buckets[bucket] ?? 0;
    let newerThan = Infinity;
    for (let walked = 0; link !== 0 && walked < MAX_WALK; walked++) {
      const slot = link - 1;
      const seq = this.seqs[slot] ?? -1;
      if (seq < this.tail || seq >= newerThan || ((this.hashes[slot] ?? 0) & this.mask) !== bucket) break;
      if (this.hashes[slot] === hash && this.keyLengths[slot] === keyLength) {
        const pos = this.offsets[slot] ?? 0;
        const chunk = this.chunkAt(pos);
        const at = pos % this.chunkBytes;
        if (chunk.compare(this.scratch, 0, keyLength, at, at + keyLength) === 0) {
          if ((this.expires[slot] ?? 0) <= now) return undefined;
          return chunk.subarray(at + keyLength, at + keyLength + (this.responseLengths[slot] ?? 0));
        }
      }
      newerThan = seq;
      link = this.prev[slot] ?? 0;
    }
    return undefined;
  }

  /** Forgets every entry whose time has come; frees chunks no live entry uses. */
  sweep(now: number): void {
    while (this.tail < this.head && (this.expires[this.tail & this.mask] ?? 0) <= now) this.tail++;
    if (this.size === 0) {
      // Idle: give everything back.
      this.tail = this.head;
      this.chunks = [];
      this.spares = [];
      this.firstChunk = Math.floor(this.writePos / this.chunkBytes) + 1;
      this.writePos = this.firstChunk * this.chunkBytes;
    } else {
      const oldest = Math.floor((this.offsets[this.tail & this.mask] ?? 0) / this.chunkBytes);
      if (oldest > this.firstChunk) {
        const freed = this.chunks.splice(0, oldest - this.firstChunk);
        this.firstChunk = oldest;
        const keep = MIN_SPARES + Math.ceil(this.chunks.length * SPARES_PER_LIVE_CHUNK);
        for (const chunk of freed) if (this.spares.length < keep) this.spares.push(chunk);
      }
    }
    if (this.capacity > this.minCapacity && this.size < this.capacity / 8) this.resize(this.capacity / 2);
  }

  clear(): void {
    this.tail = this.head;
    this.sweep(Number.NEGATIVE_INFINITY);
  }

  private hash(key: string): number {
    // FNV-1a over UTF-16 code units, seeded; |0 keeps it a small integer.
    let h = (0x811c9dc5 ^ this.seed) | 0;
    for (let i = 0; i < key.length; i++) {
      h ^= key.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    return h & 0x7fffffff;
  }

  private link(slot: number, hash: number): void {
    const bucket = hash & this.mask;
    this.prev[slot] = this.buckets[bucket] ?? 0;
    this.buckets[bucket] = slot + 1;
  }

  private reserve(bytes: number): number {
    const inChunk = this.writePos % this.chunkBytes;
    if (inChunk + bytes > this.chunkBytes) this.writePos += this.chunkBytes - inChunk;
    const pos = this.writePos;
    this.writePos += bytes;
    const chunkNo = Math.floor(pos / this.chunkBytes);
    while (this.firstChunk + this.chunks.length <= chunkNo) this.chunks.push(this.spares.pop() ?? Buffer.allocUnsafeSlow(this.chunkBytes));
    return pos;
  }

  private chunkAt(pos: number): Buffer {
    const chunk = this.chunks[Math.floor(pos / this.chunkBytes) - this.firstChunk];
    if (chunk === undefined) throw new Error('completed store: chunk missing (bug)');
    return chunk;
  }

  /** Re-lays the live entries into a ring of `capacity` slots and rebuilds the buckets. */
  private resize(capacity: number): void {
    const old = {
      mask: this.mask,
      seqs: this.seqs,
      hashes: this.hashes,
      expires: this.expires,
      offsets: this.offsets,
      keyLengths: this.keyLengths,
      responseLengths: this.responseLengths,
    };
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.buckets = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.seqs = new Float64Array(capacity);
    this.hashes = new Int32Array(capacity);
    this.expires = new Float64Array(capacity);
    this.offsets = new Float64Array(capacity);
    this.keyLengths = new Int32Array(capacity);
    this.responseLengths = new Int32Array(capacity);
    for (let seq = this.tail; seq < this.head; seq++) {
      const from = seq & old.mask;
      const to = seq & this.mask;
      this.seqs[to] = seq;
      this.hashes[to] = old.hashes[from] ?? 0;
      this.expires[to] = old.expires[from] ?? 0;
      this.offsets[to] = old.offsets[from] ?? 0;
      this.keyLengths[to] = old.keyLengths[from] ?? 0;
      this.responseLengths[to] = old.responseLengths[from] ?? 0;
      this.link(to, this.hashes[to] ?? 0);
    }
  }
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
