// Feature codes: what the dial plan answers to `*…`, and the state changes they make
// (DND, forwards) carried out through the real SQLite feature-state store, kept
// across a restart and seen by the plan's routing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { configFromData } from '../../agent/config/load.ts';
import type { AgentConfig } from '../../agent/config/types.ts';
import { ConfiguredDialPlan } from '../../agent/calls/routing/dial-plan.ts';
import { applyStateFeature, FeatureCodeError, overridesAfter } from '../../agent/calls/routing/feature-codes.ts';
import type { Caller, RouteDecision, RoutingState } from '../../agent/calls/routing/types.ts';
import { Database } from '../../agent/store/db.ts';
import { syncExtensions } from '../../agent/store/extensions.ts';
import { FeatureStateStore } from '../../agent/store/feature-state.ts';
import { GroupCommitter } from '../../agent/store/group-commit.ts';
import { migrate } from '../../agent/store/migrations.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bl-features-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function config(more: Record<string, unknown> = {}): AgentConfig {
  return configFromData(
    {
      site: { id: 's' },
      sip: { domain: 'd' },
      extensions: [
        { number: '1001', password: 'secret', voicemail: { pin: '1234' } },
        { number: '1002', password: 'secret' },
        { number: '1003', password: 'secret', forward: { always: '1002' } },
      ],
      ...more,
    },
    'test.yaml',
  );
}

const everyoneRegistered: RoutingState = { registeredContacts: () => 1, activeCalls: () => 0 };
const phone = (extension: string): Caller => ({ extension, number: extension, origin: 'phone' });
const route = (p: ConfiguredDialPlan, dialed: string, caller: Caller = phone('1002')): RouteDecision => p.route({ dialed, caller }, everyoneRegistered);

test('default feature codes answer with the feature, its argument, or a clear refusal', () => {
  const p = new ConfiguredDialPlan(config());
  const cases: Array<[string, unknown]> = [
    ['*78', { kind: 'feature', feature: 'dnd-on' }],
    ['*79', { kind: 'feature', feature: 'dnd-off' }],
    ['*721001', { kind: 'feature', feature: 'forward-always-on', argument: '1001' }],
    ['*73', { kind: 'feature', feature: 'forward-always-off' }],
    ['*900301234567', { kind: 'feature', feature: 'forward-busy-on', argument: '0301234567' }],
    ['*91', { kind: 'feature', feature: 'forward-busy-off' }],
    ['*921001', { kind: 'feature', feature: 'forward-no-answer-on', argument: '1001' }],
    ['*93', { kind: 'feature', feature: 'forward-no-answer-off' }],
    ['*98', { kind: 'feature', feature: 'voicemail-any' }],
    ['*981001', { kind: 'voicemail-retrieval', mailbox: '1001' }],
    ['*43', { kind: 'feature', feature: 'echo-test' }],
    // Refusals: the number to forward to missing, unknown, the caller itself, an emergency number.
    ['*72', { kind: 'reject', status: 484, reason: 'Address Incomplete' }],
    ['*724711', { kind: 'reject', status: 404, reason: 'Not Found' }],
    ['*721002', { kind: 'reject', status: 404, reason: 'Not Found' }],
    ['*72911', { kind: 'reject', status: 404, reason: 'Not Found' }],
    ['*981002', { kind: 'reject', status: 404, reason: 'Not Found' }], // 1002 has no mailbox
    ['*55', { kind: 'reject', status: 404, reason: 'Not Found' }],
    ['*785', { kind: 'reject', status: 404, reason: 'Not Found' }], // DND takes no argument
  ];
  for (const [dialed, target] of cases) assert.deepEqual(route(p, dialed).target, target, dialed);
  // *97: the caller's own mailbox (identified by caller ID + PIN), when it has one.
  assert.deepEqual(route(p, '*97', phone('1001')).target, { kind: 'voicemail-retrieval' });
  assert.deepEqual(route(p, '*97', phone('1002')).target, { kind: 'reject', status: 404, reason: 'Not Found' });
  // Only a registered extension's phone may use them.
  assert.deepEqual(route(p, '*78', { number: '0301234567', origin: 'trunk' }).target, { kind: 'reject', status: 403, reason: 'Forbidden' });
  assert.deepEqual(route(p, '*78', { number: '1002', origin: 'phone' }).target, { kind: 'reject', status: 403, reason: 'Forbidden' });
});

