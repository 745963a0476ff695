// Mailbox PINs and the lockout. The config's PIN is the PIN until the owner sets
// one by phone; that one is kept as an scrypt hash together with a hash of the
// config PIN it replaced, so an administrator who changes the config PIN resets it.
// Wrong PINs count per mailbox across calls and restarts; at `failures` the mailbox
// refuses every PIN, right or wrong, for `duration` seconds.
import { randomBytes, scrypt as scryptCb, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { Database } from '../../store/db.ts';
import type { GroupCommitter } from '../../store/group-commit.ts';

const scrypt = promisify(scryptCb) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;

export type PinVerdict = 'ok' | 'wrong' | 'locked';

export const PIN_RE = /^[0-9]{4,10}$/;

export async function hashPin(pin: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(pin, salt, 32);
  return `scrypt$${salt.toString('hex')}$${hash.toString('hex')}`;
}

export async function pinMatches(pin: string, stored: string): Promise<boolean> {
  const [scheme, saltHex, hashHex] = stored.split('$');
  if (scheme !== 'scrypt' || saltHex === undefined || hashHex === undefined) return false;
  const expected = Buffer.from(hashHex, 'hex');
  const actual = await scrypt(pin, Buffer.from(saltHex, 'hex'), expected.length);
  return timingSafeEqual(actual, expected);
}

interface MailboxRow {
  pin_hash: string | null;
  config_pin_hash: string | null;
  pin_failures: number;
  locked_until: number;
}

export class PinStore {
  readonly #db: Database;
  readonly #committer: GroupCommitter;
  readonly #lockout: { failures: number; durationMs: number };

  constructor(deps: { db: Database; committer: GroupCommitter; lockout: { failures: number; duration: number } }) {
    this.#db = deps.db;
    this.#committer = deps.committer;
    this.#lockout = { failures: deps.lockout.failures, durationMs: deps.lockout.duration * 1000 };
  }

  async #row(mailbox: string): Promise<MailboxRow | undefined> {
    return this.#db.get<MailboxRow>('SELECT pin_hash, config_pin_hash, pin_failures, locked_until FROM voicemail_mailboxes WHERE mailbox = ?', [mailbox]);
  }

  /**
   * Checks `pin` for a mailbox whose config PIN is `configPin`; counts a failure or
   * clears the count. 'locked' when the mailbox is locked, including by this failure.
   */
  async verify(mailbox: string, configPin: string, pin: string, now = Date.now()): Promise<PinVerdict> {
    const row = await this.#row(mailbox);
    if (row !== undefined && row.locked_until > now) return 'locked';
    let effective: 'config' | string = 'config';
    if (row?.pin_hash && row.config_pin_hash && (await pinMatches(configPin, row.config_pin_hash))) effective = row.pin_hash;
    const ok = effective === 'config' ? pin.length === configPin.length && timingSafeEqual(Buffer.from(pin), Buffer.from(configPin)) : await pinMatches(pin, effective);
    if (ok) {
      if (row !== undefined && row.pin_failures > 0) await this.#upsert(mailbox, { pin_failures: 0, locked_until: 0 }, now);
      return 'ok';
    }
    const failures = (row?.pin_failures ?? 0) + 1;
    if (failures >= this.#lockout.failures) {
      await this.#upsert(mailbox, { pin_failures: 0, locked_until: now + this.#lockout.durationMs }, now);
      return 'locked';
    }
    await this.#upsert(mailbox, { pin_failures: failures, locked_until: 0 }, now);
    return 'wrong';
  }

  async isLocked(mailbox: string, now = Date.now()): Promise<boolean> {
    const row = await this.#row(mailbox);
    return row !== undefined && row.locked_until > now;
  }

  /** The owner's new PIN (already validated against PIN_RE by the caller). */
  async setPin(mailbox: string, configPin: string, pin: string, now = Date.now()): Promise<void> {
    await this.#upsert(mailbox, { pin_hash: await hashPin(pin), config_pin_hash: await hashPin(configPin), pin_failures: 0, locked_until: 0 }, now);
  }

  async #upsert(mailbox: string, values: Partial<MailboxRow>, now: number): Promise<void> {
    const cols = Object.keys(values) as Array<keyof MailboxRow>;
    const params = cols.map((c) => values[c] ?? null);
    await this.#committer.submit([
      {
        sql: `INSERT INTO voicemail_mailboxes (mailbox, ${cols.join(', ')}, updated_at) VALUES (?, ${cols.map(() => '?').join(', ')}, ?)
              ON CONFLICT(mailbox) DO UPDATE SET ${cols.map((c) => `${c} = excluded.${c}`).join(', ')}, updated_at = excluded.updated_at`,
        params: [mailbox, ...params, now],
      },
    ]);
  }
}
