// Grammar checks shared by the message parser (parse.ts) and the URI parser (uri.ts),
// written as table lookups and single forward scans: every check here is linear in
// its input and allocates nothing, so validating a whole REGISTER costs about a
// microsecond (RFC 3261 §25 is the grammar; RFC 4475 §3.1.2 the cases it must catch).

// Character classes of RFC 3261 §25.1, one bit each, for the 7-bit range. Everything
// at or above 0x80 is outside every class here: the places that allow UTF-8
// (quoted strings, reason phrases, header values) do not consult these tables.
const ALPHA = 1;
const DIGIT = 2;
/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
const TOKEN = 4;
/** unreserved = alphanum / mark; mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")" */
const UNRESERVED = 8;
/** user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/" */
const USER_EXTRA = 16;
/** password: unreserved / escaped / "&" / "=" / "+" / "$" / "," */
const PASSWORD_EXTRA = 32;
/** param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$" */
const PARAM_EXTRA = 64;
/** hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$" */
const HNV_EXTRA = 128;
/** word (Call-ID) adds ( ) < > : \ DQUOTE / [ ] ? { } to the token characters */
const WORD = 256;
const HEX = 512;
/** uric of RFC 2396 plus "[" "]" "#": what an absoluteURI of an unknown scheme may hold. */
const URIC = 1024;

const classes = new Uint16Array(128);
function mark(chars: string, bits: number): void {
  for (let i = 0; i < chars.length; i++) classes[chars.charCodeAt(i)]! |= bits;
}
for (let c = 0x41; c <= 0x5a; c++) classes[c]! |= ALPHA;
for (let c = 0x61; c <= 0x7a; c++) classes[c]! |= ALPHA;
for (let c = 0x30; c <= 0x39; c++) classes[c]! |= DIGIT | HEX;
mark('abcdefABCDEF', HEX);
for (let c = 0; c < 128; c++) {
  if (classes[c]! & (ALPHA | DIGIT)) classes[c]! |= TOKEN | UNRESERVED | WORD | URIC;
}
mark("-.!%*_+`'~", TOKEN | WORD);
mark("-_.!~*'()", UNRESERVED | URIC);
mark('&=+$,;?/', USER_EXTRA);
mark('&=+$,', PASSWORD_EXTRA);
mark('[]/:&+$', PARAM_EXTRA);
mark('[]/?:+$', HNV_EXTRA);
mark('()<>:\\"/[]?{}', WORD);
mark(';/?:@&=+$,%[]#', URIC);

function has(code: number, bits: number): boolean {
  return code < 128 && (classes[code]! & bits) !== 0;
}

export function isTokenChar(code: number): boolean {
  return has(code, TOKEN);
}

export function isDigitChar(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** SP or HTAB: the only whitespace left inside a header value once lines are unfolded. */
export function isWsp(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** Index of the first character at or after `i` that is not SP or HTAB. */
export function skipWsp(s: string, i: number): number {
  while (i < s.length && isWsp(s.charCodeAt(i))) i++;
  return i;
}

/** Index just past the run of token characters starting at `i` (equal to `i` if none). */
export function scanToken(s: string, i: number): number {
  while (i < s.length && has(s.charCodeAt(i), TOKEN)) i++;
  return i;
}

export function isToken(s: string): boolean {
  return s.length > 0 && scanToken(s, 0) === s.length;
}

/** `s` without leading and trailing SP/HTAB (String.trim would also eat Unicode spaces). */
export function trimWsp(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isWsp(s.charCodeAt(a))) a++;
  while (b > a && isWsp(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * With s[i] a double quote, the index just past the closing quote of this
 * quoted-string, or -1 if it is never closed (RFC 4475 §3.1.2.6, quotbal).
 * A backslash escapes the next character (quoted-pair), which may be a control
 * character other than CR/LF (RFC 4475 §3.1.1.2 puts BEL, NUL and DEL there).
 */
export function scanQuoted(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x22) return j + 1;
    if (c === 0x5c) {
      j++;
      if (j >= s.length) return -1;
    }
  }
  return -1;
}

/** The text of a quoted-string (quotes included) with its quoted-pairs resolved. */
export function unquote(quoted: string): string {
  const inner = quoted.slice(1, -1);
  if (inner.indexOf('\\') < 0) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    if (inner.charCodeAt(i) === 0x5c && i + 1 < inner.length) i++;
    out += inner[i];
  }
  return out;
}

/** A display name in quotes with `"` and `\` escaped, as name-addr wants it. */
export function quote(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0d || c === 0x0a) {
      out += ' '; // a quoted-string cannot hold CR or LF, not even escaped
      continue;
    }
    // quoted-pair covers the control characters qdtext cannot hold (RFC 3261 §25.1)
    if (c === 0x22 || c === 0x5c || (c < 0x20 && c !== 0x09) || c === 0x7f) out += '\\';
    out += text[i];
  }
  return out + '"';
}