test('feature codes are configurable', () => {
  const p = new ConfiguredDialPlan(config({ dialplan: { feature_codes: { dnd_on: '*20', forward_always_on: '*21' } } }));
  assert.deepEqual(route(p, '*20').target, { kind: 'feature', feature: 'dnd-on' });
  assert.deepEqual(route(p, '*211001').target, { kind: 'feature', feature: 'forward-always-on', argument: '1001' });
  assert.deepEqual(route(p, '*78').target.kind, 'reject');
  assert.deepEqual(route(p, '*79').target, { kind: 'feature', feature: 'dnd-off' }, 'the others keep their defaults');
});

test('feature-code changes are durable, survive a restart and change routing', async () => {
  const file = path.join(dir, 'branchline.sqlite');
  const cfg = config();
  const open = async () => {
    const db = await Database.open(file);
    await migrate(db);
    await syncExtensions(db, cfg.extensions.map((e) => ({ number: e.number, name: null, realm: 'd', ha1_md5: 'a'.repeat(32), ha1_sha256: 'b'.repeat(64) })));
    const committer = new GroupCommitter(db);
    const features = await FeatureStateStore.load(db, committer);
    return { db, committer, features, plan: new ConfiguredDialPlan(cfg, features) };
  };

  const first = await open();
  // 1001 turns DND on: calls to 1001 now go to its voicemail without ringing.
  assert.equal(await applyStateFeature(first.features, '1001', 'dnd-on'), true);
  assert.deepEqual(route(first.plan, '1001').target, { kind: 'voicemail', mailbox: '1001', reason: 'busy' });
  // 1002 forwards everything to 1001 (*72 1001).
  const decision = route(first.plan, '*721001');
  assert.equal(decision.target.kind, 'feature');
  if (decision.target.kind === 'feature') await applyStateFeature(first.features, '1002', decision.target.feature, decision.target.argument);
  // 1003's configured forward-always is turned off by *73.
  assert.equal(await applyStateFeature(first.features, '1003', 'forward-always-off'), true);
  // Voicemail and echo test change no state.
  assert.equal(await applyStateFeature(first.features, '1001', 'echo-test'), false);
  await first.committer.idle();
  await first.db.close();

  const second = await open();
  assert.deepEqual(route(second.plan, '1001').target, { kind: 'voicemail', mailbox: '1001', reason: 'busy' });
  const toTwo = route(second.plan, '1002', phone('1003'));
  assert.match(toTwo.why, /forward-always 1002→1001/);
  assert.deepEqual(route(second.plan, '1003').target, { kind: 'ring', extensions: ['1003'], ringTimeoutSec: 30 });
  // DND off again: 1001 rings.
  await applyStateFeature(second.features, '1001', 'dnd-off');
  assert.deepEqual(route(second.plan, '1001').target, { kind: 'ring', extensions: ['1001'], ringTimeoutSec: 30 });
  await second.committer.idle();
  await second.db.close();
});

test('a stored forward whose target left the config is ignored', () => {
  const p = new ConfiguredDialPlan(config(), { get: (ext) => (ext === '1002' ? { forwardAlways: '1099' } : undefined) });
  const d = route(p, '1002');
  assert.deepEqual(d.target, { kind: 'ring', extensions: ['1002'], ringTimeoutSec: 30 });
  assert.match(d.why, /forward-always 1002→1099 skipped \(not routable\)/);
});

test('forward-on without a number is a clear error, not a silent change', () => {
  assert.throws(() => overridesAfter(undefined, 'forward-busy-on'), FeatureCodeError);
  assert.deepEqual(overridesAfter({ dnd: true }, 'forward-busy-on', '1001'), { dnd: true, forwardBusy: '1001' });
});
