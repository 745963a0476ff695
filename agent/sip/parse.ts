// Parses one SIP message (a UDP datagram, or one message a stream framer cut out)
// into the shapes of types.ts, and refuses what RFC 3261's grammar refuses, with the
// answer RFC 4475 §3.1.2 names. Why this is our own scanner and not the `sip`
// package's parser: docs/decisions/0001-sip-message-layer.md.
//
// Shape of a parsed message:
// - headers are keyed by lower-case long names (compact forms mapped) in a
//   null-prototype object; Via, To, From, Contact, Route, Record-Route, Path,
//   CSeq, Call-ID, Content-Length and the four authentication headers are
//   structured (types.ts); every other header is its value as a string, repeated
//   lines joined with ", ", folded lines unfolded to one space.
// - header values are decoded as UTF-8; the body is a latin1 string holding its
//   bytes one per character, so content.length is the byte count.
// - NameAddr.name is the display name as text: quotes removed and quoted-pairs
//   resolved. NameAddr.uri is the URI as written. Parameter values (Via, To, From,
//   Contact...) and auth-param values are as written: a quoted value keeps its
//   quotes. Parameter names are in lower case. All params records have a null
//   prototype, so `;__proto__=x` is an ordinary parameter.
// - version is "SIP/2.0".
// - A single-valued header that appeared more than once keeps its first value;
//   headerCount() tells how many times it appeared (checkRequest answers 400).

import type { AuthValue, CSeq, NameAddr, Params, SipHeaders, SipMessage, SipRequest, SipResponse, Via } from './types.ts';
import { isValidUri } from './uri.ts';
import {
  isCallId,
  isHost,
  isIPv6,
  isScheme,
  isSipDate,
  isToken,
  isWsp,
  mediaType,
  parseDigits,
  scanQuoted,
  scanToken,
  skipWsp,
  trimWsp,
  unquote,
} from './validate.ts';

export type ParseOutcome =
  | { ok: true; message: SipMessage }
  | {
      ok: false;
      /** One-line reason, safe to log: names and numbers only, never the message's text. */
      detail: string;
      /** For an invalid request: the response it deserves (400, or 505 for an unknown version). */
      reply?: { status: number; reason: string };
      /**
       * For an invalid request whose Via and CSeq survived: enough to address that
       * response with makeResponse(). For echoing only — a To, From, Call-ID or CSeq
       * that broke its own grammar is carried as its raw text (a string) so the
       * response copies what the client sent (RFC 3261 §8.2.6.2); To, From and
       * Call-ID are absent when the request had none (RFC 4475 §3.3.1, insuf).
       */
      partial?: SipRequest;
    };

const SP = 0x20;
const HT = 0x09;
const DQUOTE = 0x22;
const COMMA = 0x2c;
const SLASH = 0x2f;
const COLON = 0x3a;
const SEMI = 0x3b;
const LT = 0x3c;
const EQ = 0x3d;
const QUESTION = 0x3f;
const LBRACKET = 0x5b;

const CRLFCRLF = Buffer.from('\r\n\r\n');
const BARE_CR_OR_LF = /\r(?!\n)|(?<!\r)\n/;
const MAX_CSEQ = 2 ** 31 - 1; // RFC 3261 §8.1.1.5: less than 2**31
const MAX_DELTA_SECONDS = 2 ** 32 - 1; // RFC 3261 §20.19
const MAX_CONTENT_LENGTH = 2 ** 31 - 1;

/** Compact header names (RFC 3261 §7.3.3 and the extensions that define one). */
const COMPACT: ReadonlyArray<readonly [string, string]> = [
  ['a', 'accept-contact'],
  ['b', 'referred-by'],
  ['c', 'content-type'],
  ['d', 'request-disposition'],
  ['e', 'content-encoding'],
  ['f', 'from'],
  ['i', 'call-id'],
  ['j', 'reject-contact'],
  ['k', 'supported'],
  ['l', 'content-length'],
  ['m', 'contact'],
  ['n', 'identity-info'],
  ['o', 'event'],
  ['r', 'refer-to'],
  ['s', 'subject'],
  ['t', 'to'],
  ['u', 'allow-events'],
  ['v', 'via'],
  ['x', 'session-expires'],
  ['y', 'identity'],
];

