// Three hosts in network namespaces this test creates: site A and site B (an agent
// each, their phones on the namespace's own loopback) and "central" (Mosquitto and
// `branchctl serve`), which also routes between the sites' WAN links:
//
//   blt-a  wa 198.18.1.2 ──── ca 198.18.1.1 ┐
//                                           blt-c  (Mosquitto :1883, branchctl serve, ip_forward)
//   blt-b  wb 198.18.2.2 ──── cb 198.18.2.1 ┘
//
// What a user notices, in order: 1001 at A calls 2001 at B over SIP between the agents;
// A's WAN link goes down; a call to 2001 placed at that moment connects through A's line
// card to 2001's DID (sim PSTN) without waiting for a SIP timeout (the failover figure),
// and A enters survivable mode (the detection figure); local calls at A keep working;
// A's agent is killed with SIGKILL while it drains after the WAN returns and restarted;
// the controller ends with every call record of A exactly once (`branchctl records`).
// Namespaces need root (CAP_NET_ADMIN): without it the test fails and says so.
// The kernel here has no netem qdisc, so loss is not simulated (docs/sync.md).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DatabaseSync } from 'node:sqlite';
import { REPO_ROOT, startAgent, type AgentHandle, type ExtensionSpec, type LogLine } from '../helpers/agent.ts';
import { stopProcess, track } from '../helpers/proc.ts';
import { registerSippPhone, runCall } from '../helpers/sipp-calls.ts';
import { waitFor } from '../helpers/site-sync.ts';

const NS = { a: 'blt-a', b: 'blt-b', c: 'blt-c' } as const;
const DOMAIN = 'branchline.test';
const B_DID = '+15550202001';
const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

const ip = (...args: string[]): Promise<string> => run('ip', args);

async function deleteNamespaces(): Promise<void> {
  for (const ns of Object.values(NS)) await ip('netns', 'del', ns).catch(() => undefined);
}

