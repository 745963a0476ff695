// G.711 µ-law and A-law (ITU-T G.711), table-driven.
//
// Every conversion is one array lookup: decoding is a 256-entry table per law,
// encoding a 65,536-entry table indexed by the 16-bit sample itself. G.711 is
// defined on 14-bit (µ-law) and 13-bit (A-law) input; the tables reduce 16 bits to
// that by rounding to nearest rather than truncating (half a step less error, and
// the same bytes as sox), and a full-width index makes that rounding free.
// µ-law↔A-law transcoding is a 256-byte table each way (decode, then encode).
// Tables are built once at module load (about 130 KB in all), one fill() per run of
// samples sharing a code (fillRuns).

export type CodecName = 'PCMU' | 'PCMA';

/** RFC 3551 static payload types. */
export const staticPayloadType: Readonly<Record<CodecName, number>> = { PCMU: 0, PCMA: 8 };

/** 8 kHz, 20 ms: the frame every phone and line card here uses. */
export const SAMPLE_RATE = 8000;
export const FRAME_SAMPLES = 160;

// µ-law works on 14-bit magnitudes with a bias of 33 (G.711 §3.2, table 2a):
// segment s covers biased magnitudes [32·2^s, 32·2^(s+1)) in steps of 2^(s+1).
const ULAW_BIAS = 33;
const ULAW_CLIP = 8159;

function ulawEncode14(value: number): number {
  let mask = 0xff;
  let magnitude = value;
  if (value < 0) {
    magnitude = -value;
    mask = 0x7f; // sign bit 0 after the final inversion
  }
  if (magnitude > ULAW_CLIP) magnitude = ULAW_CLIP;
  magnitude += ULAW_BIAS;
  if (magnitude > 0x1fff) return 0x7f ^ mask; // the top of segment 7
  let segment = 0;
  while (segment < 7 && magnitude >= 64 << segment) segment++;
  const mantissa = (magnitude >> (segment + 1)) & 0x0f;
  return ((segment << 4) | mantissa) ^ mask;
}

function ulawDecode16(byte: number): number {
  const u = ~byte & 0xff;
  const segment = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  // Reconstruct at the middle of the step, in 16-bit scale (×4 of the 14-bit law).
  const magnitude = (((mantissa << 3) + 0x84) << segment) - 0x84;
  return u & 0x80 ? -magnitude : magnitude;
}

// A-law works on 13-bit magnitudes; segments 0 and 1 share a step of 2, then the
// step doubles per segment (G.711 §3.3, table 1a). Even bits are inverted (0x55).
function alawEncode13(value: number): number {
  let mask = 0xd5;
  let magnitude = value;
  if (value < 0) {
    mask = 0x55;
    magnitude = -value - 1;
  }
  if (magnitude > 0xfff) magnitude = 0xfff;
  let segment = 0;
  while (segment < 7 && magnitude >= 32 << segment) segment++;
  const mantissa = segment < 2 ? (magnitude >> 1) & 0x0f : (magnitude >> segment) & 0x0f;
  return ((segment << 4) | mantissa) ^ mask;
}

function alawDecode16(byte: number): number {
  const a = byte ^ 0x55;
  const segment = (a >> 4) & 0x07;
  let magnitude = (a & 0x0f) << 4;
  if (segment === 0) magnitude += 8;
  else magnitude = (magnitude + 0x108) << (segment - 1);
  return a & 0x80 ? magnitude : -magnitude;
}

/**
 * Fills `table[sample & 0xffff] = encode(sample)` for every 16-bit sample, one
 * `fill()` per run of samples that share a code. Within one half (samples >= 0, and
 * samples < 0 as indices 32768..65535) the samples of a code are contiguous: the
 * law is monotonic in the magnitude, and codes of the two signs differ. So the end
 * of a run is found by bisection: ~4,000 calls of the encoder for the 2 x 256 runs
 * instead of one per sample. One call per sample (131,072 at every start) made V8
 * optimize the encoders and this loop with TurboFan while the agent started, which
 * mapped ~5 MB of the optimizing compiler's code into an agent that then sat idle
 * (docs/decisions/0004-single-executable.md, Idle memory). The tables are the same
 * bytes (test/unit/media-g711.test.ts compares them with the per-sample definition).
 */
