// URI parsing and formatting (RFC 3261 §19.1 and §25.1; RFC 3966 for tel:).
//
// Values are kept as they appear on the wire: user, password, parameter values and
// header values keep their %HH escapes, so formatUri(parseUri(x)) reproduces x up to
// the case of the scheme, host and parameter names. Compare users with
// unescapeUriPart() on both sides (RFC 3261 §19.1.4 makes escaped and unescaped
// forms equal). An IPv6 host keeps its brackets ("[2001:db8::1]"), as the URI
// grammar writes it. Every params/headers record has a null prototype, so a
// parameter called `__proto__` or `constructor` is only a parameter.

import type { Params, SipUri } from './types.ts';
import {
  isHeaderText,
  isHost,
  isParamText,
  isPassword,
  isScheme,
  isUricText,
  isUser,
  parseDigits,
} from './validate.ts';

/** A URI of a scheme other than sip, sips and tel: its scheme and the text after the colon. */
export interface OpaqueUri extends SipUri {
  opaque: string;
}

export function isOpaqueUri(uri: SipUri): uri is OpaqueUri {
  return typeof (uri as Partial<OpaqueUri>).opaque === 'string';
}

/**
 * Parses a sip:, sips: or tel: URI into its parts, or any other absolute URI into
 * its scheme and opaque rest (host '' then). Undefined when the text breaks the
 * grammar of its scheme. The scheme is returned in lower case, as is a host.
 */
export function parseUri(text: string): SipUri | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0 || !isScheme(text, 0, colon)) return undefined;
  const scheme = text.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') {
    const uri = sipUri(text, colon + 1, scheme, true);
    return typeof uri === 'object' ? uri : undefined;
  }
  if (scheme === 'tel') return parseTelUri(text, colon + 1);
  if (!isUricText(text, colon + 1, text.length)) return undefined;
  const uri: OpaqueUri = { scheme, host: '', params: Object.create(null), headers: Object.create(null), opaque: text.slice(colon + 1) };
  return uri;
}

/**
 * Whether `text` is a valid URI for its scheme: sip, sips and tel by their
 * grammar, others as an absoluteURI. Allocates nothing for sip/sips, which is
 * what the parser checks every To, From, Contact and Request-URI with.
 */
export function isValidUri(text: string): boolean {
  const colon = text.indexOf(':');
  if (colon <= 0 || !isScheme(text, 0, colon)) return false;
  if (colon === 3 || colon === 4) {
    const scheme = text.slice(0, colon).toLowerCase();
    if (scheme === 'sip' || scheme === 'sips') return sipUri(text, colon + 1, scheme, false) !== false;
    if (scheme === 'tel') return parseTelUri(text, colon + 1) !== undefined;
  }
  return isUricText(text, colon + 1, text.length);
}

/**
 * Reads a sip/sips URI after its colon. With `build` false it only validates
 * and returns true instead of the parts; false means invalid.
 */
function sipUri(s: string, start: number, scheme: string, build: boolean): SipUri | boolean {
  const len = s.length;
  let i = start;
  let user: string | undefined;
  let password: string | undefined;
  // Neither the host, the parameters nor the headers may hold an unescaped "@"
  // (RFC 3261 §25.1), so the only "@" of a valid URI ends the userinfo, even when
  // the user part itself holds ";", "?" or "," (RFC 4475 §3.1.1.2 and §3.1.1.9).
  const at = s.indexOf('@', i);
  if (at >= 0) {
    if (s.indexOf('@', at + 1) >= 0) return false;
    const pw = s.indexOf(':', i);
    const userEnd = pw >= 0 && pw < at ? pw : at;
    if (!isUser(s, i, userEnd)) return false;
    if (build) user = s.slice(i, userEnd);
    if (userEnd < at) {
      if (!isPassword(s, userEnd + 1, at)) return false;
      if (build) password = s.slice(userEnd + 1, at);
    }
    i = at + 1;
  }

  let hostEnd: number;
  if (s.charCodeAt(i) === 0x5b) {
    const close = s.indexOf(']', i);
    if (close < 0) return false;
    hostEnd = close + 1;
  } else {
    hostEnd = i;
    while (hostEnd < len) {
      const c = s.charCodeAt(hostEnd);
      if (c === 0x3a || c === 0x3b || c === 0x3f) break; // ":" ";" "?"
      hostEnd++;
    }
  }
  if (!isHost(s, i, hostEnd)) return false;
  const hostStart = i;
  i = hostEnd;

  let port: number | undefined;
  if (s.charCodeAt(i) === 0x3a) {
    let portEnd = i + 1;
    while (portEnd < len && s.charCodeAt(portEnd) !== 0x3b && s.charCodeAt(portEnd) !== 0x3f) portEnd++;
    port = parseDigits(s, i + 1, portEnd, 65535);
    if (port < 0) return false;
    i = portEnd;
  }

  const params: Params | null = build ? Object.create(null) : null;
  i = parseUriParams(s, i, params);
  if (i < 0) return false;

  const headers: Record<string, string> | null = build ? Object.create(null) : null;
  if (s.charCodeAt(i) === 0x3f) {
    i++;
    while (true) {
      let end = s.indexOf('&', i);
      if (end < 0) end = len;
      const eq = s.indexOf('=', i);
      if (eq < 0 || eq > end) return false; // header = hname "=" hvalue
      if (!isHeaderText(s, i, eq, false) || !isHeaderText(s, eq + 1, end, true)) return false;
      if (headers !== null) headers[s.slice(i, eq)] = s.slice(eq + 1, end);
      if (end === len) break;
      i = end + 1;
    }
    i = len;
  }
  if (i !== len) return false;
  if (params === null || headers === null) return true;

  const uri: SipUri = { scheme, host: s.slice(hostStart, hostEnd).toLowerCase(), params, headers };
  if (user !== undefined) uri.user = user;
  if (password !== undefined) uri.password = password;
  if (port !== undefined) uri.port = port;
  return uri;
}

