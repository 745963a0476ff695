// Which INVITEs are a peer site's (agent/calls/peer-trust.ts): the site named in
// X-Branchline-Site, from the address it published in the peers directory (over UDP
// the port too), inside peers.trusted_networks when set. Everything else is a phone's
// and must authenticate.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeerTrust } from '../../agent/calls/peer-trust.ts';
import type { PeerSummary } from '../../agent/sync/protocol.ts';

function summary(site: string, sip_address: string): PeerSummary {
  return { site, version: 1, sip_address, extensions: 1, dids: 0, presence: 'online', presence_since: null, received_at: 0 };
}

const peers = [summary('site-a', '198.18.1.2:5060'), summary('site-b', '198.18.2.2:5060'), summary('site-v6', '[2001:db8::7]:5070')];
const trust = (networks: string[] = []): PeerTrust => new PeerTrust({ peers: () => peers, ownSite: 'site-b', trustedNetworks: networks });
const udp = (address: string, port = 5060) => ({ transport: 'udp', address, port });

test('a peer is the site it names, from the address it published', () => {
  assert.equal(trust().siteOf(udp('198.18.1.2'), 'site-a'), 'site-a');
  assert.equal(trust().siteOf(udp('2001:db8::7', 5070), 'site-v6'), 'site-v6');
  // TCP: the connection's port is ephemeral; the host decides.
  assert.equal(trust().siteOf({ transport: 'tcp', address: '198.18.1.2', port: 41234 }, 'site-a'), 'site-a');
});

test('no header, another site’s address, another port, an unknown or our own site: not a peer', () => {
  assert.equal(trust().siteOf(udp('198.18.1.2'), undefined), undefined, 'a phone on the peer’s host without the header');
  assert.equal(trust().siteOf(udp('198.18.1.2', 40000), 'site-a'), undefined, 'a phone on the same host, another port');
  assert.equal(trust().siteOf(udp('198.18.9.9'), 'site-a'), undefined, 'site-a’s name from elsewhere');
  assert.equal(trust().siteOf(udp('198.18.2.2'), 'site-b'), undefined, 'our own name');
  assert.equal(trust().siteOf(udp('198.18.1.2'), 'site-x'), undefined, 'a site nobody published');
});

test('peers.trusted_networks narrows who may be a peer; a bad CIDR is a clear error', () => {
  assert.equal(trust(['198.18.0.0/16']).siteOf(udp('198.18.1.2'), 'site-a'), 'site-a');
  assert.equal(trust(['10.0.0.0/8']).siteOf(udp('198.18.1.2'), 'site-a'), undefined);
  assert.throws(() => trust(['198.18.0.0']), /198\.18\.0\.0.*address\/prefix/);
});
