// Calls to numbers homed at peer sites (docs/sync.md#calls-between-sites): the peer
// while it is reachable, else at once the fallbacks in `peers.fallback` order — the
// PSTN through the number's DID, then a local voicemail — and what a peer's own
// answer (busy, no answer) means. Configs go through the real loader.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configFromData } from '../../agent/config/load.ts';
import { ConfiguredDialPlan } from '../../agent/calls/routing/dial-plan.ts';
import type { Caller, PeerHomes, PeerHomeView, RoutingState } from '../../agent/calls/routing/types.ts';

const state: RoutingState = { registeredContacts: () => 1, activeCalls: () => 0 };
const phone: Caller = { extension: '1001', number: '1001', origin: 'phone' };

function homes(reachable: boolean, did?: string): PeerHomes & { site: PeerHomeView } {
  const site: PeerHomeView = { site: 'site-b', number: '2001', address: '198.18.2.2:5060', transport: 'udp', domain: 'b.example', reachable, ...(did ? { did } : {}) };
  return { site, homeOf: (n) => (n === '2001' ? site : undefined) };
}

function plan(h: PeerHomes, peers: Record<string, unknown> = {}): ConfiguredDialPlan {
  const config = configFromData({ site: { id: 'site-a' }, sip: { domain: 'a.example' }, extensions: [{ number: '1001', password: 'secret' }], peers }, 'test.yaml');
  return new ConfiguredDialPlan(config, undefined, { homes: h, fallback: config.peers.fallback, noResponseMs: config.peers.no_response_timeout * 1000 });
}

test('a reachable peer gets the call, with the no-response limit from peers.no_response_timeout', () => {
  const d = plan(homes(true, '+4930555001')).route({ dialed: '2001', caller: phone }, state);
  assert.deepEqual(d.target, { kind: 'peer', site: 'site-b', number: '2001', address: '198.18.2.2:5060', transport: 'udp', domain: 'b.example', noResponseMs: 500 });
});

test('an unreachable peer: straight to the PSTN through its DID, then local voicemail, no INVITE at all', () => {
  const p = plan(homes(false, '+4930555001'));
  const first = p.route({ dialed: '2001', caller: phone }, state);
  assert.deepEqual(first.target, { kind: 'external', number: '+4930555001', emergency: false });
  assert.match(first.why, /peer site-b unreachable, pstn \+4930555001/);
  const second = p.next({ dialed: '2001', caller: phone }, first, 'unavailable', 0, state);
  assert.deepEqual(second?.target, { kind: 'voicemail', mailbox: '2001', reason: 'unavailable' });
  assert.equal(p.next({ dialed: '2001', caller: phone }, second as NonNullable<typeof second>, 'unavailable', 1, state), undefined);
});

test('the fallback order is the config: voicemail first, or PSTN only', () => {
  const vmFirst = plan(homes(false, '+4930555001'), { fallback: ['voicemail', 'pstn'] }).route({ dialed: '2001', caller: phone }, state);
  assert.equal(vmFirst.target.kind, 'voicemail');
  const pstnOnly = plan(homes(false, '+4930555001'), { fallback: ['pstn'] });
  const d = pstnOnly.route({ dialed: '2001', caller: phone }, state);
  assert.equal(d.target.kind, 'external');
  assert.equal(pstnOnly.next({ dialed: '2001', caller: phone }, d, 'unavailable', 0, state), undefined);
  // No DID published: the PSTN step does not apply.
  const noDid = plan(homes(false)).route({ dialed: '2001', caller: phone }, state);
  assert.equal(noDid.target.kind, 'voicemail');
  const nothing = plan(homes(false), { fallback: [] }).route({ dialed: '2001', caller: phone }, state);
  assert.deepEqual(nothing.target, { kind: 'reject', status: 480, reason: 'Temporarily Unavailable' });
});

test("a peer that could not be reached falls back; its callee's busy or no answer is final", () => {
  const p = plan(homes(true, '+4930555001'));
  const d = p.route({ dialed: '2001', caller: phone }, state);
  assert.equal(p.next({ dialed: '2001', caller: phone }, d, 'busy', 0, state), undefined);
  assert.equal(p.next({ dialed: '2001', caller: phone }, d, 'no-answer', 0, state), undefined);
  assert.equal(p.next({ dialed: '2001', caller: phone }, d, 'unavailable', 0, state)?.target.kind, 'external');
});

test('a call from a peer is never relayed to another peer; local numbers still win', () => {
  const p = plan(homes(true));
  const fromPeer: Caller = { number: '3001', origin: 'peer' };
  assert.deepEqual(p.route({ dialed: '2001', caller: fromPeer }, state).target, { kind: 'reject', status: 404, reason: 'Not Found' });
  assert.equal(p.route({ dialed: '1001', caller: fromPeer }, state).target.kind, 'ring');
  // A peer may not dial out through this site's trunks either.
  assert.equal(p.route({ dialed: '+4930123456', caller: fromPeer }, state).target.kind, 'reject');
});

test('bad peers keys are config errors', () => {
  const minimal = { site: { id: 'a' }, sip: { domain: 'd' }, extensions: [] };
  assert.throws(() => configFromData({ ...minimal, peers: { trusted_networks: ['10.0.0.0/99'] } }, 'x.yaml'), /peers\.trusted_networks\[0\]/);
  assert.throws(() => configFromData({ ...minimal, peers: { fallback: ['pstn', 'fax'] } }, 'x.yaml'), /peers\.fallback/);
});
