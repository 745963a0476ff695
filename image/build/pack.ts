import type { KeyObject } from 'node:crypto';
import type { Architecture } from '../bundle/manifest.ts';
import { writeBundle, type Release } from '../bundle/write.ts';
import { packImage, type Compression } from '../squashfs.ts';

export interface PackBundleOptions {
  stageDir: string;
  /** The squashfs file to write on the way. */
  imageFile: string;
  bundleFile: string;
  version: string;
  minVersion: string;
  architecture: Architecture;
  node: string;
  unpackedSize: number;
  compression: Compression;
  signingKey: KeyObject | null;
  /** SOURCE_DATE_EPOCH: every timestamp in image and bundle. */
  mtime: number;
}

/** Staged tree → squashfs image → signed bundle. */
export async function packBundle(opts: PackBundleOptions): Promise<{ bundleBytes: number; imageBytes: number }> {
  await packImage(opts.stageDir, opts.imageFile, { compression: opts.compression, mtime: opts.mtime });
  const release: Release = {
    version: opts.version,
    architecture: opts.architecture,
    min_version: opts.minVersion,
    node: opts.node,
    unpacked_size: opts.unpackedSize,
    compression: opts.compression,
  };
  const written = await writeBundle({ out: opts.bundleFile, image: opts.imageFile, release, signingKey: opts.signingKey, mtime: opts.mtime });
  return { bundleBytes: written.size, imageBytes: written.manifest.image.size };
}