/**
 * Lower-case header name → its long form, as a string constant. Besides mapping
 * compact forms, it hands back internalized strings for the common names so the
 * headers object is indexed with them rather than with freshly sliced strings.
 */
const KNOWN_NAMES = new Map<string, string>(COMPACT);
for (const name of [
  'via', 'to', 'from', 'call-id', 'cseq', 'contact', 'max-forwards', 'content-length', 'content-type',
  'content-encoding', 'content-disposition', 'content-language', 'expires', 'min-expires', 'route',
  'record-route', 'path', 'authorization', 'proxy-authorization', 'www-authenticate', 'proxy-authenticate',
  'authentication-info', 'user-agent', 'server', 'allow', 'allow-events', 'supported', 'require',
  'proxy-require', 'unsupported', 'accept', 'accept-encoding', 'accept-language', 'date', 'subject',
  'event', 'subscription-state', 'refer-to', 'referred-by', 'replaces', 'session-expires', 'min-se',
  'p-asserted-identity', 'p-preferred-identity', 'privacy', 'remote-party-id', 'diversion', 'reason',
  'rseq', 'rack', 'timestamp', 'organization', 'priority', 'retry-after', 'warning', 'in-reply-to',
  'reply-to', 'call-info', 'alert-info', 'error-info', 'mime-version',
]) {
  KNOWN_NAMES.set(name, name);
}

// ---------------------------------------------------------------------------
// Scanners. Each reads a header value from an index and returns what it read or
// undefined; `pos` is where it stopped and `why` says what was wrong. Module
// state is safe: parsing is synchronous and never re-entered.

let pos = 0;
let why = '';

function fail(reason: string): undefined {
  why = reason;
  return undefined;
}

/**
 * *( SEMI generic-param ) from s[i] into `params`; returns the index after them
 * and any whitespace, or -1 with `why` set.
 * generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string
 */
function paramsAt(s: string, i: number, params: Params, where: string): number {
  for (;;) {
    let j = skipWsp(s, i);
    if (s.charCodeAt(j) !== SEMI) return j;
    j = skipWsp(s, j + 1);
    const nameEnd = scanToken(s, j);
    if (nameEnd === j) {
      why = `empty parameter in ${where}`;
      return -1;
    }
    const name = s.slice(j, nameEnd).toLowerCase();
    let k = skipWsp(s, nameEnd);
    let value: string | null = null;
    if (s.charCodeAt(k) === EQ) {
      k = skipWsp(s, k + 1);
      const c = s.charCodeAt(k);
      let end: number;
      if (c === DQUOTE) {
        end = scanQuoted(s, k);
        if (end < 0) {
          why = `unterminated quoted string in ${where}`;
          return -1;
        }
      } else if (c === LBRACKET) {
        end = s.indexOf(']', k) + 1;
        if (end === 0 || !isHost(s, k, end)) {
          why = `bad IPv6 reference in a parameter of ${where}`;
          return -1;
        }
      } else {
        end = scanToken(s, k);
        if (s.charCodeAt(end) === COLON) {
          // via-received may be a bare IPv6address (RFC 3261 §25.1, RFC 5118 §4.5)
          let e = k;
          while (e < s.length && isIPv6Char(s.charCodeAt(e))) e++;
          if (isIPv6(s, k, e)) end = e;
        }
        if (end === k) {
          why = `parameter without a value after "=" in ${where}`;
          return -1;
        }
      }
      value = s.slice(k, end);
      k = end;
    }
    params[name] = value;
    i = k;
  }
}

/**
 * ( name-addr / addr-spec ) *( SEMI param ) from s[i].
 * name-addr = [ display-name ] LAQUOT addr-spec RAQUOT; display-name = *(token LWS) / quoted-string.
 * In addr-spec form a URI with a comma, "?" or ";" is not allowed (RFC 3261 §20.10),
 * and a ";" starts header parameters. `inList`: a comma ends the value.
 * `angleOnly`: Route, Record-Route and Path take name-addr only.
 */
