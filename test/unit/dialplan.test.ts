// The dial plan's routing rules and fallback paths, driven the way the call core
// drives it: route() for a new call, then next() with each failure the core saw.
// Configs go through the real loader (schema defaults and reference checks).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configFromData } from '../../agent/config/load.ts';
import { ConfiguredDialPlan } from '../../agent/calls/routing/dial-plan.ts';
import type { Caller, FailureOutcome, RouteDecision, RouteTarget, RoutingState } from '../../agent/calls/routing/types.ts';

type Ext = Record<string, unknown> & { number: string };

function plan(extensions: Ext[], more: Record<string, unknown> = {}): ConfiguredDialPlan {
  const config = configFromData(
    { site: { id: 's' }, sip: { domain: 'd' }, extensions: extensions.map((e) => ({ password: 'secret', ...e })), ...more },
    'test.yaml',
  );
  return new ConfiguredDialPlan(config);
}

/** What the core knows about phones: registered contacts and calls in progress. */
class Phones implements RoutingState {
  readonly contacts = new Map<string, number>();
  readonly calls = new Map<string, number>();
  constructor(registered: string[] = []) {
    for (const e of registered) this.contacts.set(e, 1);
  }
  registeredContacts(extension: string): number {
    return this.contacts.get(extension) ?? 0;
  }
  activeCalls(extension: string): number {
    return this.calls.get(extension) ?? 0;
  }
}

const phone = (extension = '1000'): Caller => ({ extension, number: extension, origin: 'phone' });
const trunk: Caller = { number: '0301234567', origin: 'trunk' };

/**
 * Routes `dialed`, then answers each target with the next outcome, as the core would.
 * Returns every target tried, and `undefined` at the end when the plan gave up.
 */
function callPath(p: ConfiguredDialPlan, state: RoutingState, dialed: string, outcomes: FailureOutcome[], caller: Caller = phone()): Array<RouteTarget | undefined> {
  const request = { dialed, caller };
  let decision: RouteDecision | undefined = p.route(request, state);
  const path: Array<RouteTarget | undefined> = [decision.target];
  outcomes.forEach((outcome, attempt) => {
    assert.ok(decision, `no target left for outcome ${outcome}`);
    decision = p.next(request, decision, outcome, attempt, state);
    path.push(decision?.target);
  });
  return path;
}

const ring = (extensions: string[], ringTimeoutSec: number, groupName?: string): RouteTarget => (groupName ? { kind: 'ring', extensions, ringTimeoutSec, groupName } : { kind: 'ring', extensions, ringTimeoutSec });
const voicemail = (mailbox: string, reason: 'busy' | 'no-answer' | 'unavailable'): RouteTarget => ({ kind: 'voicemail', mailbox, reason });
const mailbox = { pin: '1234' };

test('an extension rings its phones for the ring timeout, then the call ends with the core’s final response', () => {
  const p = plan([{ number: '1001' }, { number: '1002', ring_timeout: 12 }], { dialplan: { ring_timeout: 25 } });
  const phones = new Phones(['1001', '1002']);
  assert.deepEqual(callPath(p, phones, '1001', ['no-answer']), [ring(['1001'], 25), undefined]);
  assert.deepEqual(callPath(p, phones, '1002', ['busy']), [ring(['1002'], 12), undefined]);
  // Default ring timeout: 30 s.
  assert.deepEqual(plan([{ number: '1001' }]).route({ dialed: '1001', caller: phone() }, phones).target, ring(['1001'], 30));
  // Visual separators are ignored.
  assert.deepEqual(p.route({ dialed: '10-01', caller: phone() }, phones).target, ring(['1001'], 25));
});

test('unknown and empty numbers are refused with 404 and 484', () => {
  const p = plan([{ number: '1001' }]);
  const phones = new Phones(['1001']);
  assert.deepEqual(p.route({ dialed: '4711', caller: phone() }, phones).target, { kind: 'reject', status: 404, reason: 'Not Found' });
  assert.deepEqual(p.route({ dialed: 'alice', caller: phone() }, phones).target, { kind: 'reject', status: 404, reason: 'Not Found' });
  assert.deepEqual(p.route({ dialed: '', caller: phone() }, phones).target, { kind: 'reject', status: 484, reason: 'Address Incomplete' });
});

