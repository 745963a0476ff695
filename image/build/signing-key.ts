// The build's signing key. A release build names its key (BRANCHLINE_SIGNING_KEY or
// --signing-key, kept off this machine's repository); a developer build makes one in
// image/out/keys/ on first use and reuses it, so rebuilt bundles verify with the same
// public key. Private keys are never committed (image/out/ is ignored).
import { createPublicKey, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateSigningKeyPair, loadPrivateKey } from '../bundle/signing.ts';

export interface SigningKey {
  privateKey: KeyObject;
  /** The matching public key as a PEM file, to ship in the image's keys/. */
  publicFile: string;
}

/** Loads `file`, or creates it (0600) with its `.pub` beside it when `create` is set. */
export function loadOrCreateSigningKey(file: string, opts: { create: boolean }): SigningKey {
  const publicFile = file.replace(/\.key$/, '') + '.pub';
  if (!existsSync(file)) {
    if (!opts.create) throw new Error(`signing key ${file} does not exist`);
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const pair = generateSigningKeyPair();
    writeFileSync(file, pair.privatePem, { mode: 0o600 });
    chmodSync(file, 0o600);
    writeFileSync(publicFile, pair.publicPem, { mode: 0o644 });
  }
  const privateKey = loadPrivateKey(file);
  if (!existsSync(publicFile)) {
    writeFileSync(publicFile, createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString(), { mode: 0o644 });
  }
  return { privateKey, publicFile };
}
