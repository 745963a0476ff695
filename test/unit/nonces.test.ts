import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { NonceService } from '../../agent/sip/nonces.ts';

const LIFETIME_MS = 300_000;

function clock(startMs = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let current = startMs;
  return { now: () => current, advance: (ms) => { current += ms; } };
}

/** Replaces one character of a nonce with a different base64url character. */
function tamper(nonce: string, index: number): string {
  const replacement = nonce[index] === 'A' ? 'B' : 'A';
  return nonce.slice(0, index) + replacement + nonce.slice(index + 1);
}

test('issued nonces are 40-character base64url, all different, and valid', () => {
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS });
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const nonce = nonces.issue();
    assert.match(nonce, /^[A-Za-z0-9_-]{40}$/);
    assert.equal(nonces.check(nonce), 'valid');
    seen.add(nonce);
  }
  assert.equal(seen.size, 1000);
});

test('a nonce is valid through its lifetime and stale after it', () => {
  const time = clock();
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS, now: time.now });
  const nonce = nonces.issue();
  time.advance(LIFETIME_MS);
  assert.equal(nonces.check(nonce), 'valid');
  time.advance(1);
  assert.equal(nonces.check(nonce), 'stale');
});

test('a nonce from the future (clock stepped back) is stale, not valid', () => {
  const time = clock();
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS, now: time.now });
  const nonce = nonces.issue();
  time.advance(-1);
  assert.equal(nonces.check(nonce), 'stale');
});

test('tampering with any character of a nonce makes it invalid', () => {
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS });
  const nonce = nonces.issue();
  for (let i = 0; i < nonce.length; i++) {
    assert.equal(nonces.check(tamper(nonce, i)), 'invalid', `character ${i}`);
  }
});

test('garbage is invalid', () => {
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS });
  const nonce = nonces.issue();
  for (const garbage of ['', 'abc', nonce + 'A', nonce.slice(1), `${nonce.slice(0, 39)}=`, `${nonce.slice(0, 39)}+`,
    'dcd98b7102dd2f0e8b11d0f600bfb0c093', 'A'.repeat(40)]) {
    assert.equal(nonces.check(garbage), 'invalid', JSON.stringify(garbage));
  }
});

test('a nonce from another instance (a restart) is invalid, even with the same secret', () => {
  const secret = Buffer.alloc(32, 7);
  const before = new NonceService({ lifetimeMs: LIFETIME_MS });
  const after = new NonceService({ lifetimeMs: LIFETIME_MS });
  assert.equal(after.check(before.issue()), 'invalid');

  const sharedBefore = new NonceService({ lifetimeMs: LIFETIME_MS, secret });
  const sharedAfter = new NonceService({ lifetimeMs: LIFETIME_MS, secret });
  assert.equal(sharedAfter.check(sharedBefore.issue()), 'invalid');
});

test('nonce counts must increase; repeats and lower counts are refused', () => {
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS });
  const nonce = nonces.issue();
  assert.equal(nonces.acceptCount(nonce, '00000001'), true);
  assert.equal(nonces.acceptCount(nonce, '00000001'), false);
  assert.equal(nonces.acceptCount(nonce, '00000003'), true);
  assert.equal(nonces.acceptCount(nonce, '00000002'), false);
  assert.equal(nonces.acceptCount(nonce, '0000000A'), true);
  assert.equal(nonces.acceptCount(nonce, '0000000b'), true);
  assert.equal(nonces.acceptCount(nonce, 'ffffffff'), true);
  assert.equal(nonces.acceptCount(nonce, 'ffffffff'), false);
});

test('each nonce has its own count', () => {
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS });
  const first = nonces.issue();
  const second = nonces.issue();
  assert.equal(nonces.acceptCount(first, '00000005'), true);
  assert.equal(nonces.acceptCount(second, '00000001'), true);
  assert.equal(nonces.acceptCount(first, '00000005'), false);
});

test('malformed counts, zero, and counts for bad nonces are refused without recording', () => {
  const time = clock();
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS, now: time.now });
  const nonce = nonces.issue();
  for (const nc of ['00000000', '1', '0000001', '000000001', 'zzzzzzzz', ' 0000001', '-0000001', '']) {
    assert.equal(nonces.acceptCount(nonce, nc), false, JSON.stringify(nc));
  }
  assert.equal(nonces.acceptCount(tamper(nonce, 30), '00000009'), false);
  // The forged attempt above must not have used up count 9 for the real nonce.
  assert.equal(nonces.acceptCount(nonce, '00000009'), true);

  const expiring = nonces.issue();
  time.advance(LIFETIME_MS + 1);
  assert.equal(nonces.acceptCount(expiring, '00000001'), false);
});

test('when the tracker wraps, the overwritten nonce becomes stale and cannot be counted', () => {
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS, trackerSize: 4 });
  const oldest = nonces.issue();
  assert.equal(nonces.acceptCount(oldest, '00000001'), true);
  const newer = [nonces.issue(), nonces.issue(), nonces.issue()];
  assert.equal(nonces.check(oldest), 'valid', 'four nonces fit in four slots');

  const reusesSlot = nonces.issue();
  assert.equal(nonces.check(oldest), 'stale');
  assert.equal(nonces.acceptCount(oldest, '00000002'), false);
  // The new owner of the slot starts from zero, unaffected by the old nonce's count.
  assert.equal(nonces.acceptCount(reusesSlot, '00000001'), true);
  for (const nonce of newer) assert.equal(nonces.check(nonce), 'valid');
});

test('options are validated', () => {
  assert.throws(() => new NonceService({ lifetimeMs: 0 }), RangeError);
  assert.throws(() => new NonceService({ lifetimeMs: LIFETIME_MS, trackerSize: 1000 }), RangeError);
  assert.throws(() => new NonceService({ lifetimeMs: LIFETIME_MS, trackerSize: 2 ** 29 }), RangeError);
  assert.throws(() => new NonceService({ lifetimeMs: LIFETIME_MS, secret: Buffer.alloc(8) }), RangeError);
});

test('memory stays flat while issuing 1,000,000 nonces', (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const nonces = new NonceService({ lifetimeMs: LIFETIME_MS });

  gc();
  const before = process.memoryUsage();
  const started = performance.now();
  for (let i = 0; i < 1_000_000; i++) {
    const nonce = nonces.issue();
    if (i % 100 === 0) nonces.acceptCount(nonce, '00000001');
  }
  const elapsedMs = performance.now() - started;
  gc();
  const after = process.memoryUsage();

  const heapDelta = after.heapUsed - before.heapUsed;
  const externalDelta = after.external + after.arrayBuffers - (before.external + before.arrayBuffers);
  t.diagnostic(`issue: ${((elapsedMs * 1000) / 1_000_000).toFixed(2)} µs per nonce`);
  t.diagnostic(`heapUsed delta ${(heapDelta / 1e6).toFixed(2)} MB, external delta ${(externalDelta / 1e6).toFixed(2)} MB`);
  assert.ok(heapDelta < 20e6, `heapUsed grew by ${heapDelta} bytes`);
  assert.ok(externalDelta < 20e6, `external memory grew by ${externalDelta} bytes`);
});
