// File transfer survives kill -9 of either side: two sites as their own processes
// (test/fixtures/file-peer.ts: the real SiteSync over real SQLite files) and a real
// Mosquitto. The killed side restarts on the same state; the transfer resumes from
// the last chunk the receiver holds (not from zero), the file arrives byte for byte
// and is indexed exactly once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { Database } from '../../agent/store/db.ts';
import { topics } from '../../agent/sync/protocol.ts';
import { REPO_ROOT } from '../helpers/agent.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { isRunning, killNow, stopProcess, track, waitExit } from '../helpers/proc.ts';
import { waitFor } from '../helpers/site-sync.ts';

const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'file-peer.ts');
const CHUNK = 8192;
const SIZE = 3 * 1024 * 1024; // 384 chunks: long enough to be cut in the middle

interface Peer {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
}

let broker: MosquittoHandle;
let work: string;
let observer: MqttClient;
const peers: Peer[] = [];
/** Every chunk index sent, and every `have` reported, as the broker carried them. */
const sent: Array<{ transfer: string; index: number; at: number }> = [];
const reported: Array<{ transfer: string; have: number }> = [];

function startPeer(site: string, extra: string[] = []): Promise<Peer> {
  const child = spawn(process.execPath, [FIXTURE, '--site', site, '--broker', broker.url, '--dir', path.join(work, site), '--chunk-size', String(CHUNK), '--window', '2', '--status-timeout', '1', ...extra], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(child);
  const peer: Peer = { child, lines: [] };
  peers.push(peer);
  let partial = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    partial += d;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (text.trim()) peer.lines.push(JSON.parse(text) as Record<string, unknown>);
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => (stderr += d));
  return waitFor(`${site} ready`, () => {
    if (!isRunning(child)) throw new Error(`${site} exited: ${stderr}`);
    return peer.lines.some((l) => l['event'] === 'ready') && peer;
  });
}

async function indexedRows(site: string, id: string): Promise<Array<{ id: string; path: string }>> {
  const db = await Database.open(path.join(work, site, 'branchline.sqlite'), { readonly: true });
  try {
    return await db.all<{ id: string; path: string }>('SELECT id, path FROM test_vm_index WHERE id = ?', [id]);
  } finally {
    await db.close();
  }
}

function source(name: string): { file: string; sha: string } {
  const data = randomBytes(SIZE);
  const file = path.join(work, name);
  writeFileSync(file, data);
  return { file, sha: createHash('sha256').update(data).digest('hex') };
}

const maxHave = (id: string): number => Math.max(0, ...reported.filter((r) => r.transfer === id).map((r) => r.have));

before(async () => {
  broker = await startMosquitto();
  work = mkdtempSync(path.join(tmpdir(), 'bl-files-crash-'));
  observer = await mqtt.connectAsync(broker.url, { clientId: 'files-observer', protocolVersion: 5 });
  observer.on('message', (topic, payload) => {
    const m = JSON.parse(payload.toString()) as { kind: string; transfer: string; index?: number; have?: number };
    if (m.kind === 'chunk') sent.push({ transfer: m.transfer, index: m.index as number, at: Date.now() });
    if (m.kind === 'status') reported.push({ transfer: m.transfer, have: m.have as number });
  });
  await observer.subscribeAsync([topics.fileData('crash-a', 'crash-b'), topics.fileStatus('crash-b', 'crash-a')], { qos: 1 });
});

after(async () => {
  for (const p of peers) await stopProcess(p.child, { graceMs: 3000 });
  await observer?.endAsync();
  await broker?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

test('kill -9 of the sender mid-transfer: it resumes from the last acknowledged chunk', async () => {
  const { file, sha } = source('vm-1.wav');
  await startPeer('crash-b');
  const sender = await startPeer('crash-a', ['--forward', 'crash-b', '--file', file, '--id', 'vm-1']);
  await waitFor('a third of the file at the receiver', () => maxHave('vm-1') >= 128, 30_000, 5);
  killNow(sender.child);
  await waitExit(sender.child);
  const atKill = maxHave('vm-1');
  assert.ok(atKill < SIZE / CHUNK, `the transfer should have been cut in the middle (had ${atKill})`);

  const restartedAt = Date.now();
  const again = await startPeer('crash-a');
  await waitFor('delivered after the restart', () => again.lines.find((l) => l['event'] === 'outcome' && l['id'] === 'vm-1'), 60_000);
  const firstAfter = sent.find((s) => s.transfer === 'vm-1' && s.at >= restartedAt);
  assert.ok(firstAfter, 'chunks were sent after the restart');
  assert.ok(firstAfter.index >= atKill - 2, `resumed at chunk ${firstAfter.index}, the receiver had ${atKill}`);
  const resumedFrom = again.lines.find((l) => l['event'] === 'files.sending');
  assert.ok((resumedFrom?.['acked'] as number) > 0, 'the sender kept its progress in SQLite');

  const rows = await indexedRows('crash-b', 'vm-1');
  assert.equal(rows.length, 1, 'indexed exactly once');
  assert.equal(createHash('sha256').update(readFileSync(rows[0]!.path)).digest('hex'), sha);
});

test('kill -9 of the receiver mid-transfer: it keeps the verified chunks and the sender resumes there', async () => {
  const { file, sha } = source('vm-2.wav');
  const receiver = peers.find((p) => isRunning(p.child) && p.lines.some((l) => l['event'] === 'ready' && l['site'] === 'crash-b')) as Peer;
  const sender = peers.find((p) => isRunning(p.child) && p.lines.some((l) => l['event'] === 'ready' && l['site'] === 'crash-a')) as Peer;
  assert.ok(receiver && sender);
  await stopProcess(sender.child);
  await startPeer('crash-a', ['--forward', 'crash-b', '--file', file, '--id', 'vm-2']);
  await waitFor('a third of the file at the receiver', () => maxHave('vm-2') >= 128, 30_000, 5);
  killNow(receiver.child);
  await waitExit(receiver.child);
  const atKill = maxHave('vm-2');
  assert.ok(atKill < SIZE / CHUNK, `the transfer should have been cut in the middle (had ${atKill})`);

  const back = await startPeer('crash-b');
  const resumed = await waitFor('the receiver to resume', () => back.lines.find((l) => l['event'] === 'files.receiving' && l['id'] === 'vm-2'), 30_000);
  assert.ok((resumed['have'] as number) >= atKill - 2, `resumed at ${String(resumed['have'])}, had acknowledged ${atKill}`);
  await waitFor('indexed at the receiver', () => back.lines.find((l) => l['event'] === 'files.indexed' && l['id'] === 'vm-2'), 60_000);

  const rows = await indexedRows('crash-b', 'vm-2');
  assert.equal(rows.length, 1, 'indexed exactly once');
  assert.equal(createHash('sha256').update(readFileSync(rows[0]!.path)).digest('hex'), sha);
  // vm-1 from the first test is still indexed once after the receiver's restart.
  assert.equal((await indexedRows('crash-b', 'vm-1')).length, 1);
});
