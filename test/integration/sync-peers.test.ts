// The peers directory over a real Mosquitto, two sites in this process on real
// SQLite files: each finds the other's extensions and DIDs with homeOf(), a change
// gets a new version, and the cached directory answers while the broker is down and
// after a restart without it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { startTestSite, waitFor, type TestSite } from '../helpers/site-sync.ts';

let broker: MosquittoHandle;
const sites: TestSite[] = [];

async function site(id: string, extensions: string[], config: { peers?: Record<string, unknown>; dids?: Array<Record<string, unknown>> } = {}, dir?: string): Promise<TestSite> {
  const s = await startTestSite({ id, broker: broker.url, extensions: extensions.map((number) => ({ number, name: `User ${number}` })), ...config, ...(dir ? { dir } : {}) });
  sites.push(s);
  return s;
}

before(async () => {
  broker = await startMosquitto();
});

after(async () => {
  for (const s of sites) await s.cleanup();
  await broker?.cleanup();
});

test('each site finds the home of the other site’s extensions and DIDs', async () => {
  const a = await site('site-a', ['1001', '1002'], { peers: { sip_address: '198.18.0.1:5060' }, dids: [{ number: '+15550101001', extension: '1001' }] });
  const b = await site('site-b', ['2001'], { peers: { sip_address: '198.18.1.1:5070', transport: 'tcp' }, dids: [{ number: '+15550202000', extension: '2001' }] });

  const fromA = await waitFor('site-b in site-a’s directory', () => a.peers.homeOf('2001')?.reachable && a.peers.homeOf('2001'));
  assert.deepEqual(fromA, { siteId: 'site-b', sipAddress: '198.18.1.1:5070', domain: 'site-b.test', transport: 'tcp', presence: 'online', reachable: true, kind: 'extension', extension: '2001', did: '+15550202000' });
  assert.deepEqual(a.peers.homeOf('+15550202000'), { siteId: 'site-b', sipAddress: '198.18.1.1:5070', domain: 'site-b.test', transport: 'tcp', presence: 'online', reachable: true, kind: 'did', did: '+15550202000', extension: '2001' });

  const fromB = await waitFor('site-a in site-b’s directory', () => b.peers.homeOf('1001')?.reachable && b.peers.homeOf('1001'));
  // The PSTN fallback needs the extension's DID: it travels with the extension.
  assert.deepEqual(fromB, { siteId: 'site-a', sipAddress: '198.18.0.1:5060', domain: 'site-a.test', transport: 'udp', presence: 'online', reachable: true, kind: 'extension', extension: '1001', did: '+15550101001' });
  assert.equal(b.peers.homeOf('+15550101001')?.extension, '1001');
  assert.equal(b.peers.homeOf('1002')?.siteId, 'site-a');
  assert.equal(a.peers.homeOf('1001')?.siteId, 'site-a', 'a site is home for its own numbers');
  assert.equal(a.peers.homeOf('9999'), undefined);
  assert.deepEqual(
    a.peers.list().map((p) => [p.site, p.version, p.extensions, p.dids, p.presence]),
    [
      ['site-a', 1, 2, 1, 'online'],
      ['site-b', 1, 1, 1, 'online'],
    ],
  );

  // The retained directory a late peer gets from the broker, as published.
  const late = await mqtt.connectAsync(broker.url, { clientId: 'late-peer', protocolVersion: 5 });
  const got: Array<{ topic: string; retain: boolean; qos: number; body: Record<string, unknown> }> = [];
  late.on('message', (topic, payload, packet) => got.push({ topic, retain: packet.retain, qos: packet.qos, body: JSON.parse(payload.toString()) as Record<string, unknown> }));
  await late.subscribeAsync('branchline/v1/site/site-b/directory', { qos: 1 });
  const dir = await waitFor('the retained directory', () => got[0]);
  await late.endAsync();
  assert.equal(dir.retain, true);
  assert.equal(dir.qos, 1);
  assert.deepEqual(
    { ...dir.body, id: 'ID', seq: 'SEQ', ts: 'TS', boot: 'BOOT' },
    {
      v: 1,
      id: 'ID',
      stream: 'directory',
      seq: 'SEQ',
      boot: 'BOOT',
      ts: 'TS',
      site: 'site-b',
      version: 1,
      sip: { address: '198.18.1.1:5070', domain: 'site-b.test', transport: 'tcp' },
      extensions: [{ number: '2001', name: 'User 2001', did: '+15550202000' }],
      dids: [{ number: '+15550202000', extension: '2001' }],
    },
  );
});