/**
 * Whether s[from, to) is made of characters of `bits` and well-formed %HH escapes.
 * `allowEscapes` false rejects every `%`.
 */
function isEscapedRun(s: string, from: number, to: number, bits: number, allowEscapes: boolean): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      if (!allowEscapes || i + 2 >= to) return false;
      if (!has(s.charCodeAt(i + 1), HEX) || !has(s.charCodeAt(i + 2), HEX)) return false;
      i += 2;
      continue;
    }
    if (!has(c, bits)) return false;
  }
  return true;
}

/** user = 1*( unreserved / escaped / user-unreserved ) */
export function isUser(s: string, from: number, to: number): boolean {
  return to > from && isEscapedRun(s, from, to, UNRESERVED | USER_EXTRA, true);
}

/** password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," ) */
export function isPassword(s: string, from: number, to: number): boolean {
  return isEscapedRun(s, from, to, UNRESERVED | PASSWORD_EXTRA, true);
}

/** pname / pvalue = 1*paramchar; paramchar = param-unreserved / unreserved / escaped */
export function isParamText(s: string, from: number, to: number): boolean {
  return to > from && isEscapedRun(s, from, to, UNRESERVED | PARAM_EXTRA, true);
}

/** hname = 1*( hnv-unreserved / unreserved / escaped ); hvalue may be empty. */
export function isHeaderText(s: string, from: number, to: number, allowEmpty: boolean): boolean {
  return (allowEmpty || to > from) && isEscapedRun(s, from, to, UNRESERVED | HNV_EXTRA, true);
}

/** The characters an absoluteURI of a scheme we do not parse may contain. */
export function isUricText(s: string, from: number, to: number): boolean {
  return to > from && isEscapedRun(s, from, to, URIC, true);
}

/** scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
export function isScheme(s: string, from: number, to: number): boolean {
  if (to <= from || !has(s.charCodeAt(from), ALPHA)) return false;
  for (let i = from + 1; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!has(c, ALPHA | DIGIT) && c !== 0x2b && c !== 0x2d && c !== 0x2e) return false;
  }
  return true;
}

/** callid = word [ "@" word ] (RFC 3261 §25.1). */
export function isCallId(s: string): boolean {
  const at = s.indexOf('@');
  const end = at < 0 ? s.length : at;
  if (end === 0) return false;
  for (let i = 0; i < end; i++) if (!has(s.charCodeAt(i), WORD)) return false;
  if (at < 0) return true;
  if (at === s.length - 1) return false;
  for (let i = at + 1; i < s.length; i++) if (!has(s.charCodeAt(i), WORD)) return false;
  return true;
}

/**
 * host = hostname / IPv4address / IPv6reference (RFC 3261 §25.1), for s[from, to).
 * hostname labels are alphanumerics and inner hyphens and the last one starts with
 * a letter; a name that is all digits and dots must be a dotted quad.
 */
export function isHost(s: string, from: number, to: number): boolean {
  if (to <= from) return false;
  if (s.charCodeAt(from) === 0x5b) {
    return s.charCodeAt(to - 1) === 0x5d && isIPv6(s, from + 1, to - 1);
  }
  let allNumeric = true;
  for (let i = from; i < to && allNumeric; i++) {
    const c = s.charCodeAt(i);
    allNumeric = c === 0x2e || has(c, DIGIT);
  }
  if (allNumeric) return isIPv4(s, from, to);
  // a fully qualified name may end with a dot
  const end = s.charCodeAt(to - 1) === 0x2e ? to - 1 : to;
  let labelStart = from;
  for (let i = from; i <= end; i++) {
    const c = i < end ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (i === labelStart || s.charCodeAt(i - 1) === 0x2d) return false;
      if (i < end) labelStart = i + 1;
      continue;
    }
    if (c === 0x2d ? i === labelStart : !has(c, ALPHA | DIGIT)) return false;
  }
  // toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
  return has(s.charCodeAt(labelStart), ALPHA);
}

/** IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT, each at most 255. */
export function isIPv4(s: string, from: number, to: number): boolean {
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || value > 255) return false;
      parts++;
      value = 0;
      digits = 0;
      continue;
    }
    if (!has(c, DIGIT) || ++digits > 3) return false;
    value = value * 10 + (c - 0x30);
  }
  return parts === 4;
}

/**
 * IPv6address of RFC 3261 §25.1 (hex groups, at most one "::", an optional
 * trailing dotted quad), for s[from, to) without the brackets.
 */
export function isIPv6(s: string, from: number, to: number): boolean {
  if (to - from < 2) return false;
  let groups = 0;
  let sawDouble = false;
  let i = from;
  if (s.charCodeAt(i) === 0x3a) {
    if (s.charCodeAt(i + 1) !== 0x3a) return false;
    sawDouble = true;
    i += 2;
    if (i === to) return true; // "::"
  }
  while (i < to) {
    let j = i;
    while (j < to && has(s.charCodeAt(j), HEX) && j - i < 5) j++;
    if (j < to && s.charCodeAt(j) === 0x2e) {
      // an embedded IPv4 address ends the address and counts as two groups
      if (!isIPv4(s, i, to)) return false;
      groups += 2;
      i = to;
      break;
    }
    if (j === i || j - i > 4) return false;
    groups++;
    if (j === to) {
      i = j;
      break;
    }
    if (s.charCodeAt(j) !== 0x3a) return false;
    if (s.charCodeAt(j + 1) === 0x3a) {
      if (sawDouble) return false;
      sawDouble = true;
      i = j + 2;
      if (i === to) break;
    } else {
      i = j + 1;
      if (i === to) return false; // a trailing single colon
    }
  }
  return sawDouble ? groups <= 7 : groups === 8;
}

/**
 * 1*DIGIT in s[from, to) with a value at most `max`, or -1. Leading zeros are
 * allowed ("Max-Forwards: 0068" is valid, RFC 4475 §3.1.1.1); the length cap
 * keeps a hundred-digit value (scalar02) from being read as a float.
 */
export function parseDigits(s: string, from: number, to: number, max: number): number {
  if (to <= from || to > s.length) return -1;
  let value = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!(c >= 0x30 && c <= 0x39)) return -1;
    value = value * 10 + (c - 0x30);
    if (value > max) return -1;
  }
  return value;
}

const WKDAY = new Set(['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun']);
const MONTH = new Set(['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']);

/**
 * SIP-date = rfc1123-date: wkday "," SP 2DIGIT SP month SP 4DIGIT SP
 * 2DIGIT ":" 2DIGIT ":" 2DIGIT SP "GMT" — exactly 29 characters, and the zone
 * must be GMT (RFC 3261 §20.17; RFC 4475 §3.1.2.12, baddate, has "EST").
 */
export function isSipDate(s: string): boolean {
  if (s.length !== 29) return false;
  if (!WKDAY.has(s.slice(0, 3)) || s[3] !== ',' || s[4] !== ' ' || s[7] !== ' ') return false;
  if (!MONTH.has(s.slice(8, 11)) || s[11] !== ' ' || s[16] !== ' ' || s[19] !== ':' || s[22] !== ':') return false;
  if (s.slice(25) !== ' GMT') return false;
  for (const i of [5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24]) {
    if (!isDigitChar(s.charCodeAt(i))) return false;
  }
  return true;
}

/**
 * media-type = m-type SLASH m-subtype *(SEMI m-parameter), as far as it matters
 * here: the type and subtype are tokens. Returns "type/subtype" in lower case
 * or undefined when the value is not a media type.
 */
export function mediaType(value: string): string | undefined {
  const i = skipWsp(value, 0);
  const typeEnd = scanToken(value, i);
  if (typeEnd === i) return undefined;
  let j = skipWsp(value, typeEnd);
  if (value.charCodeAt(j) !== 0x2f) return undefined;
  j = skipWsp(value, j + 1);
  const subEnd = scanToken(value, j);
  if (subEnd === j) return undefined;
  const rest = skipWsp(value, subEnd);
  if (rest < value.length && value.charCodeAt(rest) !== 0x3b) return undefined;
  return (value.slice(i, typeEnd) + '/' + value.slice(j, subEnd)).toLowerCase();
}
