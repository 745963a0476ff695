// A real call's record travels to the controller: a real agent synced over a real
// Mosquitto to `branchctl serve`, a SIPp caller whose call ends (480: the callee has
// no phone registered, and 404), and `branchctl records` / `branchctl sites` as an
// operator runs them: each call's record is there once, as the agent stored it.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, test } from 'node:test';
import { REPO_ROOT, startAgent, type AgentHandle } from '../helpers/agent.ts';
import { startMosquitto, type MosquittoHandle } from '../helpers/mosquitto.ts';
import { stopProcess, track } from '../helpers/proc.ts';
import { runSipp, SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';
import { waitFor } from '../helpers/site-sync.ts';

const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');
const SITE = 'site-cdr';

let broker: MosquittoHandle;
let agent: AgentHandle;
let dir: string;
let controller: ReturnType<typeof spawn>;

function branchctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BRANCHCTL, ...args], { cwd: REPO_ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'bl-cdr-sync-'));
  broker = await startMosquitto();
  controller = spawn(process.execPath, [BRANCHCTL, 'serve', '--broker', broker.url, '--state', path.join(dir, 'controller')], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  track(controller);
  let out = '';
  controller.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('the controller ready', () => out.includes('controller.ready'));
  agent = await startAgent({
    extensions: [
      { number: '1001', name: 'Alice', password: 'alice-secret' },
      { number: '1004', name: 'Dave', password: 'dave-secret' },
    ],
    extraConfig: { ...SIPP_AGENT_CONFIG, site: { id: SITE }, mqtt: { url: broker.url, reconnect_period: 0.2 }, health: { telemetry_period: 3600 }, media: { bind_address: '127.0.0.1' } },
  });
});

after(async () => {
  await agent?.cleanup();
  if (controller) await stopProcess(controller, { graceMs: 5000 });
  await broker?.cleanup();
  await rm(dir, { recursive: true, force: true });
});

async function call(to: string): Promise<void> {
  const users = path.join(dir, `call-${to}.csv`);
  await writeFile(users, `SEQUENTIAL\n1001;[authentication username=1001 password=alice-secret];${to}\n`);
  await runSipp({ scenario: 'b2bua-uac-final', remote: `127.0.0.1:${agent.udpPort}`, usersFile: users, calls: 1, authUri: `${to}@${agent.domain}`, set: { domain: agent.domain }, timeoutMs: 20_000 });
}

test('each call record reaches the controller once and branchctl lists it', async () => {
  await call('1004'); // no phone registered: 480
  await call('5555'); // no such number: 404
  const local = await waitFor('two records in the agent’s store', () => {
    const d = new DatabaseSync(path.join(agent.stateDir, 'branchline.sqlite'), { readOnly: true });
    try {
      const rows = d.prepare('SELECT id, dialed, disposition FROM calls ORDER BY started_at').all() as Array<{ id: string; dialed: string; disposition: string }>;
      return rows.length === 2 ? rows : undefined;
    } finally {
      d.close();
    }
  });

  const listed = await waitFor('both records at the controller', async () => {
    const r = await branchctl(['records', '--broker', broker.url, '--site', SITE, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ id: string; seq: number; type: string; site: string; data: { id: string; dialed: string; disposition: string; caller: string } }>;
    return rows.length >= 2 ? rows : undefined;
  });
  assert.equal(listed.length, 2, 'each record once');
  assert.deepEqual(
    listed.map((r) => [r.id, r.seq, r.type, r.site, r.data.id, r.data.caller, r.data.dialed, r.data.disposition]),
    local.map((l, i) => [l.id, i + 1, 'call.record', SITE, l.id, '1001', l.dialed, l.disposition]),
  );
  assert.equal(listed[0]?.data.disposition, 'unavailable');

  const sites = await branchctl(['sites', '--broker', broker.url, '--json']);
  assert.equal(sites.code, 0, sites.stderr);
  const row = (JSON.parse(sites.stdout) as Array<{ site: string; state: string; records: number }>).find((s) => s.site === SITE);
  assert.deepEqual({ state: row?.state, records: row?.records }, { state: 'online', records: 2 });
});