async function createNamespaces(): Promise<void> {
  await deleteNamespaces();
  for (const ns of Object.values(NS)) {
    await ip('netns', 'add', ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  for (const [site, net] of [['a', 1], ['b', 2]] as const) {
    const siteNs = NS[site];
    // Created inside central, one end moved to the site: nothing is left in the root namespace.
    await ip('-n', NS.c, 'link', 'add', `c${site}`, 'type', 'veth', 'peer', 'name', `w${site}`);
    await ip('-n', NS.c, 'link', 'set', `w${site}`, 'netns', siteNs);
    await ip('-n', NS.c, 'addr', 'add', `198.18.${net}.1/24`, 'dev', `c${site}`);
    await ip('-n', siteNs, 'addr', 'add', `198.18.${net}.2/24`, 'dev', `w${site}`);
    await ip('-n', NS.c, 'link', 'set', `c${site}`, 'up');
    await ip('-n', siteNs, 'link', 'set', `w${site}`, 'up');
    await ip('-n', siteNs, 'route', 'add', 'default', 'via', `198.18.${net}.1`);
  }
  await run('ip', ['netns', 'exec', NS.c, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
}

function branchctl(args: string[]): Promise<string> {
  return run('ip', ['netns', 'exec', NS.c, process.execPath, BRANCHCTL, ...args, '--broker', 'mqtt://127.0.0.1:1883']);
}

async function recordsAtController(site: string): Promise<Array<{ id: string }>> {
  return JSON.parse(await branchctl(['records', '--site', site, '--limit', '100000', '--json'])) as Array<{ id: string }>;
}

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
let broker: ChildProcess | undefined;
let controller: ChildProcess | undefined;
let a: AgentHandle;
let b: AgentHandle;
const agents: AgentHandle[] = [];
const phonePorts: Record<string, number> = {};

function siteConfig(site: 'a' | 'b'): Record<string, unknown> {
  const net = site === 'a' ? 1 : 2;
  return {
    site: { id: `site-${site}` },
    sip: { udp: '0.0.0.0:5060', tcp: '0.0.0.0:5060', auth: { algorithms: ['MD5'] } },
    media: { policy: 'direct', bind_address: '0.0.0.0' },
    mqtt: { url: `mqtt://198.18.${net}.1:1883`, reconnect_period: 0.2, keepalive: 5 },
    // One record in flight at a time: the drain after the outage lasts long enough to be killed in.
    sync: { ack_timeout: 2, window: 1 },
    // Fast detection: a probe round every 0.5 s; survivable after 1 s of trouble.
    health: { telemetry_period: 3600, probe_interval: 0.5, probe_timeout: 0.4, enter_after: 1, return_after: 2 },
    peers: { sip_address: `198.18.${net}.2:5060`, no_response_timeout: 0.4 },
  };
}

async function startSite(site: 'a' | 'b', stateDir?: string): Promise<AgentHandle> {
  const common = siteConfig(site);
  const h =
    site === 'a'
      ? await startAgent({
          netns: NS.a,
          udpPort: 5060,
          tcpPort: 5060,
          domain: DOMAIN,
          ...(stateDir ? { stateDir } : {}),
          extensions: [
            { number: '1001', password: 'pw-1001' },
            { number: '1002', password: 'pw-1002' },
          ],
          extraConfig: {
            ...common,
            // The sim PSTN: 2001's DID answers (as B's line would) after 0.2 s.
            linecards: [{ driver: 'sim', name: 'pstn', type: 'e1', control: '127.0.0.1:5099', subscribers: [{ number: B_DID, behaviour: 'answer', answer_after: 0.2, audio: 'silence' }] }],
          },
        })
      : await startAgent({
          netns: NS.b,
          udpPort: 5060,
          tcpPort: 5060,
          domain: DOMAIN,
          extensions: [
            { number: '2001', password: 'pw-2001' },
            // No DID: when B is unreachable, A takes the message and forwards it.
            // ExtensionSpec has no voicemail key; the config takes it.
            { number: '2002', password: 'pw-2002', voicemail: { pin: '2468' } } as ExtensionSpec,
          ],
          extraConfig: { ...common, dids: [{ number: B_DID, extension: '2001' }] },
        });
  agents.push(h);
  return h;
}

function logTime(l: LogLine): number {
  return typeof l['time'] === 'number' ? l['time'] : Date.parse(String(l['time']));
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'branchline-e2e-'));
  try {
    await createNamespaces();
  } catch (err) {
    throw new Error(`network namespaces cannot be created here (root / CAP_NET_ADMIN needed): ${(err as Error).message}`);
  }
  const conf = path.join(work, 'mosquitto.conf');
  await writeFile(conf, 'listener 1883 0.0.0.0\nallow_anonymous true\nset_tcp_nodelay true\n');
  broker = track(spawn('ip', ['netns', 'exec', NS.c, 'mosquitto', '-c', conf], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 300));
  controller = track(spawn('ip', ['netns', 'exec', NS.c, process.execPath, BRANCHCTL, 'serve', '--broker', 'mqtt://127.0.0.1:1883', '--state', path.join(work, 'controller')], { stdio: 'ignore', cwd: REPO_ROOT }));
  [a, b] = await Promise.all([startSite('a'), startSite('b')]);
  phonePorts['1001'] = await registerSippPhone('127.0.0.1:5060', DOMAIN, { user: '1001', password: 'pw-1001' }, 25061, NS.a);
  phonePorts['1002'] = await registerSippPhone('127.0.0.1:5060', DOMAIN, { user: '1002', password: 'pw-1002' }, 25062, NS.a);
  phonePorts['2001'] = await registerSippPhone('127.0.0.1:5060', DOMAIN, { user: '2001', password: 'pw-2001' }, 25063, NS.b);
  await a.waitForLog((l) => l['event'] === 'peers.directory' && l['site'] === 'site-b', 15_000);
  await a.waitForLog((l) => l['event'] === 'peers.presence' && l['site'] === 'site-b' && l['state'] === 'online', 15_000).catch(() => undefined);
});

after(async () => {
  for (const h of agents) await h.cleanup().catch(() => undefined);
  if (controller) await stopProcess(controller).catch(() => undefined);
  if (broker) await stopProcess(broker).catch(() => undefined);
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
