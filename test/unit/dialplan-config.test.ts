// Dial plan configuration: defaults, and every broken reference reported at load
// with the key that holds it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, configFromData } from '../../agent/config/load.ts';
import { compileDigitPattern, DigitPatternError } from '../../agent/calls/routing/digit-pattern.ts';

const base = { site: { id: 's' }, sip: { domain: 'd' } };

function problemsOf(data: Record<string, unknown>): Array<{ key: string; reason: string }> {
  try {
    configFromData({ ...base, ...data }, 'test.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

const ext = (number: string, more: Record<string, unknown> = {}) => ({ number, password: 'secret', ...more });

test('the dial plan defaults are filled in', () => {
  const config = configFromData({ ...base, extensions: [ext('1001')] }, 'test.yaml');
  assert.deepEqual(config.dialplan, {
    ring_timeout: 30,
    emergency_numbers: ['112', '911', '999'],
    outbound_patterns: ['+X.', '0X.', 'NXXNXXXXXX', '1NXXNXXXXXX'],
    max_forward_hops: 5,
    feature_codes: {
      dnd_on: '*78',
      dnd_off: '*79',
      forward_always_on: '*72',
      forward_always_off: '*73',
      forward_busy_on: '*90',
      forward_busy_off: '*91',
      forward_no_answer_on: '*92',
      forward_no_answer_off: '*93',
      voicemail_own: '*97',
      voicemail_any: '*98',
      echo_test: '*43',
    },
  });
  assert.deepEqual(config.ring_groups, []);
  assert.equal(config.extensions[0]?.dnd, false);
  assert.equal(config.extensions[0]?.call_waiting, true);
});

test('broken references are all reported at once, each with its key', () => {
  const problems = problemsOf({
    extensions: [
      ext('1001', { forward: { busy: '4711', no_answer: '1001', always: '911', unavailable: '1002' } }),
      ext('1002'),
      ext('999'),
    ],
    ring_groups: [
      { number: '1002', members: ['1001'] },
      { number: '600', members: ['1001', '1003'], fallback: '5' + '5'.repeat(3) },
      { number: '600', members: ['1002'] },
      { number: '112', members: ['1002'] },
    ],
  });
  assert.deepEqual(problems, [
    { key: 'ring_groups[0].number', reason: '"1002" is already used by extensions[1]' },
    { key: 'ring_groups[1].members[1]', reason: '"1003" is not an extension' },
    { key: 'ring_groups[2].number', reason: '"600" is already used by ring_groups[1]' },
    { key: 'ring_groups[3].number', reason: '"112" is an emergency number (dialplan.emergency_numbers)' },
    { key: 'ring_groups[1].fallback', reason: '"5555" is not an extension, a ring group or a number matching dialplan.outbound_patterns' },
    { key: 'extensions[0].forward.always', reason: '"911" is an emergency number; calls are not forwarded to one' },
    { key: 'extensions[0].forward.busy', reason: '"4711" is not an extension, a ring group or a number matching dialplan.outbound_patterns' },
    { key: 'extensions[0].forward.no_answer', reason: '"1001" is the number itself' },
    { key: 'extensions[2].number', reason: '"999" is an emergency number (dialplan.emergency_numbers)' },
  ]);
});

test('forward targets may be extensions, ring groups and outside numbers', () => {
  const config = configFromData(
    {
      ...base,
      extensions: [ext('1001', { forward: { always: '600', busy: '1002', no_answer: '+4930123456', unavailable: '0301234567', no_answer_timeout: 15 } }), ext('1002')],
      ring_groups: [{ number: '600', members: ['1002'], strategy: 'sequential', fallback: '1001' }],
    },
    'test.yaml',
  );
  assert.equal(config.extensions[0]?.forward?.no_answer_timeout, 15);
  assert.equal(config.ring_groups[0]?.strategy, 'sequential');
});

test('feature codes that clash and outbound patterns that do not parse are config errors', () => {
  const problems = problemsOf({
    extensions: [],
    dialplan: { feature_codes: { dnd_on: '*7', echo_test: '*79' }, outbound_patterns: ['0X.', '9[5-1]X', '9.X', 'a1'] },
  });
  const sorted = (list: Array<{ key: string; reason: string }>) => [...list].sort((a, b) => `${a.key} ${a.reason}`.localeCompare(`${b.key} ${b.reason}`));
  assert.deepEqual(sorted(problems), sorted([
    { key: 'dialplan.outbound_patterns[1]', reason: '"9[5-1]X": range 5-1 runs backwards' },
    { key: 'dialplan.outbound_patterns[2]', reason: '"9.X": "." must be the last character' },
    { key: 'dialplan.outbound_patterns[3]', reason: '"a1": "a" is not a digit or one of X Z N [ ] . ! +' },
    { key: 'dialplan.feature_codes.dnd_on', reason: '"*7" is the start of forward_always_on "*72", which could then never be dialled' },
    { key: 'dialplan.feature_codes.dnd_on', reason: '"*7" is the start of forward_always_off "*73", which could then never be dialled' },
    { key: 'dialplan.feature_codes.dnd_on', reason: '"*7" is the start of dnd_off "*79", which could then never be dialled' },
    { key: 'dialplan.feature_codes.dnd_on', reason: '"*7" is the start of echo_test "*79", which could then never be dialled' },
    { key: 'dialplan.feature_codes.dnd_off', reason: '"*79" is also echo_test' },
  ]));
});

test('the schema refuses unknown keys and bad values in the dial plan sections', () => {
  const problems = problemsOf({
    extensions: [ext('1001', { forward: { sometimes: '1002' }, ring_timeout: 2 })],
    dialplan: { feature_codes: { dnd_on: '78' }, max_forward_hops: -1 },
    ring_groups: [{ number: '600', members: [], strategy: 'random' }],
  });
  const keys = problems.map((p) => p.key);
  for (const key of ['extensions[0].forward.sometimes', 'extensions[0].ring_timeout', 'dialplan.feature_codes.dnd_on', 'dialplan.max_forward_hops', 'ring_groups[0].members', 'ring_groups[0].strategy']) {
    assert.ok(keys.includes(key), `${key} in ${JSON.stringify(problems)}`);
  }
});

test('digit patterns: X Z N, sets, . and ! as documented', () => {
  const m = (pattern: string, dialed: string) => compileDigitPattern(pattern).matches(dialed);
  assert.ok(m('NXXNXXXXXX', '2125550123'));
  assert.ok(!m('NXXNXXXXXX', '1125550123'));
  assert.ok(!m('NXXNXXXXXX', '212555012'));
  assert.ok(m('Z5', '15') && !m('Z5', '05'));
  assert.ok(m('9[13-5]', '91') && m('9[13-5]', '94') && !m('9[13-5]', '92'));
  assert.ok(m('0X.', '030') && !m('0X.', '03'));
  assert.ok(m('0X!', '03') && m('0X!', '0301'));
  assert.ok(m('+X.', '+49301') && !m('+X.', '49301'));
  assert.throws(() => compileDigitPattern(''), DigitPatternError);
  assert.throws(() => compileDigitPattern('9[12'), DigitPatternError);
  assert.throws(() => compileDigitPattern('9+1'), DigitPatternError);
});
