// Peers under the broker ACL the controller generates for claimed sites
// (controller/broker-auth.ts) on a real Mosquitto: each site reads every directory
// and presence and the files addressed to it, and publishes only under its own name —
// a directory forged under another site's name never reaches anyone.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import { mosquittoPasswordHash, writeBrokerFiles } from '../../controller/broker-auth.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { startTestSite, waitFor, type TestSite } from '../helpers/site-sync.ts';

let dir: string;
let broker: MosquittoHandle;
const sites: TestSite[] = [];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'bl-peers-acl-'));
  const user = (username: string) => ({ username, passwordHash: mosquittoPasswordHash(`pw-${username}`) });
  writeBrokerFiles(dir, { controller: user('controller'), sites: [user('acl-a'), user('acl-b')] });
  // `user root`: the suite runs as root and Mosquitto would otherwise drop to a user who cannot read the 0640 files.
  broker = await startMosquitto({ extraConfig: ['user root', `password_file ${path.join(dir, 'passwd')}`, `acl_file ${path.join(dir, 'acl')}`] });
  for (const [id, ext] of [['acl-a', '1001'], ['acl-b', '2001']] as const) {
    sites.push(await startTestSite({ id, broker: broker.url, extensions: [{ number: ext }], mqtt: { username: id, password: `pw-${id}` }, peers: { files: { status_timeout: 1 } } }));
  }
});

after(async () => {
  for (const s of sites) await s.cleanup();
  await broker?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

test('directory, presence and a file transfer work under the generated ACL', async () => {
  const [a, b] = sites as [TestSite, TestSite];
  await waitFor('each site sees the other', () => a.peers.homeOf('2001')?.reachable && b.peers.homeOf('1001')?.reachable);
  await b.db.exec('CREATE TABLE got (id TEXT)');
  b.files.handle('voicemail', { index: (f) => [{ sql: 'INSERT INTO got (id) VALUES (?)', params: [f.id] }] });
  const data = randomBytes(200_000);
  const file = path.join(a.dir, 'vm.wav');
  writeFileSync(file, data);
  await a.files.forwardFile('acl-b', file, { id: 'acl-vm-1', type: 'voicemail' });
  const row = await waitFor('indexed at acl-b', async () => (await b.db.all<{ id: string }>('SELECT id FROM got'))[0]);
  assert.equal(row.id, 'acl-vm-1');
  const stored = (await b.files.list()).incoming[0];
  assert.equal(stored?.state, 'indexed');
  assert.ok(readFileSync(path.join(b.dir, 'files', 'incoming', 'acl-a', 'acl-vm-1')).equals(data));
});

test("a site cannot publish a directory under another site's name", async () => {
  const [a] = sites as [TestSite, TestSite];
  const forger = await mqtt.connectAsync(broker.url, { clientId: 'forger', username: 'acl-b', password: 'pw-acl-b', protocolVersion: 5 });
  const forged = { v: 1, id: 'f', stream: 'directory', seq: 1, boot: 'f', ts: Date.now(), site: 'acl-a', version: 99, sip: { address: '203.0.113.66:5060', domain: 'evil', transport: 'udp' }, extensions: [{ number: '1001' }], dids: [] };
  try {
    // MQTT 5: Mosquitto answers the PUBLISH with "Not authorized" and delivers it to no one.
    await assert.rejects(forger.publishAsync('branchline/v1/site/acl-a/directory', Buffer.from(JSON.stringify(forged)), { qos: 1, retain: true }), /Not authorized/);
  } finally {
    await forger.endAsync();
  }
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(a.peers.version < 99, true);
  const watcher = await mqtt.connectAsync(broker.url, { clientId: 'watcher', username: 'controller', password: 'pw-controller', protocolVersion: 5 });
  const retained: Array<Record<string, unknown>> = [];
  watcher.on('message', (_t, p) => retained.push(JSON.parse(p.toString()) as Record<string, unknown>));
  await watcher.subscribeAsync('branchline/v1/site/acl-a/directory', { qos: 1 });
  await waitFor('the retained directory of acl-a', () => retained[0]);
  await watcher.endAsync();
  assert.equal(retained[0]?.['version'], a.peers.version, 'the retained copy is the real one');
  assert.equal((retained[0]?.['sip'] as { address: string }).address, '127.0.0.1:5060');
});
