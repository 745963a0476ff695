// What the dial plan is told about numbers homed at peers (agent/calls/peer-routes.ts):
// the peer's address and DID from the directory, and whether the WAN may be used now
// by health's account (probes, link, survivable mode and why).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeerRoutes, type WanView } from '../../agent/calls/peer-routes.ts';
import type { PeerHome } from '../../agent/sync/protocol.ts';

const homes = new Map<string, PeerHome>([
  ['2001', { siteId: 'site-b', sipAddress: '198.18.2.2:5060', domain: 'b.test', transport: 'udp', presence: 'online', reachable: true, kind: 'extension', extension: '2001', did: '+15550202001' }],
  ['+15550202009', { siteId: 'site-b', sipAddress: '198.18.2.2:5060', domain: 'b.test', transport: 'udp', presence: 'online', reachable: true, kind: 'did', did: '+15550202009', extension: '600' }],
  ['1001', { siteId: 'site-a', sipAddress: '198.18.1.2:5060', domain: 'a.test', transport: 'udp', presence: 'online', reachable: true, kind: 'extension', extension: '1001' }],
]);
const directory = { site: 'site-a', homeOf: (n: string) => homes.get(n) };
const routes = (wan?: WanView) => new PeerRoutes({ directory: () => directory, wan: () => wan });
const good: WanView = { mode: 'normal', signals: { link: 'up', controller: 'online', probes: 'ok' } };

test('a peer number comes with the address to call and its DID; a DID is dialled as what it rings', () => {
  assert.deepEqual(routes(good).homeOf('2001'), { site: 'site-b', number: '2001', address: '198.18.2.2:5060', transport: 'udp', domain: 'b.test', reachable: true, did: '+15550202001' });
  assert.equal(routes(good).homeOf('+15550202009')?.number, '600');
  assert.equal(routes(good).homeOf('1001'), undefined, "this site's own numbers are not a peer's");
  assert.equal(routes(good).homeOf('7777'), undefined);
});

test('the WAN by health: failing probes or a dead link make every peer unreachable at once', () => {
  assert.equal(routes({ mode: 'normal', signals: { link: 'up', controller: 'online', probes: 'failed' } }).homeOf('2001')?.reachable, false);
  assert.equal(routes({ mode: 'normal', signals: { link: 'down', controller: 'online', probes: 'ok' } }).homeOf('2001')?.reachable, false);
});

test('survivable mode: peers wait out the hold-down after the WAN returns, but not a missing controller', () => {
  assert.equal(routes({ mode: 'survivable', signals: { link: 'up', controller: 'online', probes: 'ok' } }).homeOf('2001')?.reachable, false, 'hold-down');
  assert.equal(routes({ mode: 'survivable', signals: { link: 'up', controller: 'offline', probes: 'ok' } }).homeOf('2001')?.reachable, true, 'controller down, WAN fine');
  assert.equal(routes(undefined).homeOf('2001')?.reachable, true, 'no health monitor: the directory decides');
});

test('the directory’s own verdict (presence, our link) stands', () => {
  const offline = { ...directory, homeOf: (n: string) => (n === '2001' ? { ...(homes.get('2001') as PeerHome), presence: 'offline' as const, reachable: false } : undefined) };
  assert.equal(new PeerRoutes({ directory: () => offline, wan: () => good }).homeOf('2001')?.reachable, false);
});
