// Two real desk phones (baresip 1.0) call each other through the agent: the callee
// rings, answers, and each phone hears the other's tone (440 Hz one way, 1 kHz the
// other), recorded by baresip's sndfile module and measured with sox. First as a
// newcomer does it — config/sample.yaml (SIP and RTP on 0.0.0.0, anchored media: the
// agent relays RTP and advertises the address SIP uses) — then with direct media
// (the phones' SDP passed through). Hang-up from either side ends both dialogs and
// leaves a call record in the agent's SQLite store and the call.state trail in its
// log.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import YAML from 'yaml';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT, startAgent, type AgentHandle } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { startBaresip, type BaresipHandle } from '../helpers/baresip.ts';
import { SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

const EXTENSIONS = [
  { number: '1001', name: 'Alice', password: 'alice-1001-secret', voicemail: { pin: '4821' } },
  { number: '1002', name: 'Bob', password: 'bob-1002-secret', voicemail: { pin: '7315' } },
];

/** config/sample.yaml as the agent's config, on a free port instead of 5060 and a temp state folder. */
async function sampleConfig(): Promise<{ extensions: typeof EXTENSIONS; domain: string; extraConfig: Record<string, unknown> }> {
  const sample = YAML.parse(readFileSync(`${REPO_ROOT}/config/sample.yaml`, 'utf8')) as Record<string, unknown> & { extensions: typeof EXTENSIONS; sip: Record<string, unknown> };
  assert.deepEqual(sample.extensions, EXTENSIONS, 'the sample config has the two phones this test registers');
  const port = await freeUdpTcpPort();
  const { extensions, state_dir: _stateDir, site: _site, ...rest } = sample;
  // Fixed local ports of the sample (a line card's control socket) move to free ones,
  // so this test never collides with an agent already running on the machine.
  if (Array.isArray(rest['linecards'])) {
    rest['linecards'] = await Promise.all(
      (rest['linecards'] as Array<Record<string, unknown>>).map(async (card) => (card['control'] === undefined ? card : { ...card, control: `127.0.0.1:${await freeUdpTcpPort()}` })),
    );
  }
  return { extensions, domain: String(sample.sip['domain']), extraConfig: { ...rest, sip: { ...sample.sip, udp: `0.0.0.0:${port}`, tcp: `0.0.0.0:${port}` } } };
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout + stderr)));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rough frequency and RMS amplitude of a WAV as `sox FILE -n stat` measures them. */
async function measure(file: string): Promise<{ frequency: number; rms: number; seconds: number }> {
  const out = await run('sox', [file, '-n', 'stat']);
  const num = (label: string): number => Number(new RegExp(`${label}:\\s+(-?[0-9.]+)`).exec(out)?.[1] ?? Number.NaN);
  return { frequency: num('Rough\\s+frequency'), rms: num('RMS\\s+amplitude'), seconds: num('Length \\(seconds\\)') };
}

/** The WAV of what a phone heard (sndfile's decoder-side dump) in its record folder. */
async function heardFile(dir: string): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.wav') && f.includes('-dec'));
  assert.equal(files.length, 1, `one decoded recording in ${dir}: ${JSON.stringify(await readdir(dir))}`);
  return path.join(dir, files[0] as string);
}

interface CallRow {
  disposition: string;
  answered_by: string | null;
  media_policy: string;
  caller: string;
  dialed: string;
  answered_at: number | null;
}

function callRows(stateDir: string): CallRow[] {
  const db = new DatabaseSync(path.join(stateDir, 'branchline.sqlite'), { readOnly: true });
  try {
    return db.prepare('SELECT disposition, answered_by, media_policy, caller, dialed, answered_at FROM calls ORDER BY started_at').all() as unknown as CallRow[];
  } finally {
    db.close();
  }
}

const SETUPS = [
  { name: 'the sample config, anchored media', policy: 'anchored', sample: true, transport: 'udp' },
  { name: 'direct media', policy: 'direct', sample: false, transport: 'udp' },
  { name: 'phones on TCP, anchored media', policy: 'anchored', sample: false, transport: 'tcp' },
] as const;