function nameAddrAt(s: string, i: number, where: string, inList: boolean, angleOnly: boolean): NameAddr | undefined {
  const len = s.length;
  i = skipWsp(s, i);
  let name: string | undefined;
  const first = s.charCodeAt(i);
  if (first === DQUOTE) {
    const end = scanQuoted(s, i);
    if (end < 0) return fail(`unterminated quoted display name in ${where}`);
    name = unquote(s.slice(i, end));
    i = skipWsp(s, end);
    if (s.charCodeAt(i) !== LT) return fail(`quoted display name not followed by <URI> in ${where}`);
  } else if (first !== LT) {
    const tokenEnd = scanToken(s, i);
    if (tokenEnd === i || s.charCodeAt(tokenEnd) !== COLON) {
      // display-name tokens, which must be followed by "<"
      let j = i;
      let last = i;
      for (;;) {
        const e = scanToken(s, j);
        if (e === j) break;
        last = e;
        j = skipWsp(s, e);
      }
      if (j === i || s.charCodeAt(j) !== LT) {
        return fail(`display name with characters other than tokens is not quoted, or no URI, in ${where}`);
      }
      name = s.slice(i, last);
      i = j;
    }
  }

  let uri: string;
  if (s.charCodeAt(i) === LT) {
    const gt = s.indexOf('>', i + 1);
    if (gt < 0) return fail(`unclosed < in ${where}`);
    uri = s.slice(i + 1, gt);
    if (!isValidUri(uri)) return fail(`invalid URI (or whitespace inside <>) in ${where}`);
    i = gt + 1;
  } else {
    if (angleOnly) return fail(`URI not enclosed in <> in ${where}`);
    let e = i;
    while (e < len) {
      const c = s.charCodeAt(e);
      if (c === SP || c === HT || c === SEMI || (inList && c === COMMA)) break;
      if (c === QUESTION || c === COMMA || c === LT || c === 0x3e) {
        return fail(`URI with headers or a comma not enclosed in <> in ${where}`);
      }
      e++;
    }
    uri = s.slice(i, e);
    if (!isValidUri(uri)) return fail(`invalid URI in ${where}`);
    i = e;
  }

  const params: Params = Object.create(null);
  const end = paramsAt(s, i, params, where);
  if (end < 0) return undefined;
  pos = end;
  const na: NameAddr = { uri, params };
  if (name !== undefined) na.name = name;
  return na;
}

/** A single name-addr header (To, From): nothing may follow it. */
function singleNameAddr(s: string, where: string): NameAddr | undefined {
  const na = nameAddrAt(s, 0, where, false, false);
  if (na === undefined) return undefined;
  if (pos !== s.length) return fail(`unexpected text after the address in ${where}`);
  return na;
}

/** A comma-separated list of name-addrs (Contact, Route, Record-Route, Path), appended to `out`. */
function nameAddrList(s: string, where: string, angleOnly: boolean, out: NameAddr[]): boolean {
  let i = 0;
  for (;;) {
    const na = nameAddrAt(s, i, where, true, angleOnly);
    if (na === undefined) return false;
    out.push(na);
    i = pos;
    if (i === s.length) return true;
    if (s.charCodeAt(i) !== COMMA) {
      why = `unexpected text after an address in ${where}`;
      return false;
    }
    i++;
  }
}

/**
 * via-parm *( COMMA via-parm ), appended to `out`. A via-parm whose sent-by was
 * read is appended even when its parameters then fail, so that a 400 can still
 * be addressed (RFC 4475 §3.1.2.1, badinv01); the return value says whether the
 * whole value was valid.
 * via-parm = sent-protocol LWS sent-by *( SEMI via-params ), with SWS around "/".
 */
