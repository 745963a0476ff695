// File transfer between two sites over a real Mosquitto, both in this process on
// real SQLite files: a real file arrives byte for byte and is indexed once; a chunk
// corrupted in transit is caught by its hash and sent again; a file queued while its
// home site is down goes when it returns; heard/deleted flows back once; bad input
// gets a coded error.
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import mqtt from 'mqtt';
import type { ReceivedFile } from '../../agent/sync/files/receiver.ts';
import type { RemoteStateChange } from '../../agent/sync/files/remote-state.ts';
import type { TransferOutcome } from '../../agent/sync/files/sender.ts';
import { encode, parseFileData, topics, type FileChunk } from '../../agent/sync/protocol.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { startTestSite, waitFor, type TestSite } from '../helpers/site-sync.ts';

let broker: MosquittoHandle;
let a: TestSite;
let b: TestSite;
const outcomes: TransferOutcome[] = [];
const indexedAtB: ReceivedFile[] = [];
const statesAtA: RemoteStateChange[] = [];
const sha = (buf: Buffer): string => createHash('sha256').update(buf).digest('hex');

/** Home site: voicemail files are indexed into a table without a key, so a second index would show. */
async function receiveVoicemail(site: TestSite, seen: ReceivedFile[]): Promise<void> {
  await site.db.exec('CREATE TABLE IF NOT EXISTS test_vm_index (id TEXT NOT NULL, path TEXT NOT NULL, caller TEXT)');
  site.files.handle('voicemail', {
    index: (f) => [{ sql: 'INSERT INTO test_vm_index (id, path, caller) VALUES (?, ?, ?)', params: [f.id, f.path, String(f.meta['caller'])] }],
    indexed: (f) => seen.push(f),
  });
}

/** Origin site: remote state changes are applied into a table without a key. */
async function followRemoteState(site: TestSite, seen: RemoteStateChange[]): Promise<void> {
  await site.db.exec('CREATE TABLE IF NOT EXISTS test_vm_state (id TEXT NOT NULL, state TEXT NOT NULL)');
  site.files.handle('voicemail', {
    index: () => {
      throw new Error('origin does not take voicemail in this test');
    },
    onRemoteState: (c) => {
      seen.push(c);
      return [{ sql: 'INSERT INTO test_vm_state (id, state) VALUES (?, ?)', params: [c.id, c.state] }];
    },
  });
}

function writeRandomFile(dir: string, name: string, bytes: number): { file: string; data: Buffer } {
  const data = randomBytes(bytes);
  const file = path.join(dir, name);
  writeFileSync(file, data);
  return { file, data };
}

before(async () => {
  broker = await startMosquitto();
  const files = { chunk_size: 16 * 1024, window: 4, status_timeout: 1 };
  a = await startTestSite({ id: 'vm-a', broker: broker.url, extensions: [{ number: '1001' }], peers: { files } });
  b = await startTestSite({ id: 'vm-b', broker: broker.url, extensions: [{ number: '2001' }], peers: { files } });
  await receiveVoicemail(b, indexedAtB);
  await followRemoteState(a, statesAtA);
  a.files.onOutcome((o) => outcomes.push(o));
  await waitFor('each site reachable from the other', () => a.peers.reachable('vm-b') && b.peers.reachable('vm-a'));
});

after(async () => {
  await a?.cleanup();
  await b?.cleanup();
  await broker?.cleanup();
});