/** uri-parameters = *( ";" pname [ "=" pvalue ] ), from s[i]; the index after them or -1. */
function parseUriParams(s: string, i: number, params: Params | null): number {
  const len = s.length;
  while (i < len && s.charCodeAt(i) === 0x3b) {
    let end = i + 1;
    let eq = -1;
    for (; end < len; end++) {
      const c = s.charCodeAt(end);
      if (c === 0x3b || c === 0x3f) break;
      if (c === 0x3d && eq < 0) eq = end;
    }
    if (eq >= 0) {
      if (!isParamText(s, i + 1, eq) || !isParamText(s, eq + 1, end)) return -1;
      if (params !== null) params[s.slice(i + 1, eq).toLowerCase()] = s.slice(eq + 1, end);
    } else {
      if (!isParamText(s, i + 1, end)) return -1;
      if (params !== null) params[s.slice(i + 1, end).toLowerCase()] = null;
    }
    i = end;
  }
  return i;
}

// telephone-subscriber characters of RFC 3966: digits, hex digits for local
// numbers, "*", "#", "+" and the visual separators "-", ".", "(", ")".
const TEL_NUMBER = /^\+?[0-9A-Fa-f*#().-]+$/;

function parseTelUri(s: string, start: number): SipUri | undefined {
  let end = s.indexOf(';', start);
  if (end < 0) end = s.length;
  const number = s.slice(start, end);
  if (!TEL_NUMBER.test(number)) return undefined;
  const params: Params = Object.create(null);
  if (parseUriParams(s, end, params) !== s.length) return undefined;
  return { scheme: 'tel', user: number, host: '', params, headers: Object.create(null) };
}

// What each part may hold unescaped when formatUri writes it; anything else is
// %-escaped, so a URI built in code from arbitrary text still comes out valid.
const USER_SAFE = /^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]*$/;
const PASSWORD_SAFE = /^[A-Za-z0-9\-_.!~*'()&=+$,%]*$/;
const PARAM_SAFE = /^[A-Za-z0-9\-_.!~*'()[\]/:&+$%]*$/;
const HEADER_SAFE = /^[A-Za-z0-9\-_.!~*'()[\]/?:+$%]*$/;
const STRAY_PERCENT = /%(?![0-9A-Fa-f]{2})/;

/**
 * %-escapes what `safe` does not allow. A "%" already followed by two hex
 * digits is kept as the escape it is; any other "%" is escaped.
 */
function escapePart(text: string, safe: RegExp): string {
  if (safe.test(text) && !STRAY_PERCENT.test(text)) return text;
  return escapeWithIndices(text, safe);
}

function escapeWithIndices(text: string, safe: RegExp): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '%' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      out += text.slice(i, i + 3);
      i += 2;
      continue;
    }
    if (ch !== '%' && safe.test(ch)) {
      out += ch;
      continue;
    }
    const code = text.codePointAt(i)!;
    if (code > 0xffff) i++;
    for (const byte of Buffer.from(String.fromCodePoint(code), 'utf8')) {
      out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
    }
  }
  return out;
}

function formatParams(params: Params): string {
  let out = '';
  for (const name in params) {
    const value = params[name];
    out += ';' + escapePart(name, PARAM_SAFE);
    if (value !== null && value !== undefined) out += '=' + escapePart(value, PARAM_SAFE);
  }
  return out;
}

/** Writes a URI back as text; the inverse of parseUri. */
export function formatUri(uri: SipUri): string {
  if (isOpaqueUri(uri)) return uri.scheme + ':' + uri.opaque;
  if (uri.scheme === 'tel') return 'tel:' + (uri.user ?? '') + formatParams(uri.params);
  let out = (uri.scheme || 'sip') + ':';
  if (uri.user !== undefined && uri.user !== '') {
    out += escapePart(uri.user, USER_SAFE);
    if (uri.password !== undefined) out += ':' + escapePart(uri.password, PASSWORD_SAFE);
    out += '@';
  }
  out += uri.host;
  if (uri.port !== undefined) out += ':' + uri.port;
  out += formatParams(uri.params);
  let separator = '?';
  for (const name in uri.headers) {
    out += separator + escapePart(name, HEADER_SAFE) + '=' + escapePart(uri.headers[name] ?? '', HEADER_SAFE);
    separator = '&';
  }
  return out;
}

/**
 * Resolves %HH escapes (as UTF-8) in a user, password or parameter value, for
 * comparing URIs (RFC 3261 §19.1.4). Never throws: an escape that does not decode
 * as UTF-8 is left as it was.
 */
export function unescapeUriPart(text: string): string {
  if (text.indexOf('%') < 0) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    // not UTF-8 throughout: decode escape by escape, keeping the undecodable ones
    return text.replace(/%[0-9A-Fa-f]{2}/g, (escape) => {
      const byte = parseInt(escape.slice(1), 16);
      return byte < 0x80 ? String.fromCharCode(byte) : escape;
    });
  }
}