function viaList(s: string, out: Via[]): boolean {
  const len = s.length;
  let i = 0;
  for (;;) {
    i = skipWsp(s, i);
    const nameEnd = scanToken(s, i);
    if (nameEnd - i !== 3 || s.slice(i, nameEnd).toUpperCase() !== 'SIP') {
      why = 'Via sent-protocol is not SIP';
      return false;
    }
    i = skipWsp(s, nameEnd);
    if (s.charCodeAt(i) !== SLASH) {
      why = 'malformed Via sent-protocol';
      return false;
    }
    i = skipWsp(s, i + 1);
    const versionEnd = scanToken(s, i);
    const version = s.slice(i, versionEnd);
    i = skipWsp(s, versionEnd);
    if (version.length === 0 || s.charCodeAt(i) !== SLASH) {
      why = 'malformed Via sent-protocol';
      return false;
    }
    i = skipWsp(s, i + 1);
    const transportEnd = scanToken(s, i);
    if (transportEnd === i) {
      why = 'Via without a transport';
      return false;
    }
    const protocol = s.slice(i, transportEnd).toUpperCase();
    const hostStart = skipWsp(s, transportEnd);
    if (hostStart === transportEnd) {
      why = 'Via without a space before its sent-by';
      return false;
    }
    let hostEnd: number;
    if (s.charCodeAt(hostStart) === LBRACKET) {
      hostEnd = s.indexOf(']', hostStart) + 1;
      if (hostEnd === 0) hostEnd = hostStart;
    } else {
      hostEnd = hostStart;
      while (hostEnd < len) {
        const c = s.charCodeAt(hostEnd);
        if (!isHostnameChar(c)) break;
        hostEnd++;
      }
    }
    if (!isHost(s, hostStart, hostEnd)) {
      why = 'invalid host in Via sent-by';
      return false;
    }
    const via: Via = { version, protocol, host: s.slice(hostStart, hostEnd).toLowerCase(), params: Object.create(null) };
    i = skipWsp(s, hostEnd);
    if (s.charCodeAt(i) === COLON) {
      const portStart = skipWsp(s, i + 1);
      let portEnd = portStart;
      while (portEnd < len && s.charCodeAt(portEnd) >= 0x30 && s.charCodeAt(portEnd) <= 0x39) portEnd++;
      const port = parseDigits(s, portStart, portEnd, 65535);
      if (port < 0) {
        why = 'invalid port in Via sent-by';
        return false;
      }
      via.port = port;
      i = portEnd;
    }
    out.push(via);
    i = paramsAt(s, i, via.params, 'Via');
    if (i < 0) return false;
    if (i === len) return true;
    if (s.charCodeAt(i) !== COMMA) {
      why = 'unexpected text in Via';
      return false;
    }
    i++;
  }
}

function isIPv6Char(c: number): boolean {
  const lower = c | 0x20;
  return (c >= 0x30 && c <= 0x3a) || (lower >= 0x61 && lower <= 0x66) || c === 0x2e;
}

/** alphanum, "-" or ".": what a hostname or IPv4 address is made of. */
function isHostnameChar(c: number): boolean {
  const lower = c | 0x20;
  return (c >= 0x30 && c <= 0x39) || (lower >= 0x61 && lower <= 0x7a) || c === 0x2d || c === 0x2e;
}

/** CSeq = 1*DIGIT LWS Method, the number below 2**31 (RFC 3261 §8.1.1.5). */
function cseqOf(s: string): CSeq | undefined {
  const start = skipWsp(s, 0);
  let digitsEnd = start;
  while (digitsEnd < s.length && s.charCodeAt(digitsEnd) >= 0x30 && s.charCodeAt(digitsEnd) <= 0x39) digitsEnd++;
  const seq = parseDigits(s, start, digitsEnd, MAX_CSEQ);
  if (seq < 0) return fail(digitsEnd > start ? 'CSeq number is 2**31 or more' : 'CSeq without a number');
  const methodStart = skipWsp(s, digitsEnd);
  if (methodStart === digitsEnd) return fail('CSeq without a space before its method');
  const methodEnd = scanToken(s, methodStart);
  if (methodEnd === methodStart || skipWsp(s, methodEnd) !== s.length) return fail('malformed CSeq method');
  return { seq, method: s.slice(methodStart, methodEnd) };
}

