// WAV (RIFF/WAVE) read and write: 16-bit linear PCM, µ-law and A-law.
//
// Layout written: RIFF header, `fmt ` (16 bytes for PCM; 18 with cbSize=0 for
// G.711, as the format requires for non-PCM tags), `fact` with the sample count
// for G.711 (required for non-PCM formats), then `data`, padded to an even
// length. Reading walks the chunks, so extra chunks (LIST, cue…) are skipped and
// WAVE_FORMAT_EXTENSIBLE is understood.
import { open, readFile, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { WavFormatError } from './errors.ts';
import { decodeG711, encodeG711 } from './g711.ts';

export type WavEncoding = 'pcm16' | 'ulaw' | 'alaw';

const FORMAT_PCM = 1;
const FORMAT_ALAW = 6;
const FORMAT_ULAW = 7;
const FORMAT_EXTENSIBLE = 0xfffe;

export interface WavAudio {
  sampleRate: number;
  channels: number;
  encoding: WavEncoding;
  /** Linear 16-bit samples, interleaved when channels > 1 (G.711 decoded). */
  samples: Int16Array;
}

function formatTag(encoding: WavEncoding): number {
  return encoding === 'pcm16' ? FORMAT_PCM : encoding === 'ulaw' ? FORMAT_ULAW : FORMAT_ALAW;
}

function bytesPerSample(encoding: WavEncoding): number {
  return encoding === 'pcm16' ? 2 : 1;
}

/** Size of the header `wavHeader` writes. */
export function wavHeaderLength(encoding: WavEncoding): number {
  return encoding === 'pcm16' ? 44 : 58;
}

/**
 * A complete header for `dataBytes` of audio. Sizes that are not known yet (a
 * streaming writer) are written as 0 and patched on close.
 */
export function wavHeader(encoding: WavEncoding, sampleRate: number, channels: number, dataBytes: number): Buffer {
  const header = Buffer.alloc(wavHeaderLength(encoding));
  const width = bytesPerSample(encoding);
  const pcm = encoding === 'pcm16';
  const padded = dataBytes + (dataBytes % 2);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(header.length - 8 + padded, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(pcm ? 16 : 18, 16);
  header.writeUInt16LE(formatTag(encoding), 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * channels * width, 28);
  header.writeUInt16LE(channels * width, 32);
  header.writeUInt16LE(width * 8, 34);
  let o = 36;
  if (!pcm) {
    header.writeUInt16LE(0, 36); // cbSize: no extra format bytes
    header.write('fact', 38, 'ascii');
    header.writeUInt32LE(4, 42);
    header.writeUInt32LE(dataBytes / channels, 46);
    o = 50;
  }
  header.write('data', o, 'ascii');
  header.writeUInt32LE(dataBytes, o + 4);
  return header;
}

/** Encodes mono (or interleaved) samples as a whole WAV file in memory. */
export function encodeWav(samples: Int16Array, options: { encoding?: WavEncoding; sampleRate?: number; channels?: number } = {}): Buffer {
  const encoding = options.encoding ?? 'pcm16';
  const data = encodeSamples(encoding, samples);
  const header = wavHeader(encoding, options.sampleRate ?? 8000, options.channels ?? 1, data.length);
  return Buffer.concat([header, data, Buffer.alloc(data.length % 2)]);
}

/** Samples as the bytes of a WAV data chunk (little-endian for PCM). */
export function encodeSamples(encoding: WavEncoding, samples: Int16Array): Buffer {
  if (encoding === 'pcm16') {
    const out = Buffer.alloc(samples.length * 2);
    for (let i = 0; i < samples.length; i++) out.writeInt16LE(samples[i]!, i * 2);
    return out;
  }
  const out = Buffer.alloc(samples.length);
  encodeG711(encoding === 'ulaw' ? 'PCMU' : 'PCMA', samples, out);
  return out;
}

/** Parses a WAV file held in memory. Throws WavFormatError. */
export function decodeWav(file: Uint8Array): WavAudio {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length < 12 || buf.toString('ascii', 0, 4) !== 'RIFF' || buf.toString('ascii', 8, 12) !== 'WAVE') {
    throw new WavFormatError('not a RIFF/WAVE file');
  }
  let format: { tag: number; channels: number; sampleRate: number; bits: number } | undefined;
  let data: Buffer | undefined;
  let o = 12;
  while (o + 8 <= buf.length) {
    const id = buf.toString('ascii', o, o + 4);
    const size = buf.readUInt32LE(o + 4);
    const body = o + 8;
    // A streaming writer that died before patching sizes leaves 0 or too much:
    // take what is there.
    const end = Math.min(buf.length, body + size);
    if (id === 'fmt ') {
      if (end - body < 16) throw new WavFormatError('fmt chunk shorter than 16 bytes');
      let tag = buf.readUInt16LE(body);
      if (tag === FORMAT_EXTENSIBLE && end - body >= 26) tag = buf.readUInt16LE(body + 24);
      format = {
        tag,
        channels: buf.readUInt16LE(body + 2),
        sampleRate: buf.readUInt32LE(body + 4),
        bits: buf.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      data = buf.subarray(body, size === 0 ? buf.length : end);
      break;
    }
    o = body + size + (size % 2);
  }
  if (!format) throw new WavFormatError('no fmt chunk');
  if (!data) throw new WavFormatError('no data chunk');
  if (format.channels < 1) throw new WavFormatError('zero channels');
  let encoding: WavEncoding;
  let samples: Int16Array;
  if (format.tag === FORMAT_PCM && format.bits === 16) {
    encoding = 'pcm16';
    samples = new Int16Array(data.length >> 1);
    for (let i = 0; i < samples.length; i++) samples[i] = data.readInt16LE(i * 2);
  } else if ((format.tag === FORMAT_ULAW || format.tag === FORMAT_ALAW) && format.bits === 8) {
    encoding = format.tag === FORMAT_ULAW ? 'ulaw' : 'alaw';
    samples = new Int16Array(data.length);
    decodeG711(encoding === 'ulaw' ? 'PCMU' : 'PCMA', data, samples);
  } else {
    throw new WavFormatError(`unsupported WAV format: tag ${format.tag}, ${format.bits} bits`);
  }
  return { sampleRate: format.sampleRate, channels: format.channels, encoding, samples };
}

export async function readWavFile(file: string): Promise<WavAudio> {
  return decodeWav(await readFile(file));
}

export interface WavWriterOptions {
  encoding?: WavEncoding;
  sampleRate?: number;
  /** fsync the file and its directory on close (default true: voicemail must survive power loss). */
  fsync?: boolean;
  /** Bytes buffered in memory before a write to disk (default 16 KiB ≈ 1 s of PCM). */
  bufferBytes?: number;
}

export interface WavWriteResult {
  path: string;
  samples: number;
  durationMs: number;
  bytes: number;
}

/**
 * Streams a mono WAV to disk under a temporary name in the target's folder, then
 * on close patches the sizes, fsyncs, renames to the final name and fsyncs the
 * folder: the final name only ever holds a complete file (durable before
 * acknowledged). `abort()` removes the temporary file instead.
 */
export class WavFileWriter {
  readonly path: string;
  readonly tempPath: string;
  readonly encoding: WavEncoding;
  readonly sampleRate: number;
  readonly fsync: boolean;
  readonly bufferBytes: number;
  #file: FileHandle | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #dataBytes = 0;
  #offset = 0;
  // Operations run one after another: write() may be called per frame without
  // awaiting, and close() must come after every write.
  #chain: Promise<void> = Promise.resolve();
  #failed: unknown;
  #closed = false;

  constructor(file: string, options: WavWriterOptions = {}) {
    this.path = file;
    this.tempPath = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    this.encoding = options.encoding ?? 'pcm16';
    this.sampleRate = options.sampleRate ?? 8000;
    this.fsync = options.fsync ?? true;
    this.bufferBytes = options.bufferBytes ?? 16 * 1024;
  }

  async open(): Promise<void> {
    this.#file = await open(this.tempPath, 'wx');
    const header = wavHeader(this.encoding, this.sampleRate, 1, 0);
    await this.#file.write(header, 0, header.length, 0);
    this.#offset = header.length;
  }

  get samplesWritten(): number {
    return this.#dataBytes / (this.encoding === 'pcm16' ? 2 : 1);
  }

  /** Appends linear samples (encoded per the file's encoding). Returns at once; errors surface on close. */
  write(samples: Int16Array): void {
    this.#append(encodeSamples(this.encoding, samples));
  }

  /** Appends bytes already in the file's encoding (e.g. µ-law payloads straight from RTP); copies them. */
  writeEncoded(bytes: Uint8Array): void {
    this.#append(Buffer.from(bytes));
  }

  #append(bytes: Buffer): void {
    if (this.#closed) return;
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    this.#dataBytes += bytes.length;
    if (this.#pendingBytes >= this.bufferBytes) this.#enqueue(() => this.#flushPending());
  }

  #enqueue(op: () => Promise<void>): Promise<void> {
    this.#chain = this.#chain.then(async () => {
      if (this.#failed) return;
      try {
        await op();
      } catch (err) {
        this.#failed = err;
      }
    });
    return this.#chain;
  }

  async #flushPending(): Promise<void> {
    if (this.#pendingBytes === 0 || !this.#file) return;
    const chunk = Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    await this.#file.write(chunk, 0, chunk.length, this.#offset);
    this.#offset += chunk.length;
  }

  /** Writes what is buffered (without fsync). */
  flush(): Promise<void> {
    return this.#enqueue(() => this.#flushPending());
  }

  /** Completes the file and moves it to its final name. */
  async close(): Promise<WavWriteResult> {
    if (this.#closed) throw new WavFormatError('writer already closed');
    this.#closed = true;
    await this.#enqueue(async () => {
      await this.#flushPending();
      const file = this.#file!;
      if (this.#dataBytes % 2) {
        await file.write(Buffer.alloc(1), 0, 1, this.#offset);
      }
      const header = wavHeader(this.encoding, this.sampleRate, 1, this.#dataBytes);
      await file.write(header, 0, header.length, 0);
      if (this.fsync) await file.sync();
      await file.close();
      this.#file = undefined;
      await rename(this.tempPath, this.path);
      if (this.fsync) {
        // The rename is durable only once the directory entry is on disk.
        const dir = await open(path.dirname(this.path), 'r');
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
      }
    });
    if (this.#failed) {
      await this.#discard();
      throw this.#failed;
    }
    const samples = this.samplesWritten;
    return { path: this.path, samples, durationMs: (samples * 1000) / this.sampleRate, bytes: this.#offset + (this.#dataBytes % 2) };
  }

  /** Gives up: closes and removes the temporary file. */
  async abort(): Promise<void> {
    this.#closed = true;
    await this.#chain;
    await this.#discard();
  }

  async #discard(): Promise<void> {
    if (this.#file) {
      await this.#file.close().catch(() => undefined);
      this.#file = undefined;
    }
    await unlink(this.tempPath).catch(() => undefined);
  }
}

/** Writes a whole file durably (temporary name, fsync, rename). */
export async function writeWavFile(
  file: string,
  samples: Int16Array,
  options: Omit<WavWriterOptions, 'bufferBytes'> = {},
): Promise<WavWriteResult> {
  const writer = new WavFileWriter(file, options);
  await writer.open();
  writer.write(samples);
  return writer.close();
}