for (const { name: setup, policy, sample: useSample, transport } of SETUPS) {
  describe(`two baresip phones call each other (${setup})`, () => {
    let agent: AgentHandle;
    let work: string;
    const phones: BaresipHandle[] = [];
    let alice: BaresipHandle;
    let bob: BaresipHandle;

    before(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'branchline-calls-'));
      await run('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', path.join(work, 'alice-440.wav'), 'synth', '20', 'sine', '440']);
      await run('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', path.join(work, 'bob-1000.wav'), 'synth', '20', 'sine', '1000']);
      if (useSample) {
        const sample = await sampleConfig();
        const port = Number(String((sample.extraConfig['sip'] as Record<string, string>)['udp']).split(':')[1]);
        agent = await startAgent({ ...sample, udpPort: port, tcpPort: port });
      } else {
        agent = await startAgent({ extensions: EXTENSIONS, extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy, bind_address: '127.0.0.1' } } });
      }
    });

    after(async () => {
      for (const p of phones) await p.cleanup();
      await agent?.cleanup();
      await rm(work, { recursive: true, force: true });
    });

    async function phone(user: string, password: string, tone: string, record: string): Promise<BaresipHandle> {
      const recordDir = path.join(work, record);
      await run('mkdir', ['-p', recordDir]);
      const p = await startBaresip({
        account: { user, password, registrar: `127.0.0.1:${agent.udpPort}`, domain: agent.domain, regint: 600, transport },
        audioFile: path.join(work, tone),
        recordDir,
      });
      phones.push(p);
      await p.waitForEvent((e) => e['type'] === 'REGISTER_OK', 5000);
      return p;
    }

    test('1001 calls 1002: it rings, is answered, audio flows both ways, 1001 hangs up', async () => {
      alice = await phone('1001', 'alice-1001-secret', 'alice-440.wav', 'alice-1');
      bob = await phone('1002', 'bob-1002-secret', 'bob-1000.wav', 'bob-1');

      const registered = agent.logs().filter((l) => l['event'] === 'registration.added').map((l) => String(l['source']).split(':')[0]);
      assert.deepEqual(registered, [transport, transport], `both phones registered over ${transport}`);

      const dialed = await alice.command('dial', `sip:1002@${agent.domain}`);
      assert.ok(dialed.ok, `dial accepted: ${dialed.data}`);
      await bob.waitForEvent((e) => e['type'] === 'CALL_INCOMING', 5000);
      await alice.waitForEvent((e) => e['type'] === 'CALL_RINGING', 5000);
      const accepted = await bob.command('accept');
      assert.ok(accepted.ok, `accept: ${accepted.data}`);
      await alice.waitForEvent((e) => e['type'] === 'CALL_ESTABLISHED', 5000);
      await bob.waitForEvent((e) => e['type'] === 'CALL_ESTABLISHED', 5000);

      await sleep(3000); // three seconds of conversation
      await alice.command('hangup');
      await bob.waitForEvent((e) => e['type'] === 'CALL_CLOSED', 5000);
      await alice.waitForEvent((e) => e['type'] === 'CALL_CLOSED', 5000);
      await sleep(300); // sndfile closes its files on call teardown

      const heardByBob = await measure(await heardFile(path.join(work, 'bob-1')));
      const heardByAlice = await measure(await heardFile(path.join(work, 'alice-1')));
      assert.ok(Math.abs(heardByBob.frequency - 440) < 40, `Bob hears Alice's 440 Hz: ${JSON.stringify(heardByBob)}`);
      assert.ok(Math.abs(heardByAlice.frequency - 1000) < 60, `Alice hears Bob's 1 kHz: ${JSON.stringify(heardByAlice)}`);
      assert.ok(heardByBob.rms > 0.1 && heardByAlice.rms > 0.1, `both recordings carry a loud tone: ${heardByBob.rms}, ${heardByAlice.rms}`);
      assert.ok(heardByBob.seconds > 2 && heardByAlice.seconds > 2, 'about three seconds recorded each way');

      if (useSample) {
        // Bound to 0.0.0.0, the agent must put a real address into SDP, not the wildcard.
        const ready = agent.logs().find((l) => l['event'] === 'calls.ready');
        assert.match(String(ready?.['advertise']), /^[0-9.]+$/);
        assert.notEqual(ready?.['advertise'], '0.0.0.0');
      }
      const ended = await agent.waitForLog((l) => l['event'] === 'call.ended', 5000);
      assert.equal(ended['disposition'], 'answered');
      const states = agent.logs().filter((l) => l['event'] === 'call.started' || l['event'] === 'call.answered').map((l) => l['event']);
      assert.deepEqual(states, ['call.started', 'call.answered']);
      await sleep(100); // the record commits within a few ms of the end
      const rows = callRows(agent.stateDir);
      assert.equal(rows.length, 1);
      assert.deepEqual({ ...rows[0], answered_at: typeof rows[0]?.answered_at }, { disposition: 'answered', answered_by: '1002', media_policy: policy, caller: '1001', dialed: '1002', answered_at: 'number' });
    });

    test('1002 calls 1001 and hangs up itself: the call ends on both phones', async () => {
      const before = alice.events().filter((e) => e['type'] === 'CALL_CLOSED').length;
      await bob.command('dial', `sip:1001@${agent.domain}`);
      await alice.waitForEvent((e) => e['type'] === 'CALL_INCOMING', 5000);
      await alice.command('accept');
      await bob.waitForEvent((e) => e['type'] === 'CALL_ESTABLISHED' && bob.events().filter((x) => x['type'] === 'CALL_ESTABLISHED').length >= 2, 5000);
      await sleep(500);
      await bob.command('hangup');
      const deadline = Date.now() + 5000;
      while (alice.events().filter((e) => e['type'] === 'CALL_CLOSED').length <= before) {
        assert.ok(Date.now() < deadline, 'the callee hung up and the caller saw the call close');
        await sleep(50);
      }
      await agent.waitForLog((l) => l['event'] === 'call.ended' && agent.logs().filter((x) => x['event'] === 'call.ended').length >= 2, 5000);
      await sleep(100);
      const rows = callRows(agent.stateDir);
      assert.deepEqual(rows.map((r) => [r.caller, r.dialed, r.disposition]), [
        ['1001', '1002', 'answered'],
        ['1002', '1001', 'answered'],
      ]);
    });

    if (transport === 'tcp') {
      test('the agent stops during a call: both phones see the call end, and its record is written', async () => {
        const closedBefore = (p: BaresipHandle): number => p.events().filter((e) => e['type'] === 'CALL_CLOSED').length;
        const aliceClosed = closedBefore(alice);
        const bobClosed = closedBefore(bob);
        const incoming = bob.events().filter((x) => x['type'] === 'CALL_INCOMING').length;
        await alice.command('dial', `sip:1002@${agent.domain}`);
        await bob.waitForEvent((e) => e['type'] === 'CALL_INCOMING' && bob.events().filter((x) => x['type'] === 'CALL_INCOMING').length > incoming, 5000);
        await bob.command('accept');
        await agent.waitForLog((l) => l['event'] === 'call.answered' && agent.logs().filter((x) => x['event'] === 'call.answered').length >= 3, 5000);
        assert.equal(await agent.stop(), 0, 'the agent exits cleanly');
        const deadline = Date.now() + 5000;
        while (closedBefore(alice) <= aliceClosed || closedBefore(bob) <= bobClosed) {
          assert.ok(Date.now() < deadline, 'both phones saw a BYE from the stopping agent');
          await sleep(50);
        }
        const rows = callRows(agent.stateDir);
        assert.equal(rows.length, 3);
        assert.equal(rows[2]?.disposition, 'answered');
        const db = new DatabaseSync(path.join(agent.stateDir, 'branchline.sqlite'), { readOnly: true });
        try {
          const last = db.prepare('SELECT reason FROM calls ORDER BY started_at DESC LIMIT 1').get() as { reason: string };
          assert.equal(last.reason, 'Service shutting down');
        } finally {
          db.close();
        }
      });
    }
  });
}
