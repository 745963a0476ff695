import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, configFromData } from '../../agent/config/load.ts';
import { TrunkError } from '../../agent/trunks/errors.ts';
import { manipulateDigits, toE164, type NumberingPlan } from '../../agent/trunks/numbers.ts';
import { TrunkPlan } from '../../agent/trunks/plan.ts';

const uk: NumberingPlan = { countryCode: '44', areaCode: '113', internationalPrefix: '00', nationalPrefix: '0', localDigits: 7 };
const nanp: NumberingPlan = { countryCode: '1', areaCode: '212', internationalPrefix: '011', nationalPrefix: '1', localDigits: 7 };

function config(extra: Record<string, unknown>) {
  return configFromData(
    {
      site: { id: 'branch-01' },
      sip: { domain: 'example.test' },
      extensions: [
        { number: '1001', password: 'secret-1' },
        { number: '1002', password: 'secret-2' },
        { number: '2001', password: 'secret-3' },
      ],
      linecards: [
        { driver: 'sim', name: 'e1', type: 'e1' },
        { driver: 'sim', name: 'fxo', type: 'fxo', ports: 2 },
      ],
      ...extra,
    },
    'test.yaml',
  );
}

test('numbers become E.164 by the site numbering plan', () => {
  assert.equal(toE164('01132345678', uk), '+441132345678');
  assert.equal(toE164('2345678', uk), '+441132345678', 'a local number gets the area code');
  assert.equal(toE164('0033123456789', uk), '+33123456789');
  assert.equal(toE164('+33123456789', uk), '+33123456789');
  assert.equal(toE164('2125551234', nanp), '+12125551234', 'ten NANP digits are a national number');
  assert.equal(toE164('12125551234', nanp), '+12125551234');
  assert.equal(toE164('5551234', nanp), '+12125551234');
  assert.equal(toE164('01144201234567', nanp), '+44201234567');
  assert.throws(() => toE164('12ab', uk), /not a telephone number/);
  assert.throws(() => toE164('2345678', { ...uk, areaCode: undefined } as NumberingPlan), /area_code is not set/);
});

test('digits are stripped, then prefixed, then normalised', () => {
  assert.equal(manipulateDigits('901132345678', { strip: 1, prefix: '', e164: false }, uk), '01132345678');
  assert.equal(manipulateDigits('901132345678', { strip: 1, prefix: '', e164: true }, uk), '+441132345678');
  assert.equal(manipulateDigits('2345678', { strip: 0, prefix: '0113', e164: false }, uk), '01132345678');
  assert.throws(() => manipulateDigits('9', { strip: 1, prefix: '', e164: false }, uk), /nothing left to dial/);
  assert.throws(() => manipulateDigits('9', { strip: 2, prefix: '', e164: false }, uk), /cannot strip 2 digits/);
});

test('routes pick trunk groups in failover order and rewrite the digits; tenants only use their routes', () => {
  const plan = new TrunkPlan(
    config({
      trunking: { country_code: '44', area_code: '113' },
      trunks: [
        { name: 'span1', linecard: 'e1', channels: '1-15' },
        { name: 'span1-b', linecard: 'e1', channels: '16-30', direction: 'inbound' },
        { name: 'analog', linecard: 'fxo', caller_id: 'fixed', caller_id_number: '01130000000' },
      ],
      tenants: [
        { name: 'acme', extensions: ['10XX'], max_channels: 4, calls_per_minute: 30, caller_id: '01131111111' },
        { name: 'globex', extensions: ['2001'] },
      ],
      routes: [
        { name: 'international', pattern: '900X.', trunks: ['span1'], strip: 1, tenants: ['acme'] },
        { name: 'national', pattern: '90ZX.', trunks: ['span1', 'span1-b', 'analog'], strip: 1, e164: true },
      ],
    }),
  );
  assert.equal(plan.tenantOf('1002'), 'acme');
  assert.equal(plan.tenantOf('2001'), 'globex');
  assert.equal(plan.tenantOf('3000'), 'default');
  assert.deepEqual(plan.outbound('901132345678', 'acme', false), { tenant: 'acme', groups: ['span1', 'analog'], dialled: '+441132345678', route: 'national' });
  assert.deepEqual(plan.outbound('90033123', 'acme', false).dialled, '0033123');
  assert.throws(() => plan.outbound('90033123', 'globex', false), (err: TrunkError) => err.code === 'ENO_ROUTE' && err.sipStatus === 404);
  // An emergency number with no route still goes out, as dialled, on every outbound-capable group.
  assert.deepEqual(plan.outbound('999', 'globex', true).groups, ['span1', 'analog']);
  assert.equal(plan.outbound('999', 'globex', true).dialled, '999');

  const channels = plan.channels(
    new Map([
      ['e1', [{ span: 1, channels: 30 }]],
      ['fxo', [{ span: 1, channels: 1 }, { span: 2, channels: 1 }]],
    ]),
  );
  assert.equal(channels.length, 32);
  assert.deepEqual(channels[15], { id: 'e1/1/16', group: 'span1-b', direction: 'inbound', card: 'e1', span: 1, channel: 16 });
  assert.deepEqual(channels.filter((c) => c.group === 'analog').map((c) => c.id), ['fxo/1/1', 'fxo/2/1']);

  // Caller ID: passed through, fixed per trunk, or the tenant's.
  const caller = { number: '1002', name: 'Alice', presentation: 'allowed' as const };
  assert.deepEqual(plan.callerId('span1', 'acme', caller), caller);
  assert.deepEqual(plan.callerId('analog', 'acme', caller), { ...caller, number: '01130000000' });
});

