// SHA-256 of a file and of each of its fixed-size chunks, in one streaming pass.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export interface FileDigest {
  size: number;
  sha256: string;
  chunks: string[];
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function digestFile(file: string, chunkSize: number): Promise<FileDigest> {
  const whole = createHash('sha256');
  const chunks: string[] = [];
  let current: Hash = createHash('sha256');
  let inChunk = 0;
  let size = 0;
  for await (const piece of createReadStream(file, { highWaterMark: Math.min(chunkSize, 1 << 20) }) as AsyncIterable<Buffer>) {
    whole.update(piece);
    size += piece.length;
    let offset = 0;
    while (offset < piece.length) {
      const take = Math.min(chunkSize - inChunk, piece.length - offset);
      current.update(piece.subarray(offset, offset + take));
      inChunk += take;
      offset += take;
      if (inChunk === chunkSize) {
        chunks.push(current.digest('hex'));
        current = createHash('sha256');
        inChunk = 0;
      }
    }
  }
  if (inChunk > 0) chunks.push(current.digest('hex'));
  return { size, sha256: whole.digest('hex'), chunks };
}
