// HTTP Digest authentication for the registrar (RFC 3261 §22 with RFC 7616 / RFC 8760
// algorithms): WWW-Authenticate challenges and Authorization verification.
//
// Only qop=auth is offered and accepted. A response without qop (RFC 2069 style) is
// rejected as malformed: we always challenge with qop, and without nc/cnonce there is
// no way to detect replays. The -sess algorithms are not offered and are rejected as
// unsupported. Rationale: docs/decisions/0002-digest-and-nonces.md.

import { hash, timingSafeEqual } from 'node:crypto';
import type { AuthValue } from './types.ts';
import type { NonceService } from './nonces.ts';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

const HASH_NAME: Record<DigestAlgorithm, string> = { 'MD5': 'md5', 'SHA-256': 'sha256' };

function hashHex(algorithm: DigestAlgorithm, text: string): string {
  return hash(HASH_NAME[algorithm], text, 'hex');
}

/** H(username:realm:password) as lower-case hex: what the user store keeps. */
export function computeHa1(algorithm: DigestAlgorithm, username: string, realm: string, password: string): string {
  return hashHex(algorithm, `${username}:${realm}:${password}`);
}

export interface DigestResponseInput {
  algorithm: DigestAlgorithm;
  ha1: string;
  nonce: string;
  nc: string;
  cnonce: string;
  method: string;
  uri: string;
}

function responseDigest(input: DigestResponseInput): Buffer {
  const ha2 = hashHex(input.algorithm, `${input.method}:${input.uri}`);
  const kd = `${input.ha1.toLowerCase()}:${input.nonce}:${input.nc}:${input.cnonce}:auth:${ha2}`;
  return hash(HASH_NAME[input.algorithm], kd, 'buffer');
}

/** The qop=auth request-digest as lower-case hex (RFC 7616 §3.4.1). */
export function computeResponse(input: DigestResponseInput): string {
  return responseDigest(input).toString('hex');
}

// ---- challenge ------------------------------------------------------------------

export interface ChallengeOptions {
  realm: string;
  algorithms: readonly DigestAlgorithm[];
  stale?: boolean;
  nonces: NonceService;
}

const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/;

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

/**
 * WWW-Authenticate values, one per algorithm in the order given (RFC 8760: strongest
 * first). All values share one fresh nonce, so whichever the phone answers, it uses
 * one tracker slot. No opaque: it would carry nothing the nonce does not.
 */
export function buildChallenge(opts: ChallengeOptions): string[] {
  if (opts.algorithms.length === 0) throw new RangeError('a digest challenge needs at least one algorithm');
  // A realm with CR/LF would let configuration inject header lines.
  if (CONTROL_CHARACTERS.test(opts.realm)) throw new RangeError('digest realm contains control characters');
  const nonce = opts.nonces.issue();
  const stale = opts.stale === true ? ', stale=true' : '';
  return opts.algorithms.map(
    (algorithm) => `Digest realm=${quote(opts.realm)}, nonce="${nonce}", algorithm=${algorithm}, qop="auth"${stale}`,
  );
}

// ---- verification ---------------------------------------------------------------

export type VerifyFailureCode =
  | 'malformed'
  | 'unknown-scheme'
  | 'unsupported-algorithm'
  | 'wrong-realm'
  | 'unknown-user'
  | 'stale-nonce'
  | 'invalid-nonce'
  | 'replay'
  | 'bad-response'
  | 'uri-mismatch';

export type VerifyResult =
  | { ok: true; username: string; algorithm: DigestAlgorithm }
  | { ok: false; code: VerifyFailureCode; username?: string };

export interface VerifyInput {
  /** All Authorization values of the request. */
  authorization: readonly AuthValue[];
  method: string;
  requestUri: string;
  realm: string;
  algorithms: readonly DigestAlgorithm[];
  /** Stored HA1 for the user and algorithm, or undefined when there is no such user. */
  lookupHa1: (username: string, algorithm: DigestAlgorithm) => string | undefined;
  nonces: NonceService;
}

interface DigestCredentials {
  username: string;
  algorithm: DigestAlgorithm;
  nonce: string;
  uri: string;
  nc: string;
  cnonce: string;
  /** The response as bytes (decoded from hex). */
  response: Buffer;
}

type ParsedValue =
  | { ok: true; credentials: DigestCredentials }
  | { ok: false; code: 'malformed' | 'wrong-realm' | 'unsupported-algorithm'; username?: string };

function failure(code: VerifyFailureCode, username?: string): VerifyResult {
  return username === undefined ? { ok: false, code } : { ok: false, code, username };
}

