// A SIP password per provisioned phone, generated on first sight of its MAC and kept
// in the state folder (mode 0600, atomic). The phone gets it in its configuration file
// and the registrar checks it; it is never logged. A phone moved to another extension
// gets a new password.
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeSecretFile } from '../secure-file.ts';

export const PHONE_CREDENTIALS_FILE = 'phones.json';

export class PhoneCredentialsError extends Error {
  readonly code = 'EPHONES';
}

export interface PhoneCredential {
  extension: string;
  password: string;
  created_at: string;
}

// Letters and digits only: some phones' web UIs and config parsers choke on symbols.
const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

export function newPhonePassword(length = 20): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

/** The stored credentials. A damaged file is refused, never replaced: the phones hold those passwords. */
function readStored(file: string): Record<string, PhoneCredential> {
  if (!existsSync(file)) return {};
  let stored: unknown;
  try {
    stored = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new PhoneCredentialsError(`${file} is not readable as JSON (${(err as Error).message}): restore it, or remove it to give every phone a new password`);
  }
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) {
    throw new PhoneCredentialsError(`${file} does not hold the phones' credentials by MAC: restore it, or remove it to give every phone a new password`);
  }
  return stored as Record<string, PhoneCredential>;
}

/** Returns a credential for each MAC (key: normalized MAC), creating the missing ones. */
export function ensurePhoneCredentials(dir: string, phones: ReadonlyArray<{ mac: string; extension: string }>): { credentials: Map<string, PhoneCredential>; created: string[] } {
  const file = path.join(dir, PHONE_CREDENTIALS_FILE);
  const stored = readStored(file);
  const created: string[] = [];
  const credentials = new Map<string, PhoneCredential>();
  for (const p of phones) {
    let c = stored[p.mac];
    if (!c || c.extension !== p.extension) {
      c = { extension: p.extension, password: newPhonePassword(), created_at: new Date().toISOString() };
      stored[p.mac] = c;
      created.push(p.mac);
    }
    credentials.set(p.mac, c);
  }
  if (created.length > 0) writeSecretFile(file, `${JSON.stringify(stored, null, 2)}\n`);
  return { credentials, created };
}
