// Caller ID as AT devices report it.
// - Voice modems (AT+VCID=1 / AT#CID=1, formatted): a block of `KEY = value` lines
//   between the first and second RING — DATE, TIME, NMBR, NAME (MESG for data they
//   cannot format). NMBR/NAME are `P` when the caller withheld them and `O` when
//   the network had none (Bellcore GR-30 reasons, as modems print them).
// - Cellular modules (AT+CLIP=1, 3GPP TS 27.007 §7.6):
//   `+CLIP: <number>,<type>[,<subaddr>,<satype>[,<alpha>[,<CLI validity>]]]`,
//   validity 0 = shown, 1 = withheld by the caller, 2 = not available.

import type { CallerId } from '../types.ts';

/** Splits an AT parameter list on commas outside double quotes; quotes are removed. */
export function splitAtParams(text: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(current.trim());
      current = '';
    } else current += ch;
  }
  out.push(current.trim());
  return out;
}

/** A +CLIP line to a caller ID; undefined when the line is not +CLIP. */
export function parseClip(line: string): CallerId | undefined {
  const m = /^\+CLIP:\s*(.*)$/.exec(line);
  if (!m) return undefined;
  const [number = '', , , , alpha = '', validity = ''] = splitAtParams(m[1]!);
  const v = validity === '' ? (number ? 0 : 2) : Number(validity);
  if (v === 1) return { presentation: 'restricted' };
  if (v !== 0 || number === '') return { presentation: 'unavailable' };
  const id: CallerId = { number, presentation: 'allowed' };
  if (alpha) id.name = alpha;
  return id;
}

/** Collects a formatted caller ID block from a voice modem, line by line. */
export class VoiceCallerIdBlock {
  #number: string | undefined;
  #name: string | undefined;
  #seen = false;

  /** Takes a line; returns false when it is not part of a caller ID block. */
  take(line: string): boolean {
    const m = /^(DATE|TIME|NMBR|NAME|MESG|DDN_NMBR)\s*=\s*(.*)$/.exec(line);
    if (!m) return false;
    this.#seen = true;
    if (m[1] === 'NMBR') this.#number = m[2]!.trim();
    if (m[1] === 'NAME') this.#name = m[2]!.trim();
    return true;
  }

  get seen(): boolean {
    return this.#seen;
  }

  /** The name is the last line modems send; once it (or a number) arrived the block is complete enough. */
  get hasName(): boolean {
    return this.#name !== undefined;
  }

  callerId(): CallerId {
    const number = this.#number;
    if (number === undefined || number === '' || number === 'O') return { presentation: 'unavailable' };
    if (number === 'P') return { presentation: 'restricted' };
    const id: CallerId = { number, presentation: 'allowed' };
    const name = this.#name;
    if (name && name !== 'O' && name !== 'P') id.name = name;
    return id;
  }

  reset(): void {
    this.#number = undefined;
    this.#name = undefined;
    this.#seen = false;
  }
}
