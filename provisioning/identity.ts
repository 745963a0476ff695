// The appliance's identity, made on first boot and kept in the state folder: an
// ed25519 key pair (proves the claim comes from this box), an X25519 key pair (the
// controller seals the credentials to it) and a serial derived from the signing key,
// so the serial cannot be claimed without the key.
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeSecretFile } from './secure-file.ts';

export const IDENTITY_FILE = 'identity.json';

export interface DeviceIdentity {
  serial: string;
  /** PEM, SubjectPublicKeyInfo. */
  sign_public: string;
  /** PEM, PKCS#8. */
  sign_private: string;
  box_public: string;
  box_private: string;
  created_at: string;
}

export class IdentityError extends Error {
  readonly code = 'EIDENTITY';
}

/** BL- and the first 12 hex digits of the sha256 of the signing key (SPKI DER), upper case. */
export function serialOf(signPublicPem: string): string {
  const der = createPublicKey(signPublicPem).export({ type: 'spki', format: 'der' });
  return `BL-${createHash('sha256').update(der).digest('hex').slice(0, 12).toUpperCase()}`;
}

export function identityFile(dir: string): string {
  return path.join(dir, IDENTITY_FILE);
}

function parseIdentity(file: string): DeviceIdentity {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new IdentityError(`cannot read the device identity ${file}: ${(err as Error).message}`);
  }
  const o = parsed as Partial<DeviceIdentity>;
  for (const key of ['serial', 'sign_public', 'sign_private', 'box_public', 'box_private'] as const) {
    if (typeof o[key] !== 'string') throw new IdentityError(`device identity ${file}: "${key}" is missing`);
  }
  const identity = o as DeviceIdentity;
  if (serialOf(identity.sign_public) !== identity.serial) throw new IdentityError(`device identity ${file}: the serial does not belong to the key`);
  return identity;
}

/** The identity in `dir`, made (once, atomically, mode 0600) if there is none. */
export function loadOrCreateIdentity(dir: string): { identity: DeviceIdentity; created: boolean } {
  const file = identityFile(dir);
  if (existsSync(file)) return { identity: parseIdentity(file), created: false };
  const sign = generateKeyPairSync('ed25519');
  const box = generateKeyPairSync('x25519');
  const signPublic = sign.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const identity: DeviceIdentity = {
    serial: serialOf(signPublic),
    sign_public: signPublic,
    sign_private: sign.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    box_public: box.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    box_private: box.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    created_at: new Date().toISOString(),
  };
  writeSecretFile(file, `${JSON.stringify(identity, null, 2)}\n`);
  return { identity, created: true };
}
