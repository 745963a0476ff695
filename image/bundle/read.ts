import { open } from 'node:fs/promises';
import { BundleError } from './errors.ts';
import { IMAGE_ENTRY, MANIFEST_ENTRY } from './manifest.ts';
import { SIGNATURE_ENTRY } from './signing.ts';
import { listTar, type TarEntry } from './tar.ts';

const MAX_MANIFEST_BYTES = 64 * 1024;
const MAX_SIGNATURE_BYTES = 4 * 1024;

/** The raw pieces of a bundle: small parts read, the image only located. */
export interface BundleParts {
  file: string;
  size: number;
  manifest: Buffer;
  /** null when the bundle carries no signature. */
  signature: Buffer | null;
  image: TarEntry;
}

/**
 * Reads the container. The layout is fixed — manifest.json, manifest.sig,
 * image.squashfs, in that order — so that the signed part comes first and nothing
 * unsigned can ride along.
 */
export async function readBundleParts(file: string): Promise<BundleParts> {
  let input;
  try {
    input = await open(file, 'r');
  } catch (err) {
    throw new BundleError('EBUNDLE_READ', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const size = (await input.stat()).size;
    const entries = await listTar(input, size);
    const names = entries.map((e) => e.name).join(', ');
    const [first, second, third] = entries;
    if (!first || first.name !== MANIFEST_ENTRY) throw new BundleError('EBUNDLE_FORMAT', `not a Branchline bundle: first entry must be ${MANIFEST_ENTRY} (found: ${names || 'none'})`);
    let sigEntry: TarEntry | null = null;
    let imageEntry: TarEntry | undefined;
    if (second?.name === SIGNATURE_ENTRY) {
      sigEntry = second;
      imageEntry = third;
      if (entries.length !== 3) imageEntry = undefined;
    } else {
      imageEntry = entries.length === 2 ? second : undefined;
    }
    if (!imageEntry || imageEntry.name !== IMAGE_ENTRY) {
      throw new BundleError('EBUNDLE_FORMAT', `not a Branchline bundle: expected ${MANIFEST_ENTRY}, ${SIGNATURE_ENTRY}, ${IMAGE_ENTRY} (found: ${names})`);
    }
    if (first.size > MAX_MANIFEST_BYTES) throw new BundleError('EBUNDLE_FORMAT', `not a Branchline bundle: manifest is ${first.size} bytes`);
    if (sigEntry && sigEntry.size > MAX_SIGNATURE_BYTES) throw new BundleError('EBUNDLE_FORMAT', `not a Branchline bundle: signature is ${sigEntry.size} bytes`);
    const read = async (e: TarEntry): Promise<Buffer> => {
      const buf = Buffer.alloc(e.size);
      await input.read(buf, 0, e.size, e.offset);
      return buf;
    };
    return { file, size, manifest: await read(first), signature: sigEntry ? await read(sigEntry) : null, image: imageEntry };
  } finally {
    await input.close();
  }
}
