// The bundle container is a plain POSIX ustar archive, so an operator can look inside
// with `tar tvf` and `tar xf`. We write and read only the small subset we need (regular
// files with flat names) and read it strictly: anything else is not our bundle.
import { open, type FileHandle } from 'node:fs/promises';
import { BundleError } from './errors.ts';

const BLOCK = 512;
const NAME = /^[A-Za-z0-9._-]{1,100}$/;

export interface TarSource {
  name: string;
  /** Either the bytes themselves or a file to copy (streamed, never loaded whole). */
  data?: Buffer;
  file?: string;
  size: number;
}

export interface TarEntry {
  name: string;
  size: number;
  /** Where the entry's data starts in the archive. */
  offset: number;
}

function octal(value: number, width: number): string {
  // width includes the terminating NUL.
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

export function tarHeader(name: string, size: number, mtime: number): Buffer {
  if (!NAME.test(name)) throw new Error(`tar entry name ${JSON.stringify(name)} is not a flat file name`);
  const h = Buffer.alloc(BLOCK, 0);
  h.write(name, 0, 'ascii');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum is computed with its own field as spaces
  h.write('0', 156, 'ascii'); // regular file
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** Writes the entries, in order, into an open file. `mtime` is fixed for reproducibility. */
export async function writeTar(out: FileHandle, entries: readonly TarSource[], mtime: number): Promise<void> {
  for (const entry of entries) {
    await out.write(tarHeader(entry.name, entry.size, mtime));
    if (entry.data) {
      if (entry.data.length !== entry.size) throw new Error(`tar entry ${entry.name}: ${entry.data.length} bytes, expected ${entry.size}`);
      await out.write(entry.data);
    } else if (entry.file) {
      const input = await open(entry.file, 'r');
      try {
        const chunk = Buffer.alloc(1 << 20);
        let copied = 0;
        for (;;) {
          const { bytesRead } = await input.read(chunk, 0, chunk.length, null);
          if (bytesRead === 0) break;
          await out.write(chunk.subarray(0, bytesRead));
          copied += bytesRead;
        }
        if (copied !== entry.size) throw new Error(`tar entry ${entry.name}: copied ${copied} bytes from ${entry.file}, expected ${entry.size}`);
      } finally {
        await input.close();
      }
    }
    const pad = padding(entry.size);
    if (pad > 0) await out.write(Buffer.alloc(pad, 0));
  }
  await out.write(Buffer.alloc(BLOCK * 2, 0)); // end-of-archive marker
}

function field(h: Buffer, start: number, length: number): string {
  const raw = h.subarray(start, start + length);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? length : nul).toString('ascii');
}

function notOurs(reason: string): never {
  throw new BundleError('EBUNDLE_FORMAT', `not a Branchline bundle: ${reason}`);
}

function parseOctal(text: string, what: string): number {
  const t = text.trim();
  if (!/^[0-7]+$/.test(t)) notOurs(`tar header has a bad ${what} field`);
  return parseInt(t, 8);
}

/**
 * Lists a ustar archive's entries without reading their data. At most `maxEntries`
 * are accepted: a bundle has three, and a crafted archive must not make us walk far.
 */
export async function listTar(input: FileHandle, fileSize: number, maxEntries = 8): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  let pos = 0;
  const h = Buffer.alloc(BLOCK);
  for (;;) {
    if (pos + BLOCK > fileSize) notOurs(entries.length === 0 ? 'the file is too short' : 'the archive is truncated');
    await input.read(h, 0, BLOCK, pos);
    if (h.every((b) => b === 0)) break;
    if (entries.length >= maxEntries) notOurs(`more than ${maxEntries} entries`);
    if (field(h, 257, 6) !== 'ustar' || field(h, 263, 2) !== '00') notOurs('not a ustar archive');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    if (parseOctal(field(h, 148, 8), 'checksum') !== sum) notOurs('a tar header checksum is wrong');
    const type = field(h, 156, 1);
    if (type !== '0' && type !== '') notOurs('an entry is not a regular file');
    if (field(h, 345, 155) !== '') notOurs('an entry has a path prefix');
    const name = field(h, 0, 100);
    if (!NAME.test(name)) notOurs(`entry name ${JSON.stringify(name)} is not a flat file name`);
    const size = parseOctal(field(h, 124, 12), 'size');
    const offset = pos + BLOCK;
    if (offset + size > fileSize) notOurs(`entry ${name} runs past the end of the file`);
    entries.push({ name, size, offset });
    pos = offset + size + padding(size);
  }
  return entries;
}
