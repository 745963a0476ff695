// The checks a UAS makes on a request that parsed (RFC 3261 §8.2.1-8.2.3, §16.3
// step 3) and the application-layer cases of RFC 4475 §3.3: the first failing one
// names the response. ACK is never answered, so it never fails here.
//
// Order (RFC 3261 §8.2 and §16.3): single-valued headers repeated (400, RFC 4475
// §3.3.8) → Request-URI scheme (416, §8.2.2.1) → Max-Forwards 0 (483, §16.3 step
// 3) → Require (420, §8.2.2.3) → body: missing Content-Type (400), unknown
// Content-Encoding or Content-Type (415, §8.2.3) → Accept of an INVITE (406).
//
// Deliberately not here: Proxy-Require (a proxy's business, RFC 3261 §20.29:
// Branchline answers as a UAS, so RFC 4475 §3.3.5 wants only the Require tags in
// Unsupported), the To/AOR and Authorization rules of a REGISTER (the registrar's),
// merged requests (482, the transaction layer's), and the missing magic cookie of
// RFC 4475 §3.2.1 (the transaction layer matches such requests by RFC 2543 rules).

import type { SipRequest } from './types.ts';
import { headerCount } from './parse.ts';
import { mediaType, trimWsp } from './validate.ts';

export interface RequestCheckOptions {
  /** Option tags Branchline implements; a Require outside this set gets 420. */
  supportedExtensions: ReadonlySet<string>;
  /** Body types it reads, lower-case "type/subtype"; others get 415 with Accept. */
  acceptedContentTypes: ReadonlySet<string>;
  /** Request-URI schemes it serves, lower-case; others get 416. Default sip, sips, tel. */
  supportedSchemes?: ReadonlySet<string>;
  /**
   * Whether this element consumes the request itself rather than passing it on
   * (an OPTIONS or REGISTER addressed to the box). Max-Forwards 0 only stops a
   * request that would go further (RFC 3261 §16.3 step 3); a request addressed to
   * us is answered normally (§11: OPTIONS to us with Max-Forwards 0 gets its 200;
   * RFC 4475 §3.3.11: "an endpoint should process the request as if the
   * Max-Forwards field value were still positive"). Default: every request is
   * treated as one that would be forwarded.
   */
  isLocal?: (req: SipRequest) => boolean;
}

export interface CheckFailure {
  status: number;
  reason: string;
  /** Headers the response must carry (Unsupported for 420, Accept for 415...). */
  headers?: Record<string, string>;
}

const DEFAULT_SCHEMES: ReadonlySet<string> = new Set(['sip', 'sips', 'tel']);

/** Headers RFC 3261 §7.3.1 allows once per message (the ones that matter to us). */
const SINGLE_VALUED: ReadonlyArray<readonly [string, string]> = [
  ['to', 'To'],
  ['from', 'From'],
  ['call-id', 'Call-ID'],
  ['cseq', 'CSeq'],
  ['max-forwards', 'Max-Forwards'],
  ['content-type', 'Content-Type'],
  ['content-length', 'Content-Length'],
  ['expires', 'Expires'],
  ['min-expires', 'Min-Expires'],
  ['date', 'Date'],
];

/** The items of a comma-separated header value, whitespace trimmed, empties dropped. */
function listItems(value: unknown): string[] {
  if (typeof value !== 'string') return [];
  const out: string[] = [];
  for (const part of value.split(',')) {
    const item = trimWsp(part);
    if (item !== '') out.push(item);
  }
  return out;
}

/** Whether an Accept value admits a body of `type` ("application/sdp"). */
function accepts(acceptItems: readonly string[], type: string): boolean {
  const slash = type.indexOf('/');
  const major = type.slice(0, slash);
  for (const item of acceptItems) {
    const semi = item.indexOf(';');
    const range = trimWsp(semi < 0 ? item : item.slice(0, semi)).toLowerCase();
    if (semi >= 0 && /;\s*q\s*=\s*0(?:\.0{0,3})?\s*(?:;|$)/i.test(item)) continue; // q=0: not acceptable
    if (range === '*/*' || range === type || range === major + '/*') return true;
  }
  return false;
}

export function checkRequest(req: SipRequest, opts: RequestCheckOptions): CheckFailure | undefined {
  if (req.method === 'ACK') return undefined;
  const h = req.headers;

  for (const [name, label] of SINGLE_VALUED) {
    if (headerCount(req, name) > 1) return { status: 400, reason: `Bad Request (more than one ${label})` };
  }

  const colon = req.uri.indexOf(':');
  const scheme = req.uri.slice(0, colon < 0 ? 0 : colon).toLowerCase();
  if (!(opts.supportedSchemes ?? DEFAULT_SCHEMES).has(scheme)) {
    return { status: 416, reason: 'Unsupported URI Scheme' };
  }

  const maxForwards = h['max-forwards'];
  if (typeof maxForwards === 'string' && Number(maxForwards) === 0 && !(opts.isLocal?.(req) ?? false)) {
    return { status: 483, reason: 'Too Many Hops' };
  }

  if (req.method !== 'CANCEL') {
    const unsupported = listItems(h['require']).filter((tag) => !opts.supportedExtensions.has(tag));
    if (unsupported.length > 0) {
      return { status: 420, reason: 'Bad Extension', headers: { Unsupported: unsupported.join(', ') } };
    }
  }

  if (req.content.length > 0) {
    const contentType = h['content-type'];
    if (typeof contentType !== 'string') return { status: 400, reason: 'Bad Request (body without Content-Type)' };
    const encodings = listItems(h['content-encoding']).filter((e) => e.toLowerCase() !== 'identity');
    if (encodings.length > 0) {
      return { status: 415, reason: 'Unsupported Media Type', headers: { 'Accept-Encoding': 'identity' } };
    }
    const type = mediaType(contentType);
    if (type === undefined || !opts.acceptedContentTypes.has(type)) {
      return { status: 415, reason: 'Unsupported Media Type', headers: { Accept: [...opts.acceptedContentTypes].join(', ') } };
    }
  }

  // An INVITE's 2xx carries the session description, so an Accept without any
  // type we could answer in rules the answer out (RFC 4475 §3.3.15, sdp01).
  const accept = h['accept'];
  if (req.method === 'INVITE' && typeof accept === 'string') {
    const items = listItems(accept);
    let answerable = false;
    for (const type of opts.acceptedContentTypes) {
      if (accepts(items, type)) {
        answerable = true;
        break;
      }
    }
    if (!answerable) return { status: 406, reason: 'Not Acceptable' };
  }
  return undefined;
}
