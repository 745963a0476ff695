// ed25519 over the exact manifest bytes. The signature file names the key it was made
// with (a key id), so a system that trusts several keys (during a key rotation) knows
// which one to check with, and a refusal can say which key it did not know.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BundleError } from './errors.ts';

export const SIGNATURE_ENTRY = 'manifest.sig';
export const PUBLIC_KEY_SUFFIX = '.pub';

export interface SignatureFile {
  format: 1;
  algorithm: 'ed25519';
  key_id: string;
  /** base64 of the 64-byte signature. */
  signature: string;
}

/** Trusted public keys by key id. */
export type KeyRing = ReadonlyMap<string, KeyObject>;

export class KeyError extends Error {
  readonly code = 'EKEY';
}

/** First 16 hex digits of sha256 over the key's SubjectPublicKeyInfo DER. */
export function keyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

export function generateSigningKeyPair(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

export function loadPrivateKey(file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch (err) {
    throw new KeyError(`cannot read signing key ${file}: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new KeyError(`signing key ${file} is ${key.asymmetricKeyType}, not ed25519`);
  return key;
}

export function loadPublicKey(file: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(readFileSync(file));
  } catch (err) {
    throw new KeyError(`cannot read public key ${file}: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new KeyError(`public key ${file} is ${key.asymmetricKeyType}, not ed25519`);
  return key;
}

/** A key ring from explicit files (`--key`). */
export function keyRingFromFiles(files: readonly string[]): KeyRing {
  const ring = new Map<string, KeyObject>();
  for (const file of files) {
    const key = loadPublicKey(file);
    ring.set(keyId(key), key);
  }
  return ring;
}

/** Every `*.pub` in a directory (an image's or a slot's `keys/`); empty if it is absent. */
export function keyRingFromDir(dir: string): KeyRing {
  if (!existsSync(dir)) return new Map();
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(PUBLIC_KEY_SUFFIX))
    .sort()
    .map((f) => path.join(dir, f));
  return keyRingFromFiles(files);
}

export function signManifest(manifest: Buffer, privateKey: KeyObject): Buffer {
  const publicKey = createPublicKey(privateKey);
  const file: SignatureFile = {
    format: 1,
    algorithm: 'ed25519',
    key_id: keyId(publicKey),
    signature: sign(null, manifest, privateKey).toString('base64'),
  };
  return Buffer.from(`${JSON.stringify(file)}\n`, 'utf8');
}

function parseSignature(bytes: Buffer): SignatureFile {
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new BundleError('EBUNDLE_SIGNATURE', 'signature file is not JSON');
  }
  const s = data as Partial<SignatureFile> | null;
  if (!s || s.format !== 1 || s.algorithm !== 'ed25519' || typeof s.key_id !== 'string' || typeof s.signature !== 'string') {
    throw new BundleError('EBUNDLE_SIGNATURE', 'signature file is not an ed25519 signature this build reads');
  }
  return s as SignatureFile;
}

/** Checks the manifest bytes against the signature with a trusted key; returns the key id. */
export function verifyManifestSignature(manifest: Buffer, signature: Buffer, ring: KeyRing): string {
  if (ring.size === 0) throw new BundleError('EBUNDLE_NO_TRUST', 'no trusted public key to check the signature with (pass --key FILE)');
  const sig = parseSignature(signature);
  const key = ring.get(sig.key_id);
  if (!key) {
    throw new BundleError('EBUNDLE_UNTRUSTED_KEY', `signed by key ${sig.key_id}, which is not trusted here (trusted: ${[...ring.keys()].join(', ')})`);
  }
  const raw = Buffer.from(sig.signature, 'base64');
  if (raw.length !== 64 || !verify(null, manifest, key, raw)) {
    throw new BundleError('EBUNDLE_SIGNATURE', `signature does not match the manifest (key ${sig.key_id}): the bundle was altered or mis-signed`);
  }
  return sig.key_id;
}
