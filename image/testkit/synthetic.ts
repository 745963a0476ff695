// Small, real bundles for tests and the bench: a genuine squashfs image and a genuine
// signed manifest around a stand-in `bin/branchline` (a shell script that answers
// --version). They exercise every check and every install step in milliseconds; the
// integration tests use the real single executable.
import type { KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { keyId, loadPublicKey } from '../bundle/signing.ts';
import { writeBundle } from '../bundle/write.ts';
import type { Architecture } from '../bundle/manifest.ts';
import { loadOrCreateSigningKey, type SigningKey } from '../build/signing-key.ts';
import { treeSize } from '../build/stage.ts';
import { IMAGE_BINARY, IMAGE_KEYS_DIR, IMAGE_PACKAGE_JSON } from '../layout.ts';
import { packImage } from '../squashfs.ts';

export interface SyntheticBundle {
  version: string;
  /** Defaults to '0.0.0'. */
  minVersion?: string;
  /** Defaults to this machine's. */
  architecture?: Architecture;
  /** null: an unsigned bundle. */
  signingKey: KeyObject | null;
  /** Public key files the image trusts for the next update. */
  trusted: readonly string[];
  /** What the stand-in binary says to --version; defaults to the honest answer. */
  reportsVersion?: string;
  /** A bare image tree with no keys/ (post-install must refuse it). */
  withoutKeys?: boolean;
}

/** A signing key pair in `dir` (created on first use). */
export function testKey(dir: string, name: string): SigningKey {
  return loadOrCreateSigningKey(path.join(dir, `${name}.key`), { create: true });
}

/** Writes a bundle of `spec` into `dir`; returns its path. */
export async function makeSyntheticBundle(dir: string, spec: SyntheticBundle): Promise<string> {
  const arch = spec.architecture ?? (process.arch as Architecture);
  const tag = `${spec.version}-${arch}-${Math.random().toString(36).slice(2, 8)}`;
  const stage = path.join(dir, `stage-${tag}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(path.join(stage, 'bin'), { recursive: true });
  const binary = path.join(stage, IMAGE_BINARY);
  writeFileSync(binary, `#!/bin/sh\nif [ "$1" = "--version" ]; then echo "branchline ${spec.reportsVersion ?? spec.version}"; exit 0; fi\necho "stand-in binary: $*" >&2\nexit 64\n`);
  chmodSync(binary, 0o755);
  writeFileSync(path.join(stage, IMAGE_PACKAGE_JSON), `${JSON.stringify({ name: 'branchline', version: spec.version })}\n`);
  if (!spec.withoutKeys) {
    mkdirSync(path.join(stage, IMAGE_KEYS_DIR));
    for (const file of spec.trusted) {
      writeFileSync(path.join(stage, IMAGE_KEYS_DIR, `${keyId(loadPublicKey(file))}.pub`), loadPublicKey(file).export({ type: 'spki', format: 'pem' }));
    }
  }
  const image = path.join(dir, `image-${tag}.squashfs`);
  await packImage(stage, image, { compression: 'gzip', mtime: 0 });
  const out = path.join(dir, `branchline-${tag}.bundle`);
  await writeBundle({
    out,
    image,
    release: {
      version: spec.version,
      architecture: arch,
      min_version: spec.minVersion ?? '0.0.0',
      node: process.versions.node,
      unpacked_size: treeSize(stage),
      compression: 'gzip',
    },
    signingKey: spec.signingKey,
  });
  rmSync(stage, { recursive: true, force: true });
  rmSync(image, { force: true });
  return out;
}
