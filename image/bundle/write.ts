import { createHash, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { IMAGE_ENTRY, MANIFEST_ENTRY, MANIFEST_FORMAT, PRODUCT_NAME, serializeManifest, type Architecture, type Manifest } from './manifest.ts';
import { SIGNATURE_ENTRY, signManifest } from './signing.ts';
import { writeTar } from './tar.ts';

export interface Release {
  version: string;
  architecture: Architecture;
  min_version: string;
  node: string;
  /** Sum of file sizes in the image once unpacked. */
  unpacked_size: number;
  compression: string;
}

export interface WriteBundleOptions {
  /** The bundle file to write (replaced atomically). */
  out: string;
  /** The squashfs image to wrap. */
  image: string;
  release: Release;
  /** null writes an unsigned bundle: only tests want one, to see it refused. */
  signingKey: KeyObject | null;
  /** Timestamp for the tar headers (SOURCE_DATE_EPOCH): same inputs, same bytes. */
  mtime?: number;
}

export async function sha256File(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

/** Builds the manifest for the image, signs it and writes `manifest.json`, `manifest.sig`, `image.squashfs`. */
export async function writeBundle(opts: WriteBundleOptions): Promise<{ file: string; manifest: Manifest; size: number }> {
  const { sha256, size } = await sha256File(opts.image);
  const r = opts.release;
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    name: PRODUCT_NAME,
    version: r.version,
    architecture: r.architecture,
    min_version: r.min_version,
    node: r.node,
    image: { file: IMAGE_ENTRY, size, sha256, unpacked_size: r.unpacked_size, compression: r.compression },
  };
  const manifestBytes = serializeManifest(manifest);
  const entries = [{ name: MANIFEST_ENTRY, data: manifestBytes, size: manifestBytes.length }];
  if (opts.signingKey) {
    const sig = signManifest(manifestBytes, opts.signingKey);
    entries.push({ name: SIGNATURE_ENTRY, data: sig, size: sig.length });
  }
  const tmp = `${opts.out}.tmp`;
  const out = await open(tmp, 'w', 0o644);
  try {
    await writeTar(out, [...entries, { name: IMAGE_ENTRY, file: opts.image, size }], opts.mtime ?? 0);
    await out.sync();
  } catch (err) {
    await out.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await out.close();
  await rename(tmp, opts.out);
  return { file: opts.out, manifest, size: (await stat(opts.out)).size };
}
