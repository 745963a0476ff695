import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { buildChallenge, computeHa1, computeResponse, verifyAuthorization } from '../../agent/sip/digest.ts';
import type { DigestAlgorithm, VerifyInput, VerifyResult } from '../../agent/sip/digest.ts';
import { NonceService } from '../../agent/sip/nonces.ts';
import type { AuthValue } from '../../agent/sip/types.ts';

// ---- an independent, straightforward digest calculation (RFC 2617 §3.2.2) ----------

function h(algorithm: DigestAlgorithm, text: string): string {
  return createHash(algorithm === 'MD5' ? 'md5' : 'sha256').update(text, 'utf8').digest('hex');
}

interface Answer {
  algorithm: DigestAlgorithm;
  username: string;
  realm: string;
  password: string;
  method: string;
  uri: string;
  nonce: string;
  nc: string;
  cnonce: string;
}

function expectedResponse(a: Answer): string {
  const ha1 = h(a.algorithm, `${a.username}:${a.realm}:${a.password}`);
  const ha2 = h(a.algorithm, `${a.method}:${a.uri}`);
  return h(a.algorithm, `${ha1}:${a.nonce}:${a.nc}:${a.cnonce}:auth:${ha2}`);
}

const RFC2617_EXAMPLE: Answer = {
  algorithm: 'MD5', username: 'Mufasa', realm: 'testrealm@host.com', password: 'Circle Of Life',
  method: 'GET', uri: '/dir/index.html', nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', nc: '00000001', cnonce: '0a4f113b',
};

const RFC7616_EXAMPLE: Answer = {
  algorithm: 'SHA-256', username: 'Mufasa', realm: 'http-auth@example.org', password: 'Circle of Life',
  method: 'GET', uri: '/dir/index.html', nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v', nc: '00000001',
  cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
};