test('a real file arrives byte for byte, verified, and is indexed exactly once', async () => {
  const { file, data } = writeRandomFile(a.dir, 'msg-1.wav', 300_000);
  const queued = await a.files.forwardFile('vm-b', file, { id: 'msg-1', type: 'voicemail', meta: { caller: '1001', mailbox: '2001' } });
  assert.deepEqual(queued, { id: 'msg-1', size: 300_000, sha256: sha(data), chunks: 19, queued: true });
  await waitFor('delivered', () => outcomes.find((o) => o.id === 'msg-1'));
  assert.deepEqual(outcomes.find((o) => o.id === 'msg-1'), { id: 'msg-1', to: 'vm-b', state: 'delivered' });

  const rows = await b.db.all<{ id: string; path: string; caller: string }>('SELECT * FROM test_vm_index');
  assert.equal(rows.length, 1);
  assert.equal(rows[0]?.id, 'msg-1');
  assert.equal(rows[0]?.caller, '1001');
  assert.equal(rows[0]?.path, path.join(b.dir, 'files', 'incoming', 'vm-a', 'msg-1'));
  assert.ok(readFileSync(rows[0]!.path).equals(data), 'the stored file is the sent file');
  assert.equal(indexedAtB.length, 1);

  // Forwarding the same message again is a no-op, and a manifest resent by hand is answered "complete" without a second index.
  assert.equal((await a.files.forwardFile('vm-b', file, { id: 'msg-1', type: 'voicemail' })).queued, false);
  await a.db.run("UPDATE file_transfers_out SET state = 'queued', acked = 0 WHERE id = 'msg-1'");
  a.files.sender.kick('vm-b');
  await waitFor('delivered again (answered from the index)', () => outcomes.filter((o) => o.id === 'msg-1').length === 2);
  assert.equal((await b.db.all('SELECT * FROM test_vm_index')).length, 1);

  const listA = await a.files.list();
  assert.deepEqual(listA.outgoing.map((o) => [o.transfer, o.to, o.state, o.acked_chunks, o.chunks]), [['msg-1', 'vm-b', 'delivered', 19, 19]]);
  const listB = await b.files.list();
  assert.deepEqual(listB.incoming.map((o) => [o.transfer, o.from, o.state, o.have, o.chunks]), [['msg-1', 'vm-a', 'indexed', 19, 19]]);
});

test('a chunk corrupted in transit is refused by its hash and sent again', async () => {
  // A client on the path publishes a damaged chunk 0 as soon as it sees the manifest,
  // ahead of the real one (which waits for the receiver's answer to the manifest).
  const mitm = await mqtt.connectAsync(broker.url, { clientId: 'mitm', protocolVersion: 5 });
  const statuses: Array<Record<string, unknown>> = [];
  let injected = 0;
  mitm.on('message', (topic, payload) => {
    if (topic === topics.fileStatus('vm-b', 'vm-a')) {
      statuses.push(JSON.parse(payload.toString()) as Record<string, unknown>);
      return;
    }
    const msg = parseFileData(payload);
    if (msg.kind !== 'manifest' || msg.transfer !== 'msg-2' || injected > 0) return;
    injected++;
    const bad: FileChunk = { v: 1, id: 'forged', stream: 'files', seq: 1, boot: 'mitm', ts: Date.now(), kind: 'chunk', transfer: 'msg-2', from: 'vm-a', to: 'vm-b', index: 0, data: randomBytes(16 * 1024).toString('base64') };
    void mitm.publishAsync(topics.fileData('vm-a', 'vm-b'), encode(bad), { qos: 1 });
  });
  await mitm.subscribeAsync([topics.fileData('vm-a', 'vm-b'), topics.fileStatus('vm-b', 'vm-a')], { qos: 1 });

  const { file, data } = writeRandomFile(a.dir, 'msg-2.wav', 100_000);
  await a.files.forwardFile('vm-b', file, { id: 'msg-2', type: 'voicemail', meta: { caller: '1002' } });
  await waitFor('delivered', () => outcomes.find((o) => o.id === 'msg-2'));
  await mitm.endAsync();

  assert.equal(injected, 1);
  const refusal = statuses.find((s) => s['transfer'] === 'msg-2' && (s['error'] as { code?: string } | undefined)?.code === 'ECHUNKHASH');
  assert.ok(refusal, `the receiver reported the bad chunk: ${JSON.stringify(statuses)}`);
  assert.equal(refusal['have'], 0);
  assert.ok(b.lines.some((l) => l['event'] === 'files.bad_chunk' && l['id'] === 'msg-2'));
  const rows = await b.db.all<{ path: string }>("SELECT path FROM test_vm_index WHERE id = 'msg-2'");
  assert.equal(rows.length, 1);
  assert.ok(readFileSync(rows[0]!.path).equals(data));
});