/**
 * credentials / challenge = auth-scheme LWS auth-param *(COMMA auth-param), values
 * kept raw (a quoted-string keeps its quotes; digest.ts unquotes). An unquoted
 * value is read up to whitespace or a comma rather than as a strict token: some
 * phones put "/" or ":" unquoted in opaque values, and refusing their REGISTER
 * over it would help nobody.
 */
function authOf(s: string, where: string): AuthValue | undefined {
  const len = s.length;
  const start = skipWsp(s, 0);
  const schemeEnd = scanToken(s, start);
  if (schemeEnd === start) return fail(`no auth scheme in ${where}`);
  let i = skipWsp(s, schemeEnd);
  if (i === schemeEnd || i === len) return fail(`no auth parameters in ${where}`);
  const params: Record<string, string> = Object.create(null);
  for (;;) {
    const nameEnd = scanToken(s, i);
    if (nameEnd === i) return fail(`malformed auth parameter in ${where}`);
    let k = skipWsp(s, nameEnd);
    if (s.charCodeAt(k) !== EQ) return fail(`auth parameter without "=" in ${where}`);
    k = skipWsp(s, k + 1);
    let end: number;
    if (s.charCodeAt(k) === DQUOTE) {
      end = scanQuoted(s, k);
      if (end < 0) return fail(`unterminated quoted string in ${where}`);
    } else {
      end = k;
      while (end < len) {
        const c = s.charCodeAt(end);
        if (c === COMMA || c === DQUOTE || isWsp(c)) break;
        end++;
      }
      if (end === k) return fail(`empty auth parameter value in ${where}`);
    }
    params[s.slice(i, nameEnd).toLowerCase()] = s.slice(k, end);
    k = skipWsp(s, end);
    if (k === len) break;
    if (s.charCodeAt(k) !== COMMA) return fail(`unexpected text between auth parameters in ${where}`);
    i = skipWsp(s, k + 1);
  }
  return { scheme: s.slice(start, schemeEnd), params };
}

// ---------------------------------------------------------------------------
// Header multiplicity: which headers appeared more than once, kept beside the
// headers object rather than in it so serializers and spreads never see it.

const repeatedByHeaders = new WeakMap<object, Map<string, number>>();

/**
 * How many header lines named `name` (lower-case long form) the parsed message
 * had. Lists such as Via count lines, not values. 0 when absent; 1 for a header
 * set by code rather than parsed.
 */
export function headerCount(msg: SipMessage, name: string): number {
  const repeated = repeatedByHeaders.get(msg.headers)?.get(name);
  if (repeated !== undefined) return repeated;
  return msg.headers[name] === undefined ? 0 : 1;
}

/** A To/From/Contact-style value parsed on its own (for Refer-To, P-Asserted-Identity...). */
export function parseNameAddr(text: string): NameAddr | undefined {
  return singleNameAddr(text, 'address');
}

// ---------------------------------------------------------------------------

const RESPONSE_IDENTITY: ReadonlyArray<readonly [string, string]> = [
  ['to', 'To'],
  ['from', 'From'],
  ['call-id', 'Call-ID'],
  ['cseq', 'CSeq'],
];

const BAD_REQUEST = { status: 400, reason: 'Bad Request' } as const;
const BAD_VERSION = { status: 505, reason: 'Version Not Supported' } as const;

interface StartLine {
  isResponse: boolean;
  method: string;
  uri: string;
  status: number;
  reason: string;
  /** undefined when valid; otherwise the detail */
  error: string | undefined;
  versionError: boolean;
}

/**
 * Request-Line = Method SP Request-URI SP SIP-Version: exactly one SP each, nothing
 * after the version (RFC 4475 §3.1.2.7-3.1.2.10), no escaped headers in a SIP
 * Request-URI (§3.1.2.11). Status-Line = SIP-Version SP 3DIGIT SP Reason-Phrase.
 */