test('a changed directory gets a new version; a restart with the same content keeps it', async () => {
  const [a, b] = sites as [TestSite, TestSite];
  const dirB = b.dir;
  await b.stop();
  await waitFor('site-b offline at site-a (clean stop)', () => a.peers.homeOf('2001')?.presence === 'offline');
  assert.equal(a.peers.homeOf('2001')?.reachable, false);

  const b2 = await site('site-b', ['2001', '2002'], { peers: { sip_address: '198.18.1.1:5070', transport: 'tcp' }, dids: [{ number: '+15550202000', extension: '2001' }] }, dirB);
  assert.equal(b2.peers.version, 2);
  await waitFor('site-b v2 at site-a', () => a.peers.homeOf('2002')?.reachable);
  assert.equal(a.peers.list().find((p) => p.site === 'site-b')?.version, 2);

  await b2.stop();
  const b3 = await site('site-b', ['2001', '2002'], { peers: { sip_address: '198.18.1.1:5070', transport: 'tcp' }, dids: [{ number: '+15550202000', extension: '2001' }] }, dirB);
  assert.equal(b3.peers.version, 2, 'same content, same version');
  await waitFor('site-b back online at site-a', () => a.peers.homeOf('2001')?.presence === 'online');
});

test('a site whose state was wiped moves past its retained version; older directories and claimed numbers do not win', async () => {
  const a = sites[0] as TestSite;
  const held = a.peers.list().find((p) => p.site === 'site-b')?.version as number;
  for (const s of sites.filter((x) => x.id === 'site-b')) await s.stop();
  // site-b comes back from a fresh disk: its own counter says 1, the broker holds `held`.
  const fresh = await site('site-b', ['2001', '2002', '2003'], { peers: { sip_address: '198.18.1.1:5070', transport: 'tcp' }, dids: [{ number: '+15550202000', extension: '2001' }] });
  await waitFor('site-b past its retained version', () => fresh.peers.version === held + 1);
  await waitFor('the new content at site-a', () => a.peers.homeOf('2003')?.reachable);
  assert.equal(a.peers.list().find((p) => p.site === 'site-b')?.version, held + 1);

  // A stale copy (a replayed retained message) is ignored.
  const replay = await mqtt.connectAsync(broker.url, { clientId: 'replayer', protocolVersion: 5 });
  const stale = { v: 1, id: 'old', stream: 'directory', seq: 1, boot: 'old', ts: 1, site: 'site-b', version: 1, sip: { address: '203.0.113.9:5060', domain: 'old', transport: 'udp' }, extensions: [{ number: '2001' }], dids: [] };
  await replay.publishAsync('branchline/v1/site/site-b/directory', Buffer.from(JSON.stringify(stale)), { qos: 1 });
  await waitFor('the stale directory logged', () => a.lines.some((l) => l['event'] === 'peers.stale_directory' && l['site'] === 'site-b'));
  assert.equal(a.peers.homeOf('2001')?.sipAddress, '198.18.1.1:5070');

  // site-c claims 2001 too: the lowest site id keeps it, and the conflict is logged.
  const c = await site('site-c', ['2001', '3001']);
  await waitFor('site-c at site-a', () => a.peers.homeOf('3001')?.reachable);
  assert.equal(a.peers.homeOf('2001')?.siteId, 'site-b');
  assert.ok(a.lines.some((l) => l['event'] === 'peers.conflict'));
  // Retired: an empty retained directory removes site-c everywhere.
  await c.stop();
  await replay.publishAsync('branchline/v1/site/site-c/directory', Buffer.alloc(0), { qos: 1, retain: true });
  await waitFor('site-c gone from site-a', () => a.peers.homeOf('3001') === undefined);
  await replay.endAsync();
  // Put site-b's retained copy back in front of the replayed one for the next test.
  await fresh.stop();
  await site('site-b', ['2001', '2002', '2003'], { peers: { sip_address: '198.18.1.1:5070', transport: 'tcp' }, dids: [{ number: '+15550202000', extension: '2001' }] }, fresh.dir);
  await waitFor('site-b back', () => a.peers.homeOf('2002')?.reachable);
});

test('the cached directory answers while the broker is down and after a restart without it', async () => {
  const a = sites[0] as TestSite;
  const dirA = a.dir;
  await broker.kill();
  await waitFor('site-a to lose its link', () => !a.siteSync.sync?.linkUp);
  // Known, but not reachable: the dial plan falls back to the PSTN or voicemail.
  assert.deepEqual(
    { ...a.peers.homeOf('2002'), presence: 'any' },
    { siteId: 'site-b', sipAddress: '198.18.1.1:5070', domain: 'site-b.test', transport: 'tcp', presence: 'any', reachable: false, kind: 'extension', extension: '2002' },
  );

  // Restart site-a with no broker at all: the directory comes from its SQLite file.
  await a.stop();
  const a2 = await site('site-a', ['1001', '1002'], { peers: { sip_address: '198.18.0.1:5060' }, dids: [{ number: '+15550101001', extension: '1001' }] }, dirA);
  assert.equal(a2.siteSync.sync?.linkUp, false);
  assert.equal(a2.peers.homeOf('2002')?.siteId, 'site-b');
  assert.equal(a2.peers.homeOf('2002')?.sipAddress, '198.18.1.1:5070');
  assert.equal(a2.peers.homeOf('+15550202000')?.siteId, 'site-b');
  assert.equal(a2.peers.homeOf('2002')?.reachable, false);

  // The broker comes back (without its retained store): presence and reachability return.
  await broker.start();
  await waitFor('site-b reachable again from site-a', () => a2.peers.homeOf('2002')?.reachable, 20_000);
});
