// Three hosts in network namespaces this test creates (test/helpers/three-sites.ts):
// site A and site B (an agent each, their phones on the namespace's own loopback) and
// "central" (Mosquitto and `branchctl serve`, routing between the sites' WAN links).
//
// What a user notices, in order: 1001 at A calls 2001 at B over SIP between the agents;
// with B's agent frozen, a call to 2001 gives up on it after 0.4 s and goes out on A's
// line card; A's WAN link goes down; a call to 2001 placed at that moment connects
// through A's line card to 2001's DID (sim PSTN) without waiting for a SIP timeout (the
// failover figure), and A enters survivable mode (the detection figure); a voicemail for
// 2002 (B, no DID) is taken at A; local calls at A keep working; A's agent is killed with
// SIGKILL while it drains after the WAN returns and restarted; the controller ends with
// every call record of A exactly once (`branchctl records`, `sites`) and B with the
// voicemail, indexed once.
// Namespaces need root (CAP_NET_ADMIN): without it the test fails and says so.
// The kernel here has no netem qdisc, so loss is not simulated (docs/sync.md).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DatabaseSync } from 'node:sqlite';
import { REPO_ROOT, type AgentHandle } from '../helpers/agent.ts';
import { stopProcess, track } from '../helpers/proc.ts';
import { registerSippPhone, runCall } from '../helpers/sipp-calls.ts';
import { waitFor } from '../helpers/site-sync.ts';
import { B_DID, branchctl, createNamespaces, deleteNamespaces, DOMAIN, ip, logTime, NS, recordsAtController, run, startCentral, startSite as startSiteAgent } from '../helpers/three-sites.ts';

function callsInStore(stateDir: string): string[] {
  const db = new DatabaseSync(path.join(stateDir, 'branchline.sqlite'), { readOnly: true });
  try {
    return (db.prepare('SELECT id FROM calls ORDER BY started_at').all() as Array<{ id: string }>).map((r) => r.id);
  } finally {
    db.close();
  }
}

/** B's copy of mailbox 2002: the rows and whether each file is whole on disk. */
function mailboxAtB(stateDir: string, mailbox: string): Array<{ id: string; folder: string; caller: string; file: string }> {
  const db = new DatabaseSync(path.join(stateDir, 'branchline.sqlite'), { readOnly: true });
  try {
    return db.prepare('SELECT id, folder, caller, file FROM voicemail_messages WHERE mailbox = ?').all(mailbox) as Array<{ id: string; folder: string; caller: string; file: string }>;
  } finally {
    db.close();
  }
}