function startLineOf(line: string): StartLine {
  const out: StartLine = { isResponse: false, method: '', uri: '', status: 0, reason: '', error: undefined, versionError: false };
  if (line.length >= 4 && line.slice(0, 4).toUpperCase() === 'SIP/') {
    out.isResponse = true;
    const sp = line.indexOf(' ');
    if (sp < 0 || line.slice(0, sp).toUpperCase() !== 'SIP/2.0') {
      out.error = 'response version is not SIP/2.0';
      return out;
    }
    const codeEnd = sp + 4;
    const status = parseDigits(line, sp + 1, codeEnd, 699);
    if (status < 100 || (codeEnd < line.length && line.charCodeAt(codeEnd) !== SP)) {
      out.error = 'status code is not three digits from 100 to 699';
      return out;
    }
    out.status = status;
    out.reason = line.slice(codeEnd + 1);
    return out;
  }

  const sp1 = line.indexOf(' ');
  const methodEnd = sp1 < 0 ? line.length : sp1;
  if (methodEnd === 0 || !isToken(line.slice(0, methodEnd))) {
    out.error = 'malformed request line';
    return out;
  }
  out.method = line.slice(0, methodEnd);
  const sp2 = sp1 < 0 ? -1 : line.indexOf(' ', sp1 + 1);
  if (sp2 < 0) {
    out.error = 'request line without a SIP version';
    return out;
  }
  const uri = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  if (uri.length === 0 || version.indexOf(' ') >= 0 || version.indexOf('\t') >= 0) {
    out.error = 'request line elements not separated by single spaces';
    return out;
  }
  out.uri = uri;
  if (version.toUpperCase() !== 'SIP/2.0') {
    if (/^SIP\/[0-9]+\.[0-9]+$/i.test(version)) {
      out.error = 'unsupported SIP version';
      out.versionError = true;
    } else {
      out.error = 'malformed SIP version in the request line';
    }
    return out;
  }
  const colon = uri.indexOf(':');
  if (colon <= 0 || !isScheme(uri, 0, colon)) {
    out.error = 'Request-URI is not an absolute URI';
    return out;
  }
  const scheme = uri.slice(0, colon).toLowerCase();
  if (!isValidUri(uri)) {
    out.error = 'malformed Request-URI';
  } else if ((scheme === 'sip' || scheme === 'sips') && uri.indexOf('?', uri.indexOf('@') + 1) >= 0) {
    // after the userinfo, "?" can only start URI headers (a user part may hold "?")
    out.error = 'escaped headers in a SIP Request-URI';
  }
  return out;
}

/** Never throws, whatever the bytes. */
export function parseMessage(raw: Buffer): ParseOutcome {
  try {
    return parseUnchecked(raw);
  } catch (err) {
    // A bug of ours, not of the sender: report it without echoing the bytes.
    return { ok: false, detail: `parser fault (${err instanceof Error ? err.name : 'unknown'})` };
  }
}

