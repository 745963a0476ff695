// Controller scale-out: two `branchctl serve --share GROUP` processes on one state
// directory behind a real Mosquitto split the sites' up streams through an MQTT 5
// shared subscription and commit each message once into the shared SQLite store.
// One instance is killed with SIGKILL in the middle: the sites keep draining to the
// other, and every record is there exactly once.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { REPO_ROOT } from '../helpers/agent.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { killNow, stopProcess, track, waitExit } from '../helpers/proc.ts';
import { startTestSite, waitFor, type TestSite } from '../helpers/site-sync.ts';

const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');
const PER_SITE = 1500;

interface Instance {
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
}

let broker: MosquittoHandle;
let stateDir: string;
const instances: Instance[] = [];
const sites: TestSite[] = [];

function serve(id: string): Promise<Instance> {
  const child = spawn(process.execPath, [BRANCHCTL, 'serve', '--broker', broker.url, '--state', stateDir, '--id', id, '--share', 'ingest'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  const inst: Instance = { child, lines: [] };
  instances.push(inst);
  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (d: string) => {
    partial += d;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (text.trim().startsWith('{')) inst.lines.push(JSON.parse(text) as Record<string, unknown>);
    }
  });
  return waitFor(`${id} ready`, () => inst.lines.some((l) => l['event'] === 'controller.ready') && inst, 20_000);
}

function branchctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BRANCHCTL, ...args], { cwd: REPO_ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function recordCounts(): Promise<Map<string, number>> {
  const r = await branchctl(['sites', '--broker', broker.url, '--json', '--timeout', '3']);
  if (r.code !== 0) return new Map();
  return new Map((JSON.parse(r.stdout) as Array<{ site: string; records: number }>).map((s) => [s.site, s.records]));
}

before(async () => {
  broker = await startMosquitto();
  stateDir = mkdtempSync(path.join(tmpdir(), 'bl-scaleout-'));
});

after(async () => {
  for (const s of sites) await s.cleanup();
  for (const i of instances) await stopProcess(i.child, { graceMs: 5000 });
  await broker?.cleanup();
  rmSync(stateDir, { recursive: true, force: true });
});

test('two instances share the ingest; one dies mid-drain; every record is committed once', async () => {
  // Both open the same store at the same moment: the migration runs once.
  const [one, two] = await Promise.all([serve('ctl-1'), serve('ctl-2')]);
  for (const id of ['scale-a', 'scale-b']) {
    sites.push(await startTestSite({ id, broker: broker.url, sync: { window: 50, ack_timeout: 1 } }));
  }
  await waitFor('the sites see the controller online', () => sites.every((s) => s.siteSync.sync?.controllerState === 'online'));

  // Queued as a burst, as after a WAN outage.
  for (const s of sites) {
    for (let i = 0; i < PER_SITE; i++) await s.siteSync.sync!.enqueue({ stream: 'records', type: 'call.record', data: { id: `${s.id}-call-${i}`, n: i } });
  }
  await waitFor('a part of the drain', async () => {
    const c = await recordCounts();
    return (c.get('scale-a') ?? 0) + (c.get('scale-b') ?? 0) >= PER_SITE / 2;
  }, 30_000, 50);
  killNow(one!.child);
  await waitExit(one!.child);

  const counts = await waitFor('every record at the controller', async () => {
    const c = await recordCounts();
    return c.get('scale-a') === PER_SITE && c.get('scale-b') === PER_SITE ? c : undefined;
  }, 60_000, 200);
  assert.deepEqual([...counts.entries()].sort(), [['scale-a', PER_SITE], ['scale-b', PER_SITE]]);
  for (const s of sites) {
    await waitFor(`${s.id}'s outbox empty`, async () => (await s.siteSync.sync!.depth()).records.count === 0, 20_000);
    assert.equal(s.siteSync.sync?.controllerState, 'online', 'the surviving instance keeps the controller online');
  }
  // Each record once, in order: branchctl lists seq 1..N.
  const listed = await branchctl(['records', '--broker', broker.url, '--site', 'scale-a', '--json']);
  const seqs = (JSON.parse(listed.stdout) as Array<{ seq: number }>).map((r) => r.seq);
  assert.deepEqual(seqs, Array.from({ length: PER_SITE }, (_, i) => i + 1));

  // Both instances took a share before the kill.
  await stopProcess(two!.child, { graceMs: 10_000 });
  const stats = two!.lines.find((l) => l['event'] === 'controller.stopped') as { inserted: number; received: number } | undefined;
  assert.ok(stats, 'ctl-2 logged its stats');
  assert.ok(stats.inserted > 0 && stats.inserted < 2 * PER_SITE, `ctl-2 committed ${stats.inserted} of ${2 * PER_SITE}: ctl-1 took the rest before it died`);
  assert.ok(two!.lines.some((l) => l['event'] === 'controller.peer_offline' && l['instance'] === 'ctl-1'));
});