/** A caller that talks: 20 s of a 440 Hz tone streamed from the answer, hang-up after `seconds`. */
async function depositScenario(dir: string, seconds: number): Promise<string> {
  const tone = path.join(dir, 'tone.ulaw');
  await run('sox', ['-n', '-r', '8000', '-c', '1', '-e', 'u-law', '-t', 'raw', tone, 'synth', '20', 'sine', '440']);
  const header = (method: string, cseq: string, extra = ''): string => `
      ${method} sip:[field2]@[$domain] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:[field0]@[$domain]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field2]@[$domain]>
      Call-ID: [call_id]
      CSeq: ${cseq}
      Contact: <sip:[field0]@[local_ip]:[local_port];transport=[transport]>${extra}`;
  const sdp = `
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP[local_ip_type] [media_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv
`;
  const inDialog = (method: string, cseq: string): string => `
      ${method} [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      Max-Forwards: 70
      From: <sip:[field0]@[$domain]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: ${cseq}
      Content-Length: 0
`;
  const xml = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="deposit-uac">
  <Global variables="domain" />
  <send retrans="500"><![CDATA[${header('INVITE', '1 INVITE')}${sdp}]]></send>
  <recv response="100" optional="true" />
  <recv response="407" auth="true" />
  <send><![CDATA[
      ACK sip:[field2]@[$domain] SIP/2.0
      [last_Via:]
      Max-Forwards: 70
      From: <sip:[field0]@[$domain]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0
]]></send>
  <send retrans="500"><![CDATA[${header('INVITE', '2 INVITE', '\n      [field1]')}${sdp}]]></send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="200" rrs="true" />
  <send><![CDATA[${inDialog('ACK', '2 ACK')}]]></send>
  <nop><action><exec rtp_stream="${tone},1,0" /></action></nop>
  <pause milliseconds="${seconds * 1000}" />
  <send retrans="500"><![CDATA[${inDialog('BYE', '3 BYE')}]]></send>
  <recv response="200" timeout="10000" />
</scenario>
`;
  const file = path.join(dir, 'deposit-uac.xml');
  await writeFile(file, xml);
  return file;
}

/**
 * Watches A's call records arrive at the broker in central (a subscriber there):
 * resolves after `count` messages, so the test can kill A in the middle of its drain.
 */
function watchRecords(count: number): { ready: Promise<void>; seen: Promise<void>; stop(): void } {
  const script = `import mqtt from 'mqtt';
const c = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { protocolVersion: 5 });
c.on('message', () => process.stdout.write('m\\n'));
await c.subscribeAsync('branchline/v1/site/site-a/up/records', { qos: 0 });
process.stdout.write('ready\\n');`;
  const child = track(spawn('ip', ['netns', 'exec', NS.c, process.execPath, '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }));
  let seen = 0;
  let onReady: () => void = () => undefined;
  let onSeen: () => void = () => undefined;
  const ready = new Promise<void>((r) => (onReady = r));
  const enough = new Promise<void>((r) => (onSeen = r));
  child.stdout?.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) {
      if (line === 'ready') onReady();
      if (line === 'm' && ++seen >= count) onSeen();
    }
  });
  return { ready, seen: enough, stop: () => void stopProcess(child).catch(() => undefined) };
}

let work: string;
let central: { stop(): Promise<void> } | undefined;
let a: AgentHandle;
let b: AgentHandle;
const agents: AgentHandle[] = [];
const phonePorts: Record<string, number> = {};

async function startSite(site: 'a' | 'b', stateDir?: string): Promise<AgentHandle> {
  const h = await startSiteAgent(site, stateDir);
  agents.push(h);
  return h;
}


before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'branchline-e2e-'));
  try {
    await createNamespaces();
  } catch (err) {
    throw new Error(`network namespaces cannot be created here (root / CAP_NET_ADMIN needed): ${(err as Error).message}`);
  }
  central = await startCentral(work);
  [a, b] = await Promise.all([startSite('a'), startSite('b')]);
  phonePorts['1001'] = await registerSippPhone('127.0.0.1:5060', DOMAIN, { user: '1001', password: 'pw-1001' }, 25061, NS.a);
  phonePorts['1002'] = await registerSippPhone('127.0.0.1:5060', DOMAIN, { user: '1002', password: 'pw-1002' }, 25062, NS.a);
  phonePorts['2001'] = await registerSippPhone('127.0.0.1:5060', DOMAIN, { user: '2001', password: 'pw-2001' }, 25063, NS.b);
  await a.waitForLog((l) => l['event'] === 'peers.directory' && l['site'] === 'site-b', 15_000);
  await a.waitForLog((l) => l['event'] === 'peers.presence' && l['site'] === 'site-b' && l['state'] === 'online', 15_000).catch(() => undefined);
});

after(async () => {
  for (const h of agents) await h.cleanup().catch(() => undefined);
  await central?.stop();
  await deleteNamespaces();
  if (work) await rm(work, { recursive: true, force: true });
});

test('an inter-site call: 1001 at site A rings 2001 at site B over SIP between the agents', async () => {
  const r = await runCall({
    server: '127.0.0.1:5060',
    domain: DOMAIN,
    caller: { user: '1001', password: 'pw-1001' },
    callee: '2001',
    callerScenario: 'call-uac',
    callerNetns: NS.a,
    callees: [{ scenario: 'call-uas', port: phonePorts['2001'] as number, netns: NS.b }],
    callerExtraArgs: ['-d', '500'],
  });
  assert.equal(r.caller.successful, 1, `caller: ${JSON.stringify(r.caller)}`);
  assert.equal(r.callees[0]?.successful, 1, 'the phone at site B answered');
  const atB = await b.waitForLog((l) => l['event'] === 'call.started' && l['peer'] === 'site-a', 5000);
  assert.equal(atB['caller'], '1001');
  await a.waitForLog((l) => l['event'] === 'call.routed' && l['target'] === 'peer', 1000);
});

test('a peer whose agent says nothing: after peers.no_response_timeout the call goes out on the line card, not after a SIP timeout', async () => {
  // B's agent frozen: its presence still reads online (the broker has not given up on
  // it yet), so A tries it, hears nothing, and moves on after 0.4 s.
  process.kill(b.pid, 'SIGSTOP');
  try {
    const from = Date.now();
    const r = await runCall({
      server: '127.0.0.1:5060',
      domain: DOMAIN,
      caller: { user: '1001', password: 'pw-1001' },
      callee: '2001',
      callerScenario: 'b2bua-uac-early-media',
      callerNetns: NS.a,
      callees: [],
      callerExtraArgs: ['-d', '200'],
    });
    assert.equal(r.caller.successful, 1, `connected through the line card: ${JSON.stringify(r.caller)}`);
    const started = await a.waitForLog((l) => l['event'] === 'call.started' && l['dialed'] === '2001' && logTime(l) >= from, 2000);
    const silent = await a.waitForLog((l) => l['event'] === 'call.peer_silent' && l['call'] === started['call'], 2000);
    const answered = await a.waitForLog((l) => l['event'] === 'call.state' && l['state'] === 'answered' && l['call'] === started['call'], 2000);
    const setupMs = logTime(answered) - logTime(started);
    console.log(`# silent peer: INVITE → connected via the line card ${setupMs} ms (peer given up after ${silent['ms']} ms)`);
    assert.ok(setupMs < 1500, `no SIP timeout: ${setupMs} ms`);
  } finally {
    // Frozen for about a second, well inside its MQTT keepalive: B never went offline.
    process.kill(b.pid, 'SIGCONT');
  }
});

