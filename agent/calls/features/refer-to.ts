// What a transfer asks for, read from its headers: the Refer-To of a REFER
// (RFC 3515 §2.1), with an embedded Replaces for an attended transfer (RFC 3891
// §5), and the Replaces header of an INVITE (RFC 3891 §6.1). Pure parsing: a bad
// header gives a TransferRequestError carrying the status to answer with.

import { parseNameAddr } from '../../sip/parse.ts';
import { parseUri, unescapeUriPart } from '../../sip/uri.ts';

export class TransferRequestError extends Error {
  readonly code = 'ETRANSFERREQUEST';
  /** The response to the request that carried the bad header (400, 416...). */
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.name = 'TransferRequestError';
    this.status = status;
  }
}

/** A dialog named by a Replaces value: its Call-ID and the tags as the sender sees them. */
export interface ReplacesTarget {
  callId: string;
  /** The tag of the side that received the sender's requests (RFC 3891 §3: to-tag). */
  toTag: string;
  fromTag: string;
  /** early-only: replace only a dialog that is not yet confirmed. */
  earlyOnly: boolean;
}

export interface ReferTarget {
  /** The Refer-To URI without its headers. */
  uri: string;
  /** The number to route: the user part, unescaped, separators removed. */
  dialed: string;
  /** Present for an attended transfer. */
  replaces?: ReplacesTarget;
}

/** Visual separators people type in numbers. */
const SEPARATORS = /[\s().-]/g;

/** Parses a Replaces value: `callid;to-tag=X;from-tag=Y[;early-only]`. */
export function parseReplaces(value: string): ReplacesTarget {
  const parts = value.split(';').map((p) => p.trim());
  const callId = parts[0] ?? '';
  if (callId === '') throw new TransferRequestError('Replaces has no Call-ID');
  let toTag: string | undefined;
  let fromTag: string | undefined;
  let earlyOnly = false;
  for (const part of parts.slice(1)) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    const val = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (name === 'to-tag') toTag = val;
    else if (name === 'from-tag') fromTag = val;
    else if (name === 'early-only') earlyOnly = true;
  }
  if (toTag === undefined || toTag === '' || fromTag === undefined || fromTag === '') {
    throw new TransferRequestError('Replaces needs both to-tag and from-tag');
  }
  return { callId, toTag, fromTag, earlyOnly };
}

/** The Refer-To of a REFER; exactly one value (RFC 3515 §2.4.1). */
export function parseReferTo(header: unknown): ReferTarget {
  if (typeof header !== 'string' || header.trim() === '') throw new TransferRequestError('REFER without Refer-To');
  const addr = parseNameAddr(header.trim());
  if (addr === undefined) throw new TransferRequestError('Refer-To is not a valid address (or names more than one)');
  const uri = parseUri(addr.uri);
  if (uri === undefined) throw new TransferRequestError('Refer-To URI does not parse');
  if (uri.scheme !== 'sip' && uri.scheme !== 'sips' && uri.scheme !== 'tel') {
    throw new TransferRequestError(`Refer-To scheme ${uri.scheme} is not supported`, 416);
  }
  const user = uri.user;
  const dialed = user === undefined ? '' : unescapeUriPart(user).replace(SEPARATORS, '');
  if (dialed === '') throw new TransferRequestError('Refer-To names no number');
  const target: ReferTarget = { uri: addr.uri.split('?')[0] ?? addr.uri, dialed };
  // URI headers (?Replaces=...) are escaped inside the URI (RFC 3261 §19.1.1).
  const replacesName = Object.keys(uri.headers).find((name) => name.toLowerCase() === 'replaces');
  if (replacesName !== undefined) target.replaces = parseReplaces(unescapeUriPart(uri.headers[replacesName] ?? ''));
  return target;
}