test('no answer goes to voicemail when the extension has a mailbox', () => {
  const p = plan([{ number: '1001', voicemail: mailbox }]);
  const phones = new Phones(['1001']);
  assert.deepEqual(callPath(p, phones, '1001', ['no-answer']), [ring(['1001'], 30), voicemail('1001', 'no-answer')]);
  assert.deepEqual(callPath(p, phones, '1001', ['busy']), [ring(['1001'], 30), voicemail('1001', 'busy')]);
  // A declined call (603) is treated like busy.
  assert.deepEqual(callPath(p, phones, '1001', ['rejected']), [ring(['1001'], 30), voicemail('1001', 'busy')]);
  assert.deepEqual(callPath(p, phones, '1001', ['unavailable', 'unavailable']), [ring(['1001'], 30), voicemail('1001', 'unavailable'), undefined]);
});

test('an extension with no registered phone is unavailable at once: forward-unavailable, voicemail, 480', () => {
  const phones = new Phones([]);
  const withForward = plan([{ number: '1001', voicemail: mailbox, forward: { unavailable: '1002' } }, { number: '1002' }]);
  phones.contacts.set('1002', 1);
  assert.deepEqual(callPath(withForward, phones, '1001', []), [ring(['1002'], 30)]);
  const withMailbox = plan([{ number: '1001', voicemail: mailbox }]);
  assert.deepEqual(callPath(withMailbox, phones, '1001', []), [voicemail('1001', 'unavailable')]);
  const bare = plan([{ number: '1001' }]);
  const d = bare.route({ dialed: '1001', caller: phone() }, phones);
  assert.deepEqual(d.target, { kind: 'reject', status: 480, reason: 'Temporarily Unavailable' });
  assert.match(d.why, /1001 not registered/);
});

test('forward always sends every call on without ringing the extension', () => {
  const p = plan([{ number: '1001', forward: { always: '1002' } }, { number: '1002' }, { number: '1003', forward: { always: '00441234567890' } }]);
  const phones = new Phones(['1001', '1002', '1003']);
  const d = p.route({ dialed: '1001', caller: phone() }, phones);
  assert.deepEqual(d.target, ring(['1002'], 30));
  assert.match(d.why, /forward-always 1001→1002/);
  // To an outside number: out through the trunks, not an emergency.
  assert.deepEqual(callPath(p, phones, '1003', []), [{ kind: 'external', number: '00441234567890', emergency: false }]);
});

test('forward busy and forward no-answer (with its own timer) apply after the extension fails', () => {
  const p = plan([
    { number: '1001', forward: { busy: '1002', no_answer: '1003', no_answer_timeout: 8 } },
    { number: '1002' },
    { number: '1003', voicemail: mailbox },
  ]);
  const phones = new Phones(['1001', '1002', '1003']);
  assert.deepEqual(callPath(p, phones, '1001', ['busy']), [ring(['1001'], 8), ring(['1002'], 30)]);
  // The call now belongs to 1003: its own no-answer rule (voicemail) applies next.
  assert.deepEqual(callPath(p, phones, '1001', ['no-answer', 'no-answer', 'no-answer']), [ring(['1001'], 8), ring(['1003'], 30), voicemail('1003', 'no-answer'), undefined]);
  // Unavailable has no forward here and no mailbox: the core gives its final response.
  assert.deepEqual(callPath(p, phones, '1001', ['unavailable']), [ring(['1001'], 8), undefined]);
});

test('do-not-disturb is busy without ringing: forward busy, else voicemail, else 486', () => {
  const phones = new Phones(['1001', '1002']);
  const forwarded = plan([{ number: '1001', dnd: true, forward: { busy: '1002' }, voicemail: mailbox }, { number: '1002' }]);
  assert.deepEqual(callPath(forwarded, phones, '1001', []), [ring(['1002'], 30)]);
  const toMailbox = plan([{ number: '1001', dnd: true, voicemail: mailbox }]);
  assert.deepEqual(callPath(toMailbox, phones, '1001', []), [voicemail('1001', 'busy')]);
  const bare = plan([{ number: '1001', dnd: true }]);
  assert.deepEqual(bare.route({ dialed: '1001', caller: phone() }, phones).target, { kind: 'reject', status: 486, reason: 'Do Not Disturb' });
  // Forward always still wins over DND.
  const always = plan([{ number: '1001', dnd: true, forward: { always: '1002' } }, { number: '1002' }]);
  assert.deepEqual(callPath(always, phones, '1001', []), [ring(['1002'], 30)]);
});