/** Removes the quotes of a quoted-string and its backslash escapes; tokens pass as they are. */
function unquote(raw: string): string | undefined {
  const value = raw.trim();
  if (!value.startsWith('"')) return value;
  if (value.length < 2 || !value.endsWith('"')) return undefined;
  const inner = value.slice(1, -1);
  if (!inner.includes('\\') && !inner.includes('"')) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    const ch = inner[i];
    if (ch === '"') return undefined; // an unescaped quote inside: not one quoted-string
    if (ch === '\\') {
      i++;
      if (i >= inner.length) return undefined; // the closing quote was escaped
    }
    out += inner[i];
  }
  return out;
}

const READ_PARAMS = new Set(['username', 'realm', 'nonce', 'uri', 'response', 'algorithm', 'qop', 'nc', 'cnonce', 'userhash']);

/** The parameters we read, unquoted, by lower-case name (names are case-insensitive). Others are ignored. */
function unquotedParams(params: Record<string, string>): Map<string, string> | undefined {
  const out = new Map<string, string>();
  for (const name of Object.keys(params)) {
    const key = name.toLowerCase();
    const raw = params[name];
    if (!READ_PARAMS.has(key) || raw === undefined) continue;
    const value = unquote(raw);
    if (value === undefined) return undefined;
    out.set(key, value);
  }
  return out;
}

function parseAlgorithm(value: string | undefined): DigestAlgorithm | undefined {
  if (value === undefined) return 'MD5'; // RFC 2617/7616: absent means MD5
  switch (value.toUpperCase()) {
    case 'MD5': return 'MD5';
    case 'SHA-256': return 'SHA-256';
    default: return undefined; // includes the -sess variants, which we never offer
  }
}

const NONCE_COUNT = /^[0-9a-fA-F]{8}$/;
const HEX = /^(?:[0-9a-fA-F]{2})+$/;

function parseDigestValue(value: AuthValue, realm: string, offered: readonly DigestAlgorithm[]): ParsedValue {
  const params = unquotedParams(value.params);
  if (params === undefined) return { ok: false, code: 'malformed' };
  const username = params.get('username');
  const known = username === undefined || username === '' ? {} : { username };

  const theirRealm = params.get('realm');
  if (theirRealm === undefined) return { ok: false, code: 'malformed', ...known };
  if (theirRealm !== realm) return { ok: false, code: 'wrong-realm', ...known };

  const algorithm = parseAlgorithm(params.get('algorithm'));
  if (algorithm === undefined || !offered.includes(algorithm)) {
    return { ok: false, code: 'unsupported-algorithm', ...known };
  }

  const nonce = params.get('nonce');
  const uri = params.get('uri');
  const response = params.get('response');
  const qop = params.get('qop');
  const nc = params.get('nc');
  const cnonce = params.get('cnonce');
  // We never offer userhash (RFC 7616 §3.4.4), so a hashed username cannot be ours.
  const userhash = params.get('userhash')?.toLowerCase() === 'true';
  if (username === undefined || username === '' || userhash || nonce === undefined || uri === undefined ||
      response === undefined || !HEX.test(response)) {
    return { ok: false, code: 'malformed', ...known };
  }
  // qop is required: our challenge always carries qop="auth" (see the file comment).
  if (qop?.toLowerCase() !== 'auth' || nc === undefined || !NONCE_COUNT.test(nc) ||
      cnonce === undefined || cnonce === '') {
    return { ok: false, code: 'malformed', username };
  }
  return {
    ok: true,
    credentials: { username, algorithm, nonce, uri, nc, cnonce, response: Buffer.from(response, 'hex') },
  };
}

/**
 * Chooses among the Digest values the one for our realm with the most preferred
 * offered algorithm. When none qualifies, reports the closest miss: a value for our
 * realm with an algorithm we do not offer, then a malformed value, then wrong realm.
 */
function pickCredentials(
  values: readonly AuthValue[], realm: string, offered: readonly DigestAlgorithm[],
): ParsedValue {
  let best: DigestCredentials | undefined;
  let closestMiss: ParsedValue | undefined;
  const missRank = { 'wrong-realm': 0, 'malformed': 1, 'unsupported-algorithm': 2 } as const;
  for (const value of values) {
    const parsed = parseDigestValue(value, realm, offered);
    if (parsed.ok) {
      if (best === undefined || offered.indexOf(parsed.credentials.algorithm) < offered.indexOf(best.algorithm)) {
        best = parsed.credentials;
      }
    } else if (closestMiss === undefined || (!closestMiss.ok && missRank[parsed.code] > missRank[closestMiss.code])) {
      closestMiss = parsed;
    }
  }
  if (best !== undefined) return { ok: true, credentials: best };
  return closestMiss ?? { ok: false, code: 'malformed' };
}