test('WAN cut at site A: the next call to 2001 goes out on the line card at once; A turns survivable', async () => {
  const cutAt = Date.now();
  await ip('-n', NS.a, 'link', 'set', 'wa', 'down');
  // Placed right at the cut: before anything has noticed, so the peer's silence decides.
  const r = await runCall({
    server: '127.0.0.1:5060',
    domain: DOMAIN,
    caller: { user: '1001', password: 'pw-1001' },
    callee: '2001',
    callerScenario: 'b2bua-uac-early-media',
    callerNetns: NS.a,
    callees: [],
    callerExtraArgs: ['-d', '300'],
  });
  assert.equal(r.caller.successful, 1, `the call connected through the line card: ${JSON.stringify(r.caller)}`);
  const dialled = await a.waitForLog((l) => l['event'] === 'trunk.dialled' && logTime(l) >= cutAt, 2000);
  const answered = await a.waitForLog((l) => l['event'] === 'call.state' && l['state'] === 'answered' && logTime(l) >= logTime(dialled), 2000);
  const failoverMs = logTime(answered) - cutAt;
  const survivable = await a.waitForLog((l) => l['event'] === 'health.mode' && l['mode'] === 'survivable', 10_000);
  const detectMs = logTime(survivable) - cutAt;
  console.log(`# failover: WAN loss → outbound call connected via the line card ${failoverMs} ms (dialled at +${logTime(dialled) - cutAt} ms, sim answers after 200 ms); WAN loss → survivable mode ${detectMs} ms`);
  assert.ok(failoverMs < 2000, `no SIP timeout on the way: ${failoverMs} ms`);

  // Now that A knows, a call skips the peer without even trying it.
  const skipFrom = Date.now();
  const again = await runCall({
    server: '127.0.0.1:5060',
    domain: DOMAIN,
    caller: { user: '1001', password: 'pw-1001' },
    callee: '2001',
    callerScenario: 'b2bua-uac-early-media',
    callerNetns: NS.a,
    callees: [],
    callerExtraArgs: ['-d', '300'],
  });
  assert.equal(again.caller.successful, 1);
  const routed = await a.waitForLog((l) => l['event'] === 'call.routed' && logTime(l) >= skipFrom && String(l['why']).includes('unreachable'), 2000);
  assert.match(String(routed['why']), /peer site-b unreachable, pstn \+15550202001/);
});