function parseUnchecked(raw: Buffer): ParseOutcome {
  const len = raw.length;
  // RFC 3261 §7.5: CRLFs before the start line are ignored (keep-alives).
  let start = 0;
  while (start + 1 < len && raw[start] === 0x0d && raw[start + 1] === 0x0a) start += 2;
  if (start >= len) return { ok: false, detail: 'empty message' };

  const headEnd = raw.indexOf(CRLFCRLF, start);
  let bodyStart: number;
  let head: string;
  let blankLineMissing = false;
  if (headEnd < 0) {
    blankLineMissing = true;
    bodyStart = len;
    const end = len >= 2 && raw[len - 2] === 0x0d && raw[len - 1] === 0x0a ? len - 2 : len;
    head = raw.toString('utf8', start, end);
  } else {
    bodyStart = headEnd + 4;
    head = raw.toString('utf8', start, headEnd);
  }

  const lines = head.split('\r\n');
  const startLine = startLineOf(lines[0]!);
  let error: string | undefined;
  if (startLine.error !== undefined) error = startLine.error;
  // A CR or LF outside a CRLF pair could make another parser see other lines than we do.
  if (BARE_CR_OR_LF.test(head)) error ??= 'bare CR or LF in the header section';

  const headers: SipHeaders = Object.create(null);
  const h = headers as Record<string, unknown>;
  let repeated: Map<string, number> | undefined;
  // What survives for a partial request when a header broke its grammar.
  const vias: Via[] = [];
  let rawTo: string | undefined;
  let rawFrom: string | undefined;
  let rawCallId: string | undefined;
  let rawCseq: string | undefined;

  for (let n = 1; n < lines.length; n++) {
    let line = lines[n]!;
    // unfold: a line starting with SP/HT continues the previous one (RFC 3261 §7.3.1)
    while (n + 1 < lines.length && isWsp(lines[n + 1]!.charCodeAt(0))) {
      n++;
      line = line + ' ' + trimWsp(lines[n]!);
    }
    if (isWsp(line.charCodeAt(0))) {
      error ??= 'continuation line before the first header';
      continue;
    }
    const colon = line.indexOf(':');
    let nameEnd = colon;
    while (nameEnd > 0 && isWsp(line.charCodeAt(nameEnd - 1))) nameEnd--;
    if (colon < 0 || nameEnd === 0 || !isToken(line.slice(0, nameEnd))) {
      error ??= 'header line without a valid name and colon';
      continue;
    }
    const lower = line.slice(0, nameEnd).toLowerCase();
    // The interned copy makes the keyed accesses below cheap (no string-table probe).
    const name = KNOWN_NAMES.get(lower) ?? lower;
    const value = trimWsp(line.slice(colon + 1));

    const seen = h[name] !== undefined;
    if (seen) {
      repeated ??= new Map();
      repeated.set(name, (repeated.get(name) ?? 1) + 1);
    }

    switch (name) {
      case 'via':
        h['via'] = vias; // at the first Via's place, so a re-serialized message keeps its order
        if (!viaList(value, vias)) error ??= why;
        break;
      case 'to':
      case 'from': {
        if (seen) break; // the first one stands; checkRequest refuses the repeat
        if (name === 'to') rawTo = value;
        else rawFrom = value;
        const na = singleNameAddr(value, name === 'to' ? 'To' : 'From');
        if (na === undefined) error ??= why;
        else h[name] = na;
        break;
      }
      case 'contact': {
        const current = h['contact'];
        if (value === '*') {
          if (seen) error ??= 'Contact: * together with other contacts';
          else h['contact'] = '*';
          break;
        }
        if (current === '*') {
          error ??= 'Contact: * together with other contacts';
          break;
        }
        const list = (current as NameAddr[] | undefined) ?? [];
        if (!nameAddrList(value, 'Contact', false, list)) error ??= why;
        h['contact'] = list;
        break;
      }
      case 'route':
      case 'record-route':
      case 'path': {
        const list = (h[name] as NameAddr[] | undefined) ?? [];
        if (!nameAddrList(value, name === 'route' ? 'Route' : name === 'path' ? 'Path' : 'Record-Route', true, list)) {
          error ??= why;
        }
        h[name] = list;
        break;
      }
      case 'cseq': {
        if (seen) break;
        rawCseq = value;
        const cseq = cseqOf(value);
        if (cseq === undefined) error ??= why;
        else h['cseq'] = cseq;
        break;
      }
      case 'call-id':
        if (seen) break;
        rawCallId = value;
        if (isCallId(value)) h['call-id'] = value;
        else error ??= 'malformed Call-ID';
        break;
      case 'content-length': {
        // Two lengths make the body's end unknowable: a framing error (RFC 4475 §3.3.9).
        if (seen) {
          error ??= 'more than one Content-Length';
          break;
        }
        const length = parseDigits(value, 0, value.length, MAX_CONTENT_LENGTH);
        if (length < 0) error ??= 'Content-Length is not a non-negative number';
        else h['content-length'] = length;
        break;
      }
      case 'authorization':
      case 'proxy-authorization':
      case 'www-authenticate':
      case 'proxy-authenticate': {
        const auth = authOf(value, name);
        if (auth === undefined) {
          error ??= why;
          break;
        }
        const list = (h[name] as AuthValue[] | undefined) ?? [];
        list.push(auth);
        h[name] = list;
        break;
      }
      default: {
        const problem = checkSimpleHeader(name, value);
        if (problem !== undefined) error ??= problem;
        const previous = h[name];
        h[name] = typeof previous === 'string' ? previous + ', ' + value : value;
      }
    }
  }

  if (error === undefined && blankLineMissing) error = 'no empty line after the headers';
  if (error === undefined) {
    if (vias.length === 0) error = 'missing Via header';
    else if (h['from'] === undefined) error = 'missing From header';
    else if (h['to'] === undefined) error = 'missing To header';
    else if (h['call-id'] === undefined) error = 'missing Call-ID header';
    else if (h['cseq'] === undefined) error = 'missing CSeq header';
    else if (!startLine.isResponse && headers.cseq.method !== startLine.method) {
      error = 'CSeq method does not match the request method';
    }
  }

  // RFC 3261 §18.3: a body shorter than Content-Length is an error; octets
  // after it (a second message in one datagram, RFC 4475 §3.1.1.8) are dropped.
  // Without Content-Length a datagram's body is the rest of it.
  let content = '';
  if (error === undefined) {
    const available = len - bodyStart;
    const declared = headers['content-length'];
    if (declared !== undefined && declared > available) {
      error = `Content-Length ${declared} exceeds the ${available} bytes of body`;
    } else {
      content = raw.toString('latin1', bodyStart, declared === undefined ? len : bodyStart + declared);
    }
  }

  if (repeated !== undefined) {
    repeatedByHeaders.set(headers, repeated);
    // No application check follows a response: a second To, From, Call-ID or
    // CSeq makes it ambiguous which transaction and dialog it belongs to.
    if (startLine.isResponse && error === undefined) {
      for (const [name, label] of RESPONSE_IDENTITY) {
        if (repeated.has(name)) error = `more than one ${label}`;
      }
    }
  }

  if (startLine.isResponse) {
    if (error !== undefined) return { ok: false, detail: `invalid response: ${error}` };
    const message: SipResponse = { kind: 'response', status: startLine.status, reason: startLine.reason, version: 'SIP/2.0', headers, content };
    return { ok: true, message };
  }
  if (error === undefined) {
    const message: SipRequest = { kind: 'request', method: startLine.method, uri: startLine.uri, version: 'SIP/2.0', headers, content };
    return { ok: true, message };
  }

  const outcome: ParseOutcome = {
    ok: false,
    detail: `invalid request: ${error}`,
    reply: startLine.versionError ? BAD_VERSION : BAD_REQUEST,
  };
  const cseq: unknown = h['cseq'] ?? rawCseq;
  if (vias.length > 0 && cseq !== undefined) {
    // Raw text stands in for what did not parse; see ParseOutcome.partial.
    const echo: Record<string, unknown> = Object.create(null);
    echo['via'] = vias;
    echo['cseq'] = cseq;
    const to = h['to'] ?? rawTo;
    const from = h['from'] ?? rawFrom;
    const callId = h['call-id'] ?? rawCallId;
    if (to !== undefined) echo['to'] = to;
    if (from !== undefined) echo['from'] = from;
    if (callId !== undefined) echo['call-id'] = callId;
    const method = startLine.method || (typeof cseq === 'object' ? (cseq as CSeq).method : '');
    outcome.partial = {
      kind: 'request',
      method,
      uri: startLine.uri,
      version: 'SIP/2.0',
      headers: echo as unknown as SipHeaders,
      content: '',
    };
  }
  return outcome;
}

/** Grammar checks of the string-valued headers whose value the agent reads. */
function checkSimpleHeader(name: string, value: string): string | undefined {
  switch (name) {
    case 'max-forwards':
      return parseDigits(value, 0, value.length, 255) < 0 ? 'Max-Forwards is not a number from 0 to 255' : undefined;
    case 'expires':
    case 'min-expires':
      return parseDigits(value, 0, value.length, MAX_DELTA_SECONDS) < 0
        ? `${name === 'expires' ? 'Expires' : 'Min-Expires'} is not a number of seconds below 2**32`
        : undefined;
    case 'date':
      return isSipDate(value) ? undefined : 'Date is not an RFC 1123 date in GMT';
    case 'content-type':
      return mediaType(value) === undefined ? 'Content-Type is not a media type' : undefined;
    default:
      return undefined;
  }
}