test('an extension without call waiting is busy while in a call; with it (the default) it rings', () => {
  const p = plan([{ number: '1001', call_waiting: false, voicemail: mailbox }, { number: '1002' }]);
  const phones = new Phones(['1001', '1002']);
  phones.calls.set('1001', 1);
  phones.calls.set('1002', 1);
  assert.deepEqual(callPath(p, phones, '1001', []), [voicemail('1001', 'busy')]);
  assert.deepEqual(callPath(p, phones, '1002', []), [ring(['1002'], 30)]);
});

test('forward loops end: a forward back to a number already passed is skipped', () => {
  const phones = new Phones(['1001', '1002', '1003']);
  // 1001 → 1002 → 1001: the second forward closes the loop, so 1002 rings.
  const p = plan([{ number: '1001', forward: { always: '1002' } }, { number: '1002', forward: { always: '1001' } }]);
  const d = p.route({ dialed: '1001', caller: phone() }, phones);
  assert.deepEqual(d.target, ring(['1002'], 30));
  assert.match(d.why, /forward-always 1002→1001 skipped \(loop\)/);
  // No-answer loop: 1001 ↔ 1002 forward on no answer; after 1001 and 1002 rang, the call ends.
  const na = plan([{ number: '1001', forward: { no_answer: '1002' } }, { number: '1002', forward: { no_answer: '1001' } }]);
  assert.deepEqual(callPath(na, phones, '1001', ['no-answer', 'no-answer']), [ring(['1001'], 30), ring(['1002'], 30), undefined]);
});

test('forward chains stop at dialplan.max_forward_hops', () => {
  const phones = new Phones(['1001', '1002', '1003', '1004']);
  const chain = [
    { number: '1001', forward: { always: '1002' } },
    { number: '1002', forward: { always: '1003' } },
    { number: '1003', forward: { always: '1004' } },
    { number: '1004' },
  ];
  assert.deepEqual(callPath(plan(chain, { dialplan: { max_forward_hops: 2 } }), phones, '1001', []), [ring(['1003'], 30)]);
  assert.deepEqual(callPath(plan(chain), phones, '1001', []), [ring(['1004'], 30)]);
  assert.deepEqual(callPath(plan(chain, { dialplan: { max_forward_hops: 0 } }), phones, '1001', []), [ring(['1001'], 30)]);
});

test('a simultaneous ring group rings every available member at once, then its fallback', () => {
  const p = plan([{ number: '1001' }, { number: '1002', dnd: true }, { number: '1003' }, { number: '1004' }, { number: '1009', voicemail: mailbox }], {
    ring_groups: [{ number: '600', name: 'Sales', members: ['1001', '1002', '1003', '1004'], ring_timeout: 20, fallback: '1009' }],
  });
  const phones = new Phones(['1001', '1002', '1003', '1009']); // 1004 not registered, 1002 in DND
  assert.deepEqual(callPath(p, phones, '600', ['no-answer', 'no-answer']), [ring(['1001', '1003'], 20, 'Sales'), ring(['1009'], 30), voicemail('1009', 'no-answer')]);
  // No member can ring: straight to the fallback.
  const empty = new Phones(['1009']);
  assert.deepEqual(callPath(p, empty, '600', []), [ring(['1009'], 30)]);
});

test('a ring group without a fallback ends with the core’s response, or 480 when nobody can ring', () => {
  const p = plan([{ number: '1001' }, { number: '1002' }], { ring_groups: [{ number: '600', members: ['1001', '1002'] }] });
  assert.deepEqual(callPath(p, new Phones(['1001', '1002']), '600', ['no-answer']), [ring(['1001', '1002'], 30, '600'), undefined]);
  assert.deepEqual(p.route({ dialed: '600', caller: phone() }, new Phones()).target, { kind: 'reject', status: 480, reason: 'Temporarily Unavailable' });
});

