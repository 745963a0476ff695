import { BundleError } from './errors.ts';
import { isVersion } from './version.ts';

/** CPU architectures we build for, named as Node names them (`process.arch`). */
export const ARCHITECTURES = ['x64', 'arm64'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

export const MANIFEST_FORMAT = 1;
export const PRODUCT_NAME = 'branchline';
export const IMAGE_ENTRY = 'image.squashfs';
export const MANIFEST_ENTRY = 'manifest.json';

/**
 * What a bundle promises, signed as a whole. The image itself is bound to it by size
 * and sha256, so the signature over these bytes covers every byte that gets installed.
 */
export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  name: typeof PRODUCT_NAME;
  version: string;
  architecture: Architecture;
  /** The oldest installed version allowed to install this bundle (migration floor). */
  min_version: string;
  /** The Node.js runtime inside the executable. */
  node: string;
  image: ImageInfo;
}

export interface ImageInfo {
  file: typeof IMAGE_ENTRY;
  /** Bytes of the squashfs image. */
  size: number;
  /** Lower-case hex sha256 of the squashfs image. */
  sha256: string;
  /** Sum of the file sizes once unpacked: what a slot needs on disk. */
  unpacked_size: number;
  compression: string;
}

function fail(reason: string): never {
  throw new BundleError('EBUNDLE_MANIFEST', `manifest is not valid: ${reason}`);
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`${where} must be an object`);
  return value as Record<string, unknown>;
}

function only(obj: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) if (!keys.includes(key)) fail(`${where}${key} is not a known field`);
}

function text(obj: Record<string, unknown>, key: string, where = ''): string {
  const v = obj[key];
  if (typeof v !== 'string' || v.length === 0) fail(`${where}${key} must be a non-empty string`);
  return v;
}

function version(obj: Record<string, unknown>, key: string): string {
  const v = text(obj, key);
  if (!isVersion(v)) fail(`${key} "${v}" is not MAJOR.MINOR.PATCH[-PRERELEASE]`);
  return v;
}

function size(obj: Record<string, unknown>, key: string, where: string): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${where}${key} must be a non-negative integer`);
  return v;
}

/**
 * Parses the signed manifest bytes. Unknown fields are refused: a newer format must
 * raise `format`, never slip a field past an older verifier that would ignore it.
 */
export function parseManifest(bytes: Buffer): Manifest {
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch {
    fail('not JSON');
  }
  const m = object(data, 'the manifest');
  if (m['format'] !== MANIFEST_FORMAT) fail(`format ${JSON.stringify(m['format'])} is not supported (this build reads format ${MANIFEST_FORMAT})`);
  only(m, ['format', 'name', 'version', 'architecture', 'min_version', 'node', 'image'], '');
  if (m['name'] !== PRODUCT_NAME) fail(`name ${JSON.stringify(m['name'])} is not "${PRODUCT_NAME}"`);
  const architecture = text(m, 'architecture');
  if (!(ARCHITECTURES as readonly string[]).includes(architecture)) fail(`architecture "${architecture}" is not one of ${ARCHITECTURES.join(', ')}`);
  const img = object(m['image'], 'image');
  only(img, ['file', 'size', 'sha256', 'unpacked_size', 'compression'], 'image.');
  if (img['file'] !== IMAGE_ENTRY) fail(`image.file must be "${IMAGE_ENTRY}"`);
  const sha256 = text(img, 'sha256', 'image.');
  if (!/^[0-9a-f]{64}$/.test(sha256)) fail('image.sha256 must be 64 lower-case hex digits');
  return {
    format: MANIFEST_FORMAT,
    name: PRODUCT_NAME,
    version: version(m, 'version'),
    architecture: architecture as Architecture,
    min_version: version(m, 'min_version'),
    node: text(m, 'node'),
    image: {
      file: IMAGE_ENTRY,
      size: size(img, 'size', 'image.'),
      sha256,
      unpacked_size: size(img, 'unpacked_size', 'image.'),
      compression: text(img, 'compression', 'image.'),
    },
  };
}

/** The exact bytes that get signed: fixed key order, so a rebuild signs the same bytes. */
export function serializeManifest(m: Manifest): Buffer {
  const ordered: Manifest = {
    format: m.format,
    name: m.name,
    version: m.version,
    architecture: m.architecture,
    min_version: m.min_version,
    node: m.node,
    image: {
      file: m.image.file,
      size: m.image.size,
      sha256: m.image.sha256,
      unpacked_size: m.image.unpacked_size,
      compression: m.image.compression,
    },
  };
  return Buffer.from(`${JSON.stringify(ordered, null, 2)}\n`, 'utf8');
}