test('known answers: RFC 2617 §3.5 (MD5) and RFC 7616 §3.9.1 (SHA-256 and MD5)', () => {
  assert.equal(expectedResponse(RFC2617_EXAMPLE), '6629fae49393a05397450978507c4ef1');
  assert.equal(expectedResponse(RFC7616_EXAMPLE), '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
  assert.equal(expectedResponse({ ...RFC7616_EXAMPLE, algorithm: 'MD5' }), '8ca523f5e9506fed4657c9700eebdbec');

  for (const example of [RFC2617_EXAMPLE, RFC7616_EXAMPLE, { ...RFC7616_EXAMPLE, algorithm: 'MD5' as const }]) {
    const ha1 = computeHa1(example.algorithm, example.username, example.realm, example.password);
    assert.equal(ha1, h(example.algorithm, `${example.username}:${example.realm}:${example.password}`));
    assert.equal(computeResponse({ ...example, ha1 }), expectedResponse(example));
  }
});

// ---- a phone answering our challenge ------------------------------------------------

const REALM = 'branch.example';
const REQUEST_URI = 'sip:branch.example';
const USERS: Record<string, string> = { alice: 'wonderland', 'o"neil': 'quote me' };

function parseChallenge(value: string): Record<string, string> {
  assert.match(value, /^Digest /);
  const params: Record<string, string> = {};
  for (const match of value.slice('Digest '.length).matchAll(/([A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^,\s]+)/g)) {
    const [, name, raw] = match;
    if (name === undefined || raw === undefined) continue;
    params[name] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  }
  return params;
}

function quoted(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

interface PhoneOptions {
  username?: string;
  password?: string;
  nc?: string;
  uri?: string;
  /** Hash with this algorithm whatever the challenge says (a broken phone). */
  hashWith?: DigestAlgorithm;
  /** Raw params to add, replace, or (value undefined) remove. */
  params?: Record<string, string | undefined>;
}

/** What a phone sends back for one WWW-Authenticate value. */
function answer(challenge: string, options: PhoneOptions = {}): AuthValue {
  const offered = parseChallenge(challenge);
  const algorithm = (offered['algorithm'] ?? 'MD5') as DigestAlgorithm;
  const username = options.username ?? 'alice';
  const a: Answer = {
    algorithm: options.hashWith ?? algorithm,
    username,
    realm: offered['realm'] ?? '',
    password: options.password ?? USERS[username] ?? 'unknown',
    method: 'REGISTER',
    uri: options.uri ?? REQUEST_URI,
    nonce: offered['nonce'] ?? '',
    nc: options.nc ?? '00000001',
    cnonce: 'c0ffee42',
  };
  const params: Record<string, string> = {
    username: quoted(username), realm: quoted(a.realm), nonce: quoted(a.nonce), uri: quoted(a.uri),
    response: quoted(expectedResponse(a)), algorithm, qop: 'auth', nc: a.nc, cnonce: quoted(a.cnonce),
  };
  for (const [name, value] of Object.entries(options.params ?? {})) {
    if (value === undefined) delete params[name];
    else params[name] = value;
  }
  return { scheme: 'Digest', params };
}

/** The user store keeps HA1 per algorithm, never passwords. */
const storedHa1 = new Map<string, string>();
for (const [username, password] of Object.entries(USERS)) {
  for (const algorithm of ['MD5', 'SHA-256'] as const) {
    storedHa1.set(`${algorithm} ${username}`, computeHa1(algorithm, username, REALM, password));
  }
}

function setup(options: { algorithms?: readonly DigestAlgorithm[]; trackerSize?: number } = {}) {
  let nowMs = 1_700_000_000_000;
  const nonces = new NonceService({
    lifetimeMs: 30_000, now: () => nowMs, ...(options.trackerSize === undefined ? {} : { trackerSize: options.trackerSize }),
  });
  const algorithms = options.algorithms ?? ['SHA-256', 'MD5'];
  const challenge = (stale?: boolean) => buildChallenge({ realm: REALM, algorithms, nonces, stale: stale === true });
  const verify = (authorization: readonly AuthValue[], overrides: Partial<VerifyInput> = {}): VerifyResult =>
    verifyAuthorization({
      authorization, method: 'REGISTER', requestUri: REQUEST_URI, realm: REALM, algorithms, nonces,
      lookupHa1: (username, algorithm) => storedHa1.get(`${algorithm} ${username}`),
      ...overrides,
    });
  return { nonces, challenge, verify, advance: (ms: number) => { nowMs += ms; } };
}

function challengeFor(values: string[], algorithm: DigestAlgorithm): string {
  const value = values.find((v) => parseChallenge(v)['algorithm'] === algorithm);
  assert.ok(value !== undefined, `no ${algorithm} challenge in ${JSON.stringify(values)}`);
  return value;
}

// ---- challenges ----------------------------------------------------------------

test('the challenge offers SHA-256 before MD5, both with qop="auth" and one fresh nonce', () => {
  const { challenge, nonces } = setup();
  const values = challenge();
  assert.equal(values.length, 2);
  const [first, second] = values.map(parseChallenge);
  assert.equal(first?.['algorithm'], 'SHA-256');
  assert.equal(second?.['algorithm'], 'MD5');
  for (const value of values) {
    assert.match(value, /^Digest realm="branch\.example", nonce="[A-Za-z0-9_-]{40}", /);
    assert.match(value, /, qop="auth"/);
    assert.doesNotMatch(value, /stale/);
  }
  assert.equal(first?.['nonce'], second?.['nonce']);
  assert.equal(nonces.check(first?.['nonce'] ?? ''), 'valid');
  assert.notEqual(parseChallenge(challenge()[0] ?? '')['nonce'], first?.['nonce'], 'every challenge has a new nonce');
});

test('a stale challenge says stale=true on every value', () => {
  const { challenge } = setup();
  for (const value of challenge(true)) assert.match(value, /, stale=true$/);
});

test('the realm is quoted with escapes, and a realm with CR/LF is refused', () => {
  const nonces = new NonceService({ lifetimeMs: 30_000 });
  const [value] = buildChallenge({ realm: 'say "hi" \\ bye', algorithms: ['MD5'], nonces });
  assert.match(value ?? '', /^Digest realm="say \\"hi\\" \\\\ bye", /);
  assert.throws(() => buildChallenge({ realm: 'evil\r\nX-Injected: 1', algorithms: ['MD5'], nonces }), RangeError);
  assert.throws(() => buildChallenge({ realm: REALM, algorithms: [], nonces }), RangeError);
});

// ---- verification --------------------------------------------------------------

test('a phone answering the SHA-256 or the MD5 challenge is let in', () => {
  for (const algorithm of ['SHA-256', 'MD5'] as const) {
    const { challenge, verify } = setup();
    const result = verify([answer(challengeFor(challenge(), algorithm))]);
    assert.deepEqual(result, { ok: true, username: 'alice', algorithm });
  }
});

test('no algorithm parameter means MD5', () => {
  const { challenge, verify } = setup();
  const auth = answer(challengeFor(challenge(), 'MD5'), { params: { algorithm: undefined } });
  assert.deepEqual(verify([auth]), { ok: true, username: 'alice', algorithm: 'MD5' });
});

test('quoted values are unquoted, escapes included, and parameter names are case-insensitive', () => {
  const { challenge, verify } = setup();
  const auth = answer(challengeFor(challenge(), 'SHA-256'), { username: 'o"neil' });
  assert.equal(auth.params['username'], '"o\\"neil"');
  assert.deepEqual(verify([auth]), { ok: true, username: 'o"neil', algorithm: 'SHA-256' });

  const shouting = answer(challengeFor(challenge(), 'SHA-256'));
  const renamed: AuthValue = { scheme: 'DIGEST', params: {} };
  for (const [name, value] of Object.entries(shouting.params)) renamed.params[name.toUpperCase()] = value;
  assert.equal(verify([renamed]).ok, true);
});

test('a wrong password is a bad response', () => {
  const { challenge, verify } = setup();
  const auth = answer(challengeFor(challenge(), 'SHA-256'), { password: 'guess' });
  assert.deepEqual(verify([auth]), { ok: false, code: 'bad-response', username: 'alice' });
});

test('a SHA-256 challenge answered with an MD5 hash is a bad response', () => {
  const { challenge, verify } = setup();
  const auth = answer(challengeFor(challenge(), 'SHA-256'), { hashWith: 'MD5' });
  assert.equal(auth.params['algorithm'], 'SHA-256');
  assert.deepEqual(verify([auth]), { ok: false, code: 'bad-response', username: 'alice' });
});

test('an unknown user is reported as such, with the name', () => {
  const { challenge, verify } = setup();
  const auth = answer(challengeFor(challenge(), 'MD5'), { username: 'mallory', password: 'x' });
  assert.deepEqual(verify([auth]), { ok: false, code: 'unknown-user', username: 'mallory' });
});

test('among several Authorization values the one for our realm and best algorithm is used', () => {
  const { challenge, verify } = setup();
  const values = challenge();
  const elsewhere = answer(challengeFor(values, 'MD5'), { params: { realm: '"carrier.example"' } });
  const md5 = answer(challengeFor(values, 'MD5'));
  const sha = answer(challengeFor(values, 'SHA-256'), { nc: '00000002' });
  assert.deepEqual(verify([elsewhere, md5, sha]), { ok: true, username: 'alice', algorithm: 'SHA-256' });
  // Values of other schemes beside a Digest value are ignored.
  const fresh = answer(challengeFor(challenge(), 'MD5'));
  assert.deepEqual(verify([{ scheme: 'NewAuth', params: { realm: `"${REALM}"` } }, fresh]),
    { ok: true, username: 'alice', algorithm: 'MD5' });
});

test('credentials for another realm only: wrong-realm', () => {
  const { challenge, verify } = setup();
  const auth = answer(challengeFor(challenge(), 'MD5'), { params: { realm: '"carrier.example"' } });
  assert.deepEqual(verify([auth]), { ok: false, code: 'wrong-realm', username: 'alice' });
});

test('algorithms we do not offer, -sess variants included, are unsupported', () => {
  const { challenge, verify } = setup();
  const value = challengeFor(challenge(), 'MD5');
  for (const algorithm of ['MD5-sess', 'SHA-256-sess', 'SHA-512-256', 'AKAv1-MD5']) {
    assert.deepEqual(verify([answer(value, { params: { algorithm } })]),
      { ok: false, code: 'unsupported-algorithm', username: 'alice' }, algorithm);
  }
  const md5Only = setup({ algorithms: ['MD5'] });
  const shaAnswer = answer(challengeFor(challenge(), 'SHA-256'));
  assert.deepEqual(md5Only.verify([shaAnswer]), { ok: false, code: 'unsupported-algorithm', username: 'alice' });
});

test('an unknown scheme is unknown-scheme', () => {
  const { verify } = setup();
  assert.deepEqual(verify([{ scheme: 'NewAuth', params: { realm: `"${REALM}"` } }]), { ok: false, code: 'unknown-scheme' });
  assert.deepEqual(verify([{ scheme: 'Basic', params: {} }]), { ok: false, code: 'unknown-scheme' });
});

test('responses without qop (RFC 2069), or without nc or cnonce, are malformed', () => {
  const { challenge, verify } = setup();
  const value = challengeFor(challenge(), 'MD5');
  // Even an RFC 2069 response that is correct for the password is refused.
  const legacy = answer(value, { params: { qop: undefined, nc: undefined, cnonce: undefined } });
  const nonce = parseChallenge(value)['nonce'] ?? '';
  const ha1 = h('MD5', `alice:${REALM}:wonderland`);
  legacy.params['response'] = `"${h('MD5', `${ha1}:${nonce}:${h('MD5', `REGISTER:${REQUEST_URI}`)}`)}"`;
  assert.deepEqual(verify([legacy]), { ok: false, code: 'malformed', username: 'alice' });

  const broken: Record<string, Record<string, string | undefined>> = {
    'no nc': { nc: undefined },
    'no cnonce': { cnonce: undefined },
    'short nc': { nc: '0001' },
    'qop auth-int': { qop: 'auth-int' },
    'no nonce': { nonce: undefined },
    'no uri': { uri: undefined },
    'no response': { response: undefined },
    'response not hex': { response: '"not-hex"' },
    'unterminated quote': { cnonce: '"abc' },
    'escaped closing quote': { cnonce: '"abc\\"' },
    'userhash': { userhash: 'true' },
  };
  for (const [why, params] of Object.entries(broken)) {
    const result = verify([answer(value, { params })]);
    assert.equal(result.ok ? 'accepted' : result.code, 'malformed', why);
  }
  assert.deepEqual(verify([answer(value, { params: { realm: undefined } })]), { ok: false, code: 'malformed', username: 'alice' });
  assert.deepEqual(verify([]), { ok: false, code: 'malformed' });
});

test('qop sent as a quoted string is accepted too', () => {
  const { challenge, verify } = setup();
  const auth = answer(challengeFor(challenge(), 'MD5'), { params: { qop: '"auth"' } });
  assert.equal(verify([auth]).ok, true);
});

test('an expired nonce with the right password is stale; with a wrong password it is a bad response', () => {
  const { challenge, verify, advance } = setup();
  const values = challenge();
  advance(30_001);
  assert.deepEqual(verify([answer(challengeFor(values, 'SHA-256'))]), { ok: false, code: 'stale-nonce', username: 'alice' });
  assert.deepEqual(verify([answer(challengeFor(values, 'SHA-256'), { password: 'guess' })]),
    { ok: false, code: 'bad-response', username: 'alice' });
});

test('forged, tampered and foreign nonces are invalid', () => {
  const { challenge, verify } = setup();
  const value = challengeFor(challenge(), 'SHA-256');
  const nonce = parseChallenge(value)['nonce'] ?? '';
  const tampered = nonce.slice(0, 10) + (nonce[10] === 'A' ? 'B' : 'A') + nonce.slice(11);
  for (const forged of [tampered, 'dcd98b7102dd2f0e8b11d0f600bfb0c093', '']) {
    const auth = answer(value.replace(nonce, forged));
    assert.deepEqual(verify([auth]), { ok: false, code: 'invalid-nonce', username: 'alice' }, forged);
  }
  // A nonce issued before a restart: the new process has another NonceService.
  const beforeRestart = setup().challenge();
  assert.deepEqual(verify([answer(challengeFor(beforeRestart, 'SHA-256'))]),
    { ok: false, code: 'invalid-nonce', username: 'alice' });
});

test('a replayed nonce count is refused; an increasing one is accepted', () => {
  const { challenge, verify } = setup();
  const value = challengeFor(challenge(), 'SHA-256');
  const first = answer(value, { nc: '00000001' });
  assert.equal(verify([first]).ok, true);
  assert.deepEqual(verify([first]), { ok: false, code: 'replay', username: 'alice' });
  assert.equal(verify([answer(value, { nc: '00000002' })]).ok, true);
  assert.equal(verify([answer(value, { nc: '00000007' })]).ok, true);
  assert.deepEqual(verify([answer(value, { nc: '00000005' })]), { ok: false, code: 'replay', username: 'alice' });
});

test('a failed attempt does not use up a nonce count', () => {
  const { challenge, verify } = setup();
  const value = challengeFor(challenge(), 'SHA-256');
  assert.equal(verify([answer(value, { nc: '00000009', password: 'guess' })]).ok, false);
  assert.equal(verify([answer(value, { nc: '00000001' })]).ok, true);
});

test('a nonce whose tracker slot was reused is stale', () => {
  const { challenge, verify } = setup({ trackerSize: 4 });
  const old = challenge();
  for (let i = 0; i < 4; i++) challenge();
  assert.deepEqual(verify([answer(challengeFor(old, 'SHA-256'))]), { ok: false, code: 'stale-nonce', username: 'alice' });
});

test('the digest uri must name the Request-URI target; parameters, case and a default port may differ', () => {
  const { challenge, verify } = setup();
  const value = challengeFor(challenge(), 'SHA-256');
  let nc = 0;
  const tryUris = (uri: string, requestUri: string): VerifyResult => {
    nc++;
    return verify([answer(value, { uri, nc: nc.toString(16).padStart(8, '0') })], { requestUri });
  };
  const same: Array<[string, string]> = [
    ['sip:branch.example', 'sip:branch.example'],
    ['sip:Branch.Example', 'sip:branch.example;transport=udp'],
    ['sip:branch.example:5060', 'sip:branch.example'],
    ['sip:branch.example;transport=tcp', 'sip:branch.example:5060'],
    ['sip:10.0.0.1:5060', 'sip:10.0.0.1:5060;transport=udp'],
    ['sip:[2001:db8::1]:5060', 'sip:[2001:DB8::1]'],
  ];
  for (const [uri, requestUri] of same) assert.equal(tryUris(uri, requestUri).ok, true, `${uri} vs ${requestUri}`);
  const different: Array<[string, string]> = [
    ['sip:other.example', 'sip:branch.example'],
    ['sips:branch.example', 'sip:branch.example'],
    ['sip:branch.example:5070', 'sip:branch.example:5060'],
    ['sip:bob@branch.example', 'sip:branch.example'],
    ['tel:+15551234', 'sip:branch.example'],
  ];
  for (const [uri, requestUri] of different) {
    assert.deepEqual(tryUris(uri, requestUri), { ok: false, code: 'uri-mismatch', username: 'alice' }, `${uri} vs ${requestUri}`);
  }
});

test('verifying one Authorization costs a few microseconds', (t) => {
  const { challenge, verify } = setup();
  const count = 20_000;
  const authorizations: AuthValue[][] = [];
  for (let i = 0; i < count; i++) authorizations.push([answer(challengeFor(challenge(), 'SHA-256'))]);
  const started = performance.now();
  let accepted = 0;
  for (const authorization of authorizations) if (verify(authorization).ok) accepted++;
  const elapsedMs = performance.now() - started;
  assert.equal(accepted, count);
  t.diagnostic(`verify (SHA-256, fresh nonce each): ${((elapsedMs * 1000) / count).toFixed(2)} µs per Authorization`);
});