test('a file for a site that is down waits, and goes when the site returns', async () => {
  const dirB = b.dir;
  await b.stop();
  await waitFor('vm-b unreachable from vm-a', () => !a.peers.reachable('vm-b'));
  const { file, data } = writeRandomFile(a.dir, 'msg-3.wav', 50_000);
  await a.files.forwardFile('vm-b', file, { id: 'msg-3', type: 'voicemail', meta: { caller: '1001' } });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(outcomes.find((o) => o.id === 'msg-3'), undefined);
  assert.deepEqual((await a.files.list()).outgoing.find((o) => o.transfer === 'msg-3')?.state, 'queued');

  b = await startTestSite({ id: 'vm-b', broker: broker.url, dir: dirB, extensions: [{ number: '2001' }], peers: { files: { chunk_size: 16 * 1024, window: 4, status_timeout: 1 } } });
  await receiveVoicemail(b, indexedAtB);
  await waitFor('delivered after vm-b returned', () => outcomes.find((o) => o.id === 'msg-3'));
  const rows = await b.db.all<{ path: string }>("SELECT path FROM test_vm_index WHERE id = 'msg-3'");
  assert.equal(rows.length, 1);
  assert.ok(readFileSync(rows[0]!.path).equals(data));
});

test('heard and deleted at the home site flow back to the origin once', async () => {
  assert.deepEqual(await b.files.setRemoteState('msg-1', 'heard', 1000).then((r) => r.to), 'vm-a');
  await b.files.setRemoteState('msg-1', 'deleted', 2000);
  await waitFor('both changes at vm-a', async () => (await a.db.all('SELECT * FROM test_vm_state')).length === 2);
  await waitFor('vm-b forgets acknowledged changes', async () => (await b.db.all('SELECT * FROM file_state_out')).length === 0);
  assert.deepEqual(
    statesAtA.map((c) => [c.id, c.from, c.type, c.state, c.at]),
    [
      ['msg-1', 'vm-b', 'voicemail', 'heard', 1000],
      ['msg-1', 'vm-b', 'voicemail', 'deleted', 2000],
    ],
  );
  await assert.rejects(b.files.setRemoteState('never-received', 'heard'), (err: Error & { code?: string }) => err.code === 'ENOTFOUND');
});

test('bad requests get coded errors; an oversize file is refused by the receiver', async () => {
  const { file } = writeRandomFile(a.dir, 'x.wav', 10);
  await assert.rejects(a.files.forwardFile('vm-b', file, { id: '../escape', type: 'voicemail' }), (e: Error & { code?: string }) => e.code === 'EBADARGS');
  await assert.rejects(a.files.forwardFile('not a site', file, { id: 'm9', type: 'voicemail' }), (e: Error & { code?: string }) => e.code === 'EBADARGS');
  await assert.rejects(a.files.forwardFile('vm-a', file, { id: 'm9', type: 'voicemail' }), (e: Error & { code?: string }) => e.code === 'EBADARGS');
  await assert.rejects(a.files.forwardFile('vm-b', path.join(a.dir, 'missing.wav'), { id: 'm9', type: 'voicemail' }), (e: Error & { code?: string }) => e.code === 'ENOFILE');
  const other = writeRandomFile(a.dir, 'other.wav', 20);
  await assert.rejects(a.files.forwardFile('vm-b', other.file, { id: 'msg-1', type: 'voicemail' }), (e: Error & { code?: string }) => e.code === 'EDUPLICATE');

  // vm-b takes at most 1 KiB of "fax" files.
  const dirB = b.dir;
  await b.stop();
  b = await startTestSite({ id: 'vm-b', broker: broker.url, dir: dirB, extensions: [{ number: '2001' }], peers: { files: { max_bytes: 1024 } } });
  b.files.handle('fax', { index: () => [] });
  await waitFor('vm-b reachable', () => a.peers.reachable('vm-b'));
  const big = writeRandomFile(a.dir, 'big.tif', 4096);
  await a.files.forwardFile('vm-b', big.file, { id: 'fax-1', type: 'fax' });
  const failed = await waitFor('refused', () => outcomes.find((o) => o.id === 'fax-1'));
  assert.equal(failed.state, 'failed');
  assert.match(failed.state === 'failed' ? failed.error : '', /^ETOOBIG/);
});
