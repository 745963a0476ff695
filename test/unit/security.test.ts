import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthLockout } from '../../agent/security/lockout.ts';
import { RateLimiter } from '../../agent/security/rate-limiter.ts';

test('the rate limiter allows a burst, then the sustained rate, per source', () => {
  let now = 0;
  const limiter = new RateLimiter({ perSecond: 10, burst: 5, now: () => now });
  const taken = Array.from({ length: 8 }, () => limiter.take('a')).filter(Boolean).length;
  assert.equal(taken, 5);
  assert.equal(limiter.take('b'), true, 'another source has its own bucket');
  now += 1000;
  const afterSecond = Array.from({ length: 20 }, () => limiter.take('a')).filter(Boolean).length;
  assert.equal(afterSecond, 5, 'refills up to the burst, not beyond');
  now += 10_000;
  limiter.sweep();
  assert.equal(limiter.size, 0, 'idle, full buckets are forgotten');
});

test('lock-out after N failures in the window, lifted after the duration', () => {
  let now = 0;
  const lockout = new AuthLockout({ failures: 3, windowMs: 60_000, durationMs: 300_000, now: () => now });
  assert.equal(lockout.recordFailure('1.2.3.4'), undefined);
  assert.equal(lockout.recordFailure('1.2.3.4'), undefined);
  const locked = lockout.recordFailure('1.2.3.4');
  assert.deepEqual(locked, { lockedUntil: 300_000, failures: 3 });
  assert.equal(lockout.lockedUntil('1.2.3.4'), 300_000);
  assert.equal(lockout.lockedUntil('5.6.7.8'), undefined);
  now = 300_001;
  assert.equal(lockout.lockedUntil('1.2.3.4'), undefined);
});

test('failures spread beyond the window do not lock out; success resets', () => {
  let now = 0;
  const lockout = new AuthLockout({ failures: 3, windowMs: 10_000, durationMs: 60_000, now: () => now });
  lockout.recordFailure('a');
  now = 11_000;
  lockout.recordFailure('a');
  now = 12_000;
  assert.equal(lockout.recordFailure('a'), undefined);
  lockout.recordSuccess('a');
  lockout.recordFailure('a');
  assert.equal(lockout.recordFailure('a'), undefined);
});
