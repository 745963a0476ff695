import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { BundleError } from './errors.ts';
import { parseManifest, type Manifest } from './manifest.ts';
import { readBundleParts, type BundleParts } from './read.ts';
import { verifyManifestSignature, type KeyRing } from './signing.ts';
import { compareVersions } from './version.ts';

export interface VerifyPolicy {
  /** The keys this system trusts (the running slot's, or `--key`). */
  keys: KeyRing;
  /** The CPU this system runs on (`process.arch`). */
  architecture: string;
  /** The version installed and running now; null on an empty slot tree (first flash). */
  installedVersion: string | null;
  /** Write the image here while hashing it: an install unpacks the very bytes it checked. */
  copyImageTo?: string;
}

export interface VerifiedBundle {
  file: string;
  manifest: Manifest;
  keyId: string;
  /** The verified copy of the image, when the policy asked for one. */
  imageFile?: string;
}

/**
 * Anti-rollback: a bundle must be newer than what runs, and what runs must be at
 * least the bundle's `min_version` (the oldest release it knows how to migrate from).
 */
export function checkVersionRules(manifest: Manifest, installed: string | null): void {
  if (installed === null) return;
  if (compareVersions(manifest.version, installed) <= 0) {
    throw new BundleError('EBUNDLE_TOO_OLD', `version ${manifest.version} is not newer than the installed ${installed} (anti-rollback)`);
  }
  if (compareVersions(installed, manifest.min_version) < 0) {
    throw new BundleError('EBUNDLE_MIN_VERSION', `version ${manifest.version} installs only over ${manifest.min_version} or later; installed is ${installed}`);
  }
}

export function checkArchitecture(manifest: Manifest, architecture: string): void {
  if (manifest.architecture !== architecture) {
    throw new BundleError('EBUNDLE_ARCH', `built for ${manifest.architecture}, this system is ${architecture}`);
  }
}

export interface SignedBundle {
  parts: BundleParts;
  manifest: Manifest;
  keyId: string;
}

/**
 * The cheap checks, signature first so that nothing trusts the manifest before it is
 * proven: container → signature → manifest → architecture → versions.
 */
export async function verifySigned(file: string, policy: Omit<VerifyPolicy, 'copyImageTo'>): Promise<SignedBundle> {
  const parts = await readBundleParts(file);
  if (!parts.signature) throw new BundleError('EBUNDLE_UNSIGNED', 'unsigned: the bundle has no manifest.sig');
  const keyId = verifyManifestSignature(parts.manifest, parts.signature, policy.keys);
  const manifest = parseManifest(parts.manifest);
  checkArchitecture(manifest, policy.architecture);
  checkVersionRules(manifest, policy.installedVersion);
  return { parts, manifest, keyId };
}

/** The image against the signed manifest: size, then sha256 (optionally copying as it reads). */
export async function verifyImage(signed: SignedBundle, copyTo?: string): Promise<void> {
  const { parts, manifest } = signed;
  if (parts.image.size !== manifest.image.size) {
    throw new BundleError('EBUNDLE_SIZE', `image is ${parts.image.size} bytes, the signed manifest says ${manifest.image.size}: the image was altered`);
  }
  const sha256 = await hashRange(parts.file, parts.image.offset, parts.image.size, copyTo);
  if (sha256 !== manifest.image.sha256) {
    if (copyTo) await rm(copyTo, { force: true });
    throw new BundleError('EBUNDLE_HASH', `image sha256 ${sha256.slice(0, 16)}… does not match the signed ${manifest.image.sha256.slice(0, 16)}…: the image was altered`);
  }
}

/** Every check; throws BundleError with a one-line reason. */
export async function verifyBundle(file: string, policy: VerifyPolicy): Promise<VerifiedBundle> {
  const signed = await verifySigned(file, policy);
  await verifyImage(signed, policy.copyImageTo);
  const verified: VerifiedBundle = { file, manifest: signed.manifest, keyId: signed.keyId };
  if (policy.copyImageTo) verified.imageFile = policy.copyImageTo;
  return verified;
}

async function hashRange(file: string, offset: number, size: number, copyTo: string | undefined): Promise<string> {
  const hash = createHash('sha256');
  const input = await open(file, 'r');
  const out = copyTo ? await open(copyTo, 'w', 0o600) : undefined;
  try {
    const chunk = Buffer.alloc(1 << 20);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await input.read(chunk, 0, Math.min(chunk.length, size - done), offset + done);
      if (bytesRead === 0) throw new BundleError('EBUNDLE_FORMAT', 'not a Branchline bundle: the image is truncated');
      const piece = chunk.subarray(0, bytesRead);
      hash.update(piece);
      if (out) await out.write(piece);
      done += bytesRead;
    }
    if (out) await out.sync();
  } finally {
    await input.close();
    await out?.close();
  }
  return hash.digest('hex');
}
