// The Q.850 cause a PSTN caller's line is released with when the agent cannot complete
// the call (agent/calls/line-causes.ts): per ring outcome, and per SIP status as RFC
// 3398 §8.2.6.1 maps them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { causeForOutcome, causeForSipStatus, q850ReasonHeader } from '../../agent/calls/line-causes.ts';

test('ring outcomes: busy 17, no answer 19, unavailable 20, declined 21', () => {
  assert.deepEqual(
    (['busy', 'no-answer', 'unavailable', 'rejected'] as const).map(causeForOutcome),
    [17, 19, 20, 21],
  );
});

test('SIP statuses map as RFC 3398 §8.2.6.1 does; unlisted ones are interworking (127)', () => {
  const table: Array<[number, number]> = [
    [404, 1],
    [403, 21],
    [408, 102],
    [410, 22],
    [480, 18],
    [484, 28],
    [486, 17],
    [500, 41],
    [502, 38],
    [503, 41],
    [504, 102],
    [600, 17],
    [603, 21],
    [604, 1],
    [606, 58],
    [499, 127],
  ];
  for (const [status, cause] of table) assert.equal(causeForSipStatus(status), cause, `${status} → ${cause}`);
});

test('a Q.850 Reason header (RFC 3326) for the BYE a phone gets when the line hangs up', () => {
  assert.equal(q850ReasonHeader(16, 'normal clearing'), 'Q.850;cause=16;text="normal clearing"');
  assert.equal(q850ReasonHeader(38, 'network "out" of order'), 'Q.850;cause=38;text="network out of order"');
});