function fillRuns(table: Uint8Array, encode: (sample: number) => number): void {
  for (const [lo, hi] of [[0, 32767], [-32768, -1]] as const) {
    let start: number = lo;
    while (start <= hi) {
      const code = encode(start);
      let last = start; // the last sample of the run, by bisection over [start, hi]
      let bound = hi;
      while (last < bound) {
        const mid = last + Math.ceil((bound - last) / 2);
        if (encode(mid) === code) last = mid;
        else bound = mid - 1;
      }
      table.fill(code, start & 0xffff, (last & 0xffff) + 1);
      start = last + 1;
    }
  }
}

const ulawToLinearTable = new Int16Array(256);
const alawToLinearTable = new Int16Array(256);
const linearToUlawTable = new Uint8Array(1 << 16);
const linearToAlawTable = new Uint8Array(1 << 16);
const ulawToAlawTable = new Uint8Array(256);
const alawToUlawTable = new Uint8Array(256);

for (let b = 0; b < 256; b++) {
  ulawToLinearTable[b] = ulawDecode16(b);
  alawToLinearTable[b] = alawDecode16(b);
}
// Index = the 16-bit sample read as unsigned (`s & 0xffff`).
/** The per-sample definitions the encode tables are built from (exported for the tests). */
export const ulawOfSample = (sample: number): number => ulawEncode14(Math.min((sample + 2) >> 2, 8191));
export const alawOfSample = (sample: number): number => alawEncode13(Math.min((sample + 4) >> 3, 4095));
fillRuns(linearToUlawTable, ulawOfSample);
fillRuns(linearToAlawTable, alawOfSample);
for (let b = 0; b < 256; b++) {
  ulawToAlawTable[b] = linearToAlawTable[ulawToLinearTable[b]! & 0xffff]!;
  alawToUlawTable[b] = linearToUlawTable[alawToLinearTable[b]! & 0xffff]!;
}

/** One 16-bit sample to µ-law. */
export function linearToUlaw(sample: number): number {
  return linearToUlawTable[sample & 0xffff]!;
}

/** One 16-bit sample to A-law. */
export function linearToAlaw(sample: number): number {
  return linearToAlawTable[sample & 0xffff]!;
}

/** One µ-law byte to a 16-bit sample. */
export function ulawToLinear(byte: number): number {
  return ulawToLinearTable[byte & 0xff]!;
}

/** One A-law byte to a 16-bit sample. */
export function alawToLinear(byte: number): number {
  return alawToLinearTable[byte & 0xff]!;
}

/**
 * Encodes `pcm` into `out` (which must be at least as long) with the given law.
 * Returns the number of bytes written. No allocation.
 */
export function encodeG711(codec: CodecName, pcm: Int16Array, out: Uint8Array, outOffset = 0): number {
  const n = pcm.length;
  if (codec === 'PCMU') {
    for (let i = 0; i < n; i++) out[outOffset + i] = linearToUlawTable[pcm[i]! & 0xffff]!;
  } else {
    for (let i = 0; i < n; i++) out[outOffset + i] = linearToAlawTable[pcm[i]! & 0xffff]!;
  }
  return n;
}

/**
 * Decodes `length` bytes of `bytes` from `offset` into `out`. Returns the number of
 * samples written. No allocation.
 */
export function decodeG711(
  codec: CodecName,
  bytes: Uint8Array,
  out: Int16Array,
  offset = 0,
  length = bytes.length - offset,
): number {
  const table = codec === 'PCMU' ? ulawToLinearTable : alawToLinearTable;
  for (let i = 0; i < length; i++) out[i] = table[bytes[offset + i]!]!;
  return length;
}

/**
 * Rewrites G.711 bytes in place from one law to the other (a no-op when equal).
 * The relay uses this on the packet it received, so transcoding allocates nothing.
 */
export function transcodeG711InPlace(from: CodecName, to: CodecName, bytes: Uint8Array, offset: number, length: number): void {
  if (from === to) return;
  const table = from === 'PCMU' ? ulawToAlawTable : alawToUlawTable;
  const end = offset + length;
  for (let i = offset; i < end; i++) bytes[i] = table[bytes[i]!]!;
}

/** The byte a law uses for silence (a decoded value of 0 or ±8). */
export function silenceByte(codec: CodecName): number {
  return codec === 'PCMU' ? 0xff : 0xd5;
}