test('a sequential ring group rings one member at a time, each for its timeout, then the fallback', () => {
  const p = plan([{ number: '1001' }, { number: '1002' }, { number: '1003' }, { number: '1004' }], {
    ring_groups: [{ number: '700', name: 'Support', strategy: 'sequential', members: ['1001', '1002', '1003', '1004'], ring_timeout: 10, fallback: '0301234567' }],
  });
  const phones = new Phones(['1001', '1002', '1004']); // 1003 is skipped: not registered
  assert.deepEqual(callPath(p, phones, '700', ['no-answer', 'busy', 'unavailable', 'no-answer']), [
    ring(['1001'], 10, 'Support'),
    ring(['1002'], 10, 'Support'),
    ring(['1004'], 10, 'Support'),
    { kind: 'external', number: '0301234567', emergency: false },
    undefined,
  ]);
});

test('a member who forwarded the call to its group is not rung by it', () => {
  const p = plan([{ number: '1001', forward: { always: '600' } }, { number: '1002' }], { ring_groups: [{ number: '600', members: ['1001', '1002'] }] });
  assert.deepEqual(callPath(p, new Phones(['1001', '1002']), '1001', []), [ring(['1002'], 30, '600')]);
});

test('members’ own forwards do not apply inside a ring group', () => {
  const p = plan([{ number: '1001', forward: { always: '1002', no_answer: '1002' } }, { number: '1002' }], {
    ring_groups: [{ number: '600', members: ['1001'] }],
  });
  assert.deepEqual(callPath(p, new Phones(['1001', '1002']), '600', ['no-answer']), [ring(['1001'], 30, '600'), undefined]);
});

test('emergency numbers go out marked as emergency, from any caller, before anything else', () => {
  const p = plan([{ number: '1001' }]);
  const phones = new Phones(['1001']);
  for (const number of ['112', '911', '999']) {
    const d = p.route({ dialed: number, caller: phone() }, phones);
    assert.deepEqual(d.target, { kind: 'external', number, emergency: true });
    assert.equal(d.emergency, true);
    assert.equal(p.next({ dialed: number, caller: phone() }, d, 'busy', 0, phones), undefined);
  }
  // Even from a caller that may not dial out otherwise.
  assert.equal(p.route({ dialed: '112', caller: trunk }, phones).emergency, true);
  const custom = plan([{ number: '1001' }], { dialplan: { emergency_numbers: ['000', '106'] } });
  assert.equal(custom.route({ dialed: '000', caller: phone() }, phones).emergency, true);
  assert.equal(custom.route({ dialed: '911', caller: phone() }, phones).emergency, false);
});

test('outside numbers matching outbound_patterns go external; not for calls that came in on a trunk', () => {
  const p = plan([{ number: '1001' }]);
  const phones = new Phones(['1001']);
  for (const number of ['+4930123456', '0301234567', '2125550123', '12125550123']) {
    assert.deepEqual(p.route({ dialed: number, caller: phone() }, phones).target, { kind: 'external', number, emergency: false }, number);
  }
  assert.deepEqual(p.route({ dialed: '0301234567', caller: trunk }, phones).target, { kind: 'reject', status: 403, reason: 'Forbidden' });
  assert.deepEqual(p.route({ dialed: '1125550123', caller: phone() }, phones).target.kind, 'reject', 'NANP area codes start with 2-9');
  // An extension number wins over a pattern that also matches it.
  const custom = plan([{ number: '9001' }], { dialplan: { outbound_patterns: ['9X.'] } });
  assert.deepEqual(custom.route({ dialed: '9001', caller: phone() }, new Phones(['9001'])).target, ring(['9001'], 30));
  assert.deepEqual(custom.route({ dialed: '90301234', caller: phone() }, phones).target.kind, 'external');
  assert.deepEqual(custom.route({ dialed: '0301234567', caller: phone() }, phones).target.kind, 'reject');
});

test('next() ends a call whose decision it did not make, and stops after its attempt bound', () => {
  const p = plan([{ number: '1001', forward: { no_answer: '1002' } }, { number: '1002' }]);
  const phones = new Phones(['1001', '1002']);
  const request = { dialed: '1001', caller: phone() };
  const first = p.route(request, phones);
  assert.equal(p.next(request, { target: first.target, emergency: false, why: 'made elsewhere' }, 'no-answer', 0, phones), undefined);
  assert.equal(p.next(request, first, 'no-answer', 1_000, phones), undefined);
  assert.deepEqual(p.next(request, first, 'no-answer', 0, phones)?.target, ring(['1002'], 30));
});