test("voicemail for a site B user is taken at A while B is unreachable (2002 has no DID)", async () => {
  const scenario = await depositScenario(work, 16);
  const r = await runCall({
    server: '127.0.0.1:5060',
    domain: DOMAIN,
    caller: { user: '1001', password: 'pw-1001' },
    callee: '2002',
    callerScenario: scenario,
    callerNetns: NS.a,
    callees: [],
    timeoutMs: 30_000,
  });
  assert.equal(r.caller.successful, 1, `the caller left a message: ${JSON.stringify(r.caller)}`);
  const queued = await a.waitForLog((l) => l['event'] === 'voicemail.forward_queued' && l['mailbox'] === '2002', 5000).catch((err: unknown) => {
    const callIds = new Set(a.logs().filter((l) => l['dialed'] === '2002').map((l) => l['call']));
    const calls = a.logs().filter((l) => String(l['subsystem']) === 'voicemail' || callIds.has(l['call']));
    throw new Error(`${(err as Error).message.split('\n')[0]}; the call's lines at A:\n${calls.map((l) => JSON.stringify(l)).join('\n')}`);
  });
  assert.equal(queued['to'], 'site-b');
  assert.deepEqual(mailboxAtB(b.stateDir, '2002'), [], 'nothing at B while its WAN is cut');
});

test('local calls at A keep working with the WAN down; after the WAN returns and a kill -9 mid-drain, every record reaches the controller once', async () => {
  const stateDir = a.stateDir;
  const before = callsInStore(stateDir).length;
  const local = await runCall({
    server: '127.0.0.1:5060',
    domain: DOMAIN,
    caller: { user: '1001', password: 'pw-1001' },
    callee: '1002',
    callerScenario: 'call-uac',
    callerNetns: NS.a,
    calls: 20,
    rate: 10,
    callees: [{ scenario: 'call-uas', port: phonePorts['1002'] as number, netns: NS.a }],
    callerExtraArgs: ['-d', '100'],
    timeoutMs: 60_000,
  });
  assert.equal(local.caller.successful, 20, 'every local call connected while the WAN was down');
  await waitFor('records written', () => callsInStore(stateDir).length >= before + 20 || undefined, 5000);

  const total = callsInStore(stateDir).length;
  const watcher = watchRecords(5);
  await watcher.ready;
  await ip('-n', NS.a, 'link', 'set', 'wa', 'up');
  // Mid-drain: a few records on their way to the controller, most still queued; then a crash.
  await Promise.race([watcher.seen, new Promise((_, reject) => setTimeout(() => reject(new Error('A did not start draining within 30 s')), 30_000))]);
  a.kill();
  watcher.stop();
  const atCrash = (await recordsAtController('site-a')).length;
  console.log(`# kill -9 of site A with ${atCrash} of ${total} records at the controller`);
  assert.ok(atCrash < total, `the kill came in the middle of the drain (${atCrash} of ${total} were in)`);
  a = await startSite('a', stateDir);
  const ids = await waitFor('every record at the controller', async () => {
    const rows = await recordsAtController('site-a').catch(() => []);
    return rows.length >= total ? rows.map((r) => r.id) : undefined;
  }, 60_000, 500);
  const inStore = callsInStore(stateDir);
  assert.equal(new Set(ids).size, ids.length, 'no record twice');
  assert.equal(ids.length, inStore.length, 'as many records at the controller as calls at the site');
  const sites = JSON.parse(await branchctl(['sites', '--json'])) as Array<{ site: string; records: number }>;
  assert.equal(sites.find((s) => s.site === 'site-a')?.records, inStore.length);

  // The voicemail taken at A for 2002 is at B, indexed once, with its audio.
  const received = await waitFor('the voicemail indexed at B', () => {
    const rows = mailboxAtB(b.stateDir, '2002');
    return rows.length > 0 ? rows : undefined;
  }, 30_000, 200);
  assert.equal(received.length, 1);
  assert.equal(received[0]?.caller, '1001');
  assert.equal(received[0]?.folder, 'INBOX');
  const { size } = await import('node:fs/promises').then((fs) => fs.stat(path.join(b.stateDir, 'voicemail', received[0]?.file as string)));
  assert.ok(size > 8000, `the message holds audio (${size} bytes)`);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(mailboxAtB(b.stateDir, '2002').length, 1, 'indexed exactly once');
});
