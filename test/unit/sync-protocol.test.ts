// The wire contract: topics round-trip, payloads are checked at the edge with codes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { filters, HeaderFactory, parseAck, parseDesiredConfig, parseDirectory, parseFileData, parseFileStatus, parseRequest, parseTopic, parseUp, ProtocolError, topics } from '../../agent/sync/protocol.ts';

test('every topic builder is reversed by parseTopic', () => {
  assert.equal(topics.up('site-a', 'records'), 'branchline/v1/site/site-a/up/records');
  assert.deepEqual(parseTopic(topics.up('site-a', 'records')), { kind: 'up', site: 'site-a', stream: 'records' });
  assert.deepEqual(parseTopic(topics.siteState('s1')), { kind: 'siteState', site: 's1' });
  assert.deepEqual(parseTopic(topics.ack('s1')), { kind: 'ack', site: 's1' });
  assert.deepEqual(parseTopic(topics.desiredConfig('s1')), { kind: 'desiredConfig', site: 's1' });
  assert.deepEqual(parseTopic(topics.reportedConfig('s1')), { kind: 'reportedConfig', site: 's1' });
  assert.deepEqual(parseTopic(topics.siteCommand('s1')), { kind: 'siteCommand', site: 's1' });
  assert.deepEqual(parseTopic(topics.controllerState), { kind: 'controllerState' });
  assert.deepEqual(parseTopic(topics.controllerRequest), { kind: 'controllerRequest' });
  assert.deepEqual(parseTopic(topics.responses('c1')), { kind: 'responses', clientId: 'c1' });
});

test('topics outside the contract are not parsed', () => {
  for (const t of ['other/v1/site/a/state', 'branchline/v1/site/a/up/nonsense', 'branchline/v1/site/a/state/extra', 'branchline/v1/site/+/state', 'branchline/v2/controller/state']) {
    assert.equal(parseTopic(t), undefined, t);
  }
});

test('headers carry a fresh id, the boot, a per-channel sequence and the time', () => {
  let n = 0;
  const h = new HeaderFactory('boot-9', () => `id-${++n}`);
  const a = h.next('state');
  const b = h.next('state');
  const c = h.next('res');
  assert.deepEqual([a.id, b.id, c.id], ['id-1', 'id-2', 'id-3']);
  assert.deepEqual([a.seq, b.seq, c.seq], [1, 2, 1]);
  assert.equal(a.boot, 'boot-9');
  assert.equal(a.v, 1);
  assert.ok(Math.abs(a.ts - Date.now()) < 1000);
});

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError);
    return err.code;
  }
  return undefined;
}

test('malformed payloads are refused with a code', () => {
  const head = { v: 1, id: 'x', stream: 'records', seq: 1, boot: 'b', ts: 1 };
  assert.equal(code(() => parseUp('{nope')), 'EBADJSON');
  assert.equal(code(() => parseUp('[]')), 'EBADMESSAGE');
  assert.equal(code(() => parseUp(JSON.stringify({ ...head, site: 's', type: 't' }))), 'EBADMESSAGE'); // no data
  assert.equal(code(() => parseUp(JSON.stringify({ ...head, v: 2, site: 's', type: 't', data: 1 }))), 'EBADMESSAGE');
  assert.equal(code(() => parseUp(JSON.stringify({ ...head, stream: 'bogus', site: 's', type: 't', data: 1 }))), 'EBADMESSAGE');
  assert.equal(parseUp(JSON.stringify({ ...head, site: 's', type: 't', data: null })).data, null);
  assert.equal(code(() => parseAck(JSON.stringify({ ...head, stream: 'ack', ids: [1] }))), 'EBADMESSAGE');
  assert.equal(code(() => parseDesiredConfig(JSON.stringify({ ...head, stream: 'config', site: 's', version: 0, config: {} }))), 'EBADMESSAGE');
});

