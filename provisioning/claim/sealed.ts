// Credentials travel sealed to the claiming device: an ephemeral X25519 key agreement
// with the device's box key, HKDF-SHA256, AES-256-GCM. Whoever else reads the claim
// response topic (the bootstrap login is shared by every new box) learns nothing.
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto';

export interface Sealed {
  alg: 'X25519-HKDF-SHA256-A256GCM';
  /** The sender's ephemeral public key, SPKI DER, base64. */
  epk: string;
  iv: string;
  ciphertext: string;
  tag: string;
}

export class SealError extends Error {
  readonly code = 'ESEALED';
}

const INFO = Buffer.from('branchline claim v1');

function key(shared: Buffer, epk: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, epk, INFO, 32));
}

/** Encrypts `plaintext` so that only the holder of `boxPublicPem`'s private key can read it. */
export function seal(boxPublicPem: string, plaintext: string): Sealed {
  const recipient = createPublicKey(boxPublicPem);
  if (recipient.asymmetricKeyType !== 'x25519') throw new SealError('the device box key is not an X25519 key');
  const eph = generateKeyPairSync('x25519');
  const epk = eph.publicKey.export({ type: 'spki', format: 'der' });
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: recipient });
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key(shared, epk), iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return { alg: 'X25519-HKDF-SHA256-A256GCM', epk: epk.toString('base64'), iv: iv.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
}

export function open(boxPrivatePem: string, sealed: Sealed): string {
  try {
    const epk = Buffer.from(sealed.epk, 'base64');
    const shared = diffieHellman({ privateKey: createPrivateKey(boxPrivatePem), publicKey: createPublicKey({ key: epk, format: 'der', type: 'spki' }) });
    const decipher = createDecipheriv('aes-256-gcm', key(shared, epk), Buffer.from(sealed.iv, 'base64'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new SealError(`cannot open the sealed credentials: ${(err as Error).message}`);
  }
}