interface SipUriIdentity {
  scheme: string;
  user: string;
  host: string;
  port: string | undefined;
}

/** scheme, user, host and port of a sip:/sips: URI; undefined for anything else. */
function sipUriIdentity(text: string): SipUriIdentity | undefined {
  let uri = text.trim();
  if (uri.startsWith('<') && uri.endsWith('>')) uri = uri.slice(1, -1);
  const colon = uri.indexOf(':');
  if (colon < 0) return undefined;
  const scheme = uri.slice(0, colon).toLowerCase();
  if (scheme !== 'sip' && scheme !== 'sips') return undefined;
  const rest = uri.slice(colon + 1);
  // '@' cannot appear unescaped in host, parameters or headers, only after userinfo.
  const at = rest.indexOf('@');
  const userinfo = at < 0 ? '' : rest.slice(0, at);
  const afterUser = at < 0 ? rest : rest.slice(at + 1);
  const passwordColon = userinfo.indexOf(':');
  const user = passwordColon < 0 ? userinfo : userinfo.slice(0, passwordColon);
  const hostport = afterUser.split(/[;?]/, 1)[0] ?? '';
  let host: string;
  let port: string | undefined;
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    if (close < 0) return undefined;
    host = hostport.slice(0, close + 1);
    const tail = hostport.slice(close + 1);
    if (tail !== '' && !tail.startsWith(':')) return undefined;
    port = tail === '' ? undefined : tail.slice(1);
  } else {
    const portColon = hostport.indexOf(':');
    host = portColon < 0 ? hostport : hostport.slice(0, portColon);
    port = portColon < 0 ? undefined : hostport.slice(portColon + 1);
  }
  if (host === '') return undefined;
  return { scheme, user, host: host.toLowerCase(), port };
}

/**
 * Does the digest uri name the same target as the Request-URI? Phones differ in
 * what they copy, so for SIP URIs we compare scheme, user (exactly) and host
 * (case-insensitively), compare ports only when both sides give one, and ignore URI
 * parameters and headers (;transport=, ;line=...). Anything that is not a sip:/sips:
 * URI must match exactly. The response hash still covers the uri as the phone sent it.
 */
function sameTarget(digestUri: string, requestUri: string): boolean {
  if (digestUri === requestUri) return true;
  const theirs = sipUriIdentity(digestUri);
  const ours = sipUriIdentity(requestUri);
  if (theirs === undefined || ours === undefined) return false;
  return theirs.scheme === ours.scheme && theirs.user === ours.user && theirs.host === ours.host &&
    (theirs.port === undefined || ours.port === undefined || theirs.port === ours.port);
}

/**
 * Verifies a request's Authorization values. Order matters:
 * the nonce's tag is checked before any user lookup (garbage costs one HMAC); the
 * response is checked before stale is reported, because stale=true tells the phone
 * its password was right (RFC 7616 §3.3); the nonce count is recorded only after the
 * response verified, so a forged request cannot burn a phone's counts.
 */
export function verifyAuthorization(input: VerifyInput): VerifyResult {
  const digestValues = input.authorization.filter((value) => value.scheme.toLowerCase() === 'digest');
  if (digestValues.length === 0) {
    // No credentials at all is malformed input to this function; the registrar
    // challenges before calling it.
    return failure(input.authorization.length === 0 ? 'malformed' : 'unknown-scheme');
  }
  const picked = pickCredentials(digestValues, input.realm, input.algorithms);
  if (!picked.ok) return failure(picked.code, picked.username);
  const { username, algorithm, nonce } = picked.credentials;

  const nonceState = input.nonces.check(nonce);
  if (nonceState === 'invalid') return failure('invalid-nonce', username);
  if (!sameTarget(picked.credentials.uri, input.requestUri)) return failure('uri-mismatch', username);

  const ha1 = input.lookupHa1(username, algorithm);
  if (ha1 === undefined) return failure('unknown-user', username);
  const expected = responseDigest({ ...picked.credentials, ha1, method: input.method });
  const given = picked.credentials.response;
  // A length mismatch (an MD5 answer labelled SHA-256) is just a wrong response.
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return failure('bad-response', username);
  }

  if (nonceState === 'stale') return failure('stale-nonce', username);
  if (!input.nonces.acceptCount(nonce, picked.credentials.nc)) {
    // The nonce may have expired in the instant since check(); report that as stale.
    return failure(input.nonces.check(nonce) === 'valid' ? 'replay' : 'stale-nonce', username);
  }
  return { ok: true, username, algorithm };
}