test('caller ID policy tenant sends the tenant number, or the trunk number for a tenant without one', () => {
  const plan = new TrunkPlan(
    config({
      trunks: [{ name: 't', linecard: 'e1', caller_id: 'tenant', caller_id_number: '01130000000' }],
      tenants: [
        { name: 'acme', extensions: ['10XX'], caller_id: '01131111111' },
        { name: 'globex', extensions: ['2001'] },
      ],
    }),
  );
  const withheld = { number: '1001', presentation: 'restricted' as const };
  assert.deepEqual(plan.callerId('t', 'acme', withheld), { number: '01131111111', presentation: 'restricted' });
  assert.equal(plan.callerId('t', 'globex', withheld).number, '01130000000');
});

test('with only a line card and a DID, the defaults make a working trunk plan', () => {
  const plan = new TrunkPlan(config({ dids: [{ number: '5550100', extension: '1001' }] }));
  assert.deepEqual(
    plan.groups.map((g) => [g.name, g.direction, g.callerId]),
    [
      ['e1', 'both', 'pass'],
      ['fxo', 'both', 'pass'],
    ],
  );
  assert.deepEqual(plan.outbound('01132345678', 'default', false).groups, ['e1', 'fxo']);
  assert.deepEqual(plan.inbound('5550100'), { number: '5550100', target: { kind: 'extension', extension: '1001' }, tenant: 'default' });
  assert.equal(plan.inbound('5550199'), undefined);
  assert.equal(plan.maxWaitMs, 20_000);
  assert.equal(plan.retryAfterSec, 10);
});

test('DIDs reach an extension, a group, a mailbox or an app, and match in E.164 form too', () => {
  const plan = new TrunkPlan(
    config({
      trunking: { country_code: '44', area_code: '113' },
      ring_groups: [{ number: '600', members: ['1001', '1002'] }],
      tenants: [{ name: 'acme', extensions: ['10XX'] }],
      dids: [
        { number: '+441132000001', extension: '1001' },
        { number: '2000002', group: '600', tenant: 'acme' },
        { number: '2000003', voicemail: '1002' },
        { number: '2000004', app: 'ivr-main' },
      ],
    }),
  );
  assert.deepEqual(plan.inbound('01132000001')?.target, { kind: 'extension', extension: '1001' });
  assert.equal(plan.inbound('01132000001')?.tenant, 'acme', 'the tenant of the extension');
  assert.deepEqual(plan.inbound('2000002')?.target, { kind: 'group', group: '600' });
  assert.deepEqual(plan.inbound('2000003')?.target, { kind: 'voicemail', mailbox: '1002' });
  assert.deepEqual(plan.inbound('2000004')?.target, { kind: 'app', app: 'ivr-main' });
});

test('trunk config mistakes are reported at load, each with its key', () => {
  let problems: ConfigError | undefined;
  try {
    config({
      trunks: [
        { name: 'a', linecard: 'nope' },
        { name: 'a', linecard: 'e1', channels: '5-2', caller_id: 'fixed' },
      ],
      routes: [{ pattern: '9X.', trunks: ['zzz'], e164: true, tenants: ['ghost'] }],
      dids: [{ number: '5550100', extension: '1001', app: 'x' }, { number: '5550101', extension: '9999' }, { number: '5550100', group: '700' }],
      tenants: [{ name: 't', extensions: ['1Q'] }],
    });
  } catch (err) {
    problems = err as ConfigError;
  }
  assert.ok(problems instanceof ConfigError);
  const keys = problems.problems.map((p) => `${p.key}: ${p.reason}`);
  for (const expected of [
    /^trunks\[0\]\.linecard: "nope" is not a linecards/,
    /^trunks\[1\]\.name: "a" is already used by trunks\[0\]/,
    /^trunks\[1\]\.channels: range 5-2 runs backwards/,
    /^trunks\[1\]\.caller_id_number: is required with caller_id fixed/,
    /^routes\[0\]\.trunks\[0\]: "zzz" is not a trunk group/,
    /^routes\[0\]\.tenants\[0\]: "ghost" is not a tenants/,
    /^routes\[0\]\.e164: needs trunking\.country_code/,
    /^dids\[0\]: needs exactly one of extension, group, voicemail, app \(has extension, app\)/,
    /^dids\[1\]\.extension: "9999" is not an extensions/,
    /^dids\[2\]\.number: "5550100" is already used by dids\[0\]/,
    /^dids\[2\]\.group: "700" is not a ring_groups/,
    /^tenants\[0\]\.extensions\[0\]: /,
  ]) {
    assert.ok(keys.some((k) => expected.test(k)), `expected a problem like ${expected}; got:\n${keys.join('\n')}`);
  }
});

test('a trunk asking for a span or channel the card does not have is refused with its name', () => {
  const plan = new TrunkPlan(config({ trunks: [{ name: 'wide', linecard: 'e1', spans: [2] }] }));
  assert.throws(() => plan.channels(new Map([['e1', [{ span: 1, channels: 30 }]]])), /trunk wide: line card e1 has no span 2/);
  const plan2 = new TrunkPlan(config({ trunks: [{ name: 'big', linecard: 'e1', channels: '1-31' }] }));
  assert.throws(() => plan2.channels(new Map([['e1', [{ span: 1, channels: 30 }]]])), /span 1 of e1 has 30 channels, not 31/);
  const plan3 = new TrunkPlan(config({ trunks: [{ name: 'x', linecard: 'e1', channels: '1-10' }, { name: 'y', linecard: 'e1', channels: '10-20' }] }));
  assert.throws(() => plan3.channels(new Map([['e1', [{ span: 1, channels: 30 }]]])), /trunk y: channel e1\/1\/10 is already in trunk x/);
});