test('MQTT 5 response topic and correlation data win over the payload fields', () => {
  const req = { v: 1, id: 'r1', stream: 'cmd', seq: 1, boot: 'b', ts: 1, name: 'ping', response_topic: 'from/payload', correlation: 'p' };
  const fromPayload = parseRequest(JSON.stringify(req));
  assert.equal(fromPayload.response_topic, 'from/payload');
  assert.deepEqual(fromPayload.args, {});
  const fromProps = parseRequest(JSON.stringify(req), { responseTopic: 'from/props', correlationData: Buffer.from('c-9') });
  assert.equal(fromProps.response_topic, 'from/props');
  assert.equal(fromProps.correlation, 'c-9');
});

test('peer topics round-trip: directory and files between two named sites', () => {
  assert.equal(topics.directory('site-a'), 'branchline/v1/site/site-a/directory');
  assert.deepEqual(parseTopic(topics.directory('site-a')), { kind: 'directory', site: 'site-a' });
  assert.equal(topics.fileData('a', 'b'), 'branchline/v1/site/a/files/b/data');
  assert.deepEqual(parseTopic(topics.fileData('a', 'b')), { kind: 'fileData', from: 'a', to: 'b' });
  assert.deepEqual(parseTopic(topics.fileStatus('b', 'a')), { kind: 'fileStatus', from: 'b', to: 'a' });
  assert.equal(filters.fileDataTo('b'), 'branchline/v1/site/+/files/b/data');
  for (const t of ['branchline/v1/site/a/files/b/other', 'branchline/v1/site/a/files/b', 'branchline/v1/site/a/files/b c/data']) assert.equal(parseTopic(t), undefined, t);
});

test('directories and file messages are checked at the edge', () => {
  const head = { v: 1, id: 'x', seq: 1, boot: 'b', ts: 1 };
  const dir = { ...head, stream: 'directory', site: 's', version: 3, sip: { address: '10.0.0.1:5060', domain: 'd', transport: 'udp' }, extensions: [{ number: '1001' }], dids: [{ number: '+15550100', extension: '1001' }] };
  assert.equal(parseDirectory(JSON.stringify(dir)).version, 3);
  assert.equal(code(() => parseDirectory(JSON.stringify({ ...dir, version: 0 }))), 'EBADMESSAGE');
  assert.equal(code(() => parseDirectory(JSON.stringify({ ...dir, sip: { ...dir.sip, transport: 'sctp' } }))), 'EBADMESSAGE');
  assert.equal(code(() => parseDirectory(JSON.stringify({ ...dir, extensions: [{ number: 'abc' }] }))), 'EBADMESSAGE');

  const file = { ...head, stream: 'files', transfer: 't1', from: 'a', to: 'b' };
  const digest = 'a'.repeat(64);
  const manifest = { ...file, kind: 'manifest', type: 'voicemail', meta: {}, size: 10, sha256: digest, chunk_size: 4, chunks: [digest, digest, digest] };
  assert.equal(parseFileData(JSON.stringify(manifest)).kind, 'manifest');
  assert.equal(code(() => parseFileData(JSON.stringify({ ...manifest, chunks: [digest] }))), 'EBADMESSAGE'); // 10 bytes in chunks of 4 are 3 chunks
  assert.equal(code(() => parseFileData(JSON.stringify({ ...manifest, sha256: 'xyz' }))), 'EBADMESSAGE');
  assert.equal(code(() => parseFileData(JSON.stringify({ ...file, kind: 'chunk', index: -1, data: '' }))), 'EBADMESSAGE');
  assert.equal(code(() => parseFileData(JSON.stringify({ ...file, kind: 'nonsense' }))), 'EBADMESSAGE');
  assert.equal(code(() => parseFileData(JSON.stringify({ ...file, stream: 'records', kind: 'chunk', index: 0, data: '' }))), 'EBADMESSAGE');
  assert.equal(parseFileStatus(JSON.stringify({ ...file, kind: 'status', state: 'receiving', have: 2 })).kind, 'status');
  assert.equal(code(() => parseFileStatus(JSON.stringify({ ...file, kind: 'status', state: 'done', have: 2 }))), 'EBADMESSAGE');
  assert.equal(code(() => parseFileStatus(JSON.stringify({ ...file, kind: 'state', change: 'c', state: 'lost', at: 1 }))), 'EBADMESSAGE');
});
