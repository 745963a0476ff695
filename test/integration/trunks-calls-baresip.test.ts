// PSTN calls through the agent's simulated E1, end to end with real peers: the
// simulated PSTN (the sim card's control socket, driven by the public `branchline
// sim call` command as a child process) and a baresip desk phone registered as 1001.
// - Inbound: a call to DID 5550100 (config/sample.yaml) rings the phone; it answers
//   (ctrl_tcp accept); the PSTN plays a 1 kHz tone and the phone a 440 Hz one; the
//   phone's recording (sndfile) and the PSTN's (save-recording) carry the other's
//   tone; `sim call` exits 0 with its JSON outcome; the call record has the channel leg.
// - DTMF from the phone (RFC 4733) reaches the line as digits; digits from the line
//   reach the phone.
// - Outbound: the phone dials an outside number answered by a PSTN subscriber that
//   sends a 1 kHz tone; audio both ways; the record's channel leg.
// - All channels busy: a further outside call gets 503 with Retry-After.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import YAML from 'yaml';
import { SimControlClient } from '../../drivers/sim/control-client.ts';
import type { ControlEvent } from '../../drivers/sim/control-protocol.ts';
import { REPO_ROOT, startAgent, type AgentHandle } from '../helpers/agent.ts';
import { startBaresip, type BaresipHandle } from '../helpers/baresip.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';

const CLI = path.join(REPO_ROOT, 'agent', 'cli.ts');
const OUTSIDE = '2125550199';
const BUSY_OUTSIDE = '2125550188';

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout + stderr)));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rough frequency and RMS amplitude as `sox … -n stat` measures them. */
async function measure(args: string[]): Promise<{ frequency: number; rms: number; seconds: number }> {
  const out = await run('sox', [...args, '-n', 'stat']);
  const num = (label: string): number => Number(new RegExp(`${label}:\\s+(-?[0-9.]+)`).exec(out)?.[1] ?? Number.NaN);
  return { frequency: num('Rough\\s+frequency'), rms: num('RMS\\s+amplitude'), seconds: num('Length \\(seconds\\)') };
}

/** The newest WAV of what the phone heard (sndfile's decoder-side dump). */
async function heardFile(dir: string, nth: number): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.wav') && f.includes('-dec')).sort();
  assert.ok(files.length >= nth, `${nth} decoded recordings in ${dir}: ${JSON.stringify(files)}`);
  return path.join(dir, files[nth - 1] as string);
}

/** `branchline sim call …` as a child process: exit code and its JSON line. */
function simCall(configPath: string, args: string[]): Promise<{ code: number | null; outcome: Record<string, unknown> | undefined; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'sim', 'call', '--config', configPath, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('exit', (code) => {
      let outcome: Record<string, unknown> | undefined;
      try {
        outcome = JSON.parse(stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
      } catch {
        outcome = undefined;
      }
      resolve({ code, outcome, stderr });
    });
  });
}

/** Waits for the phone's next event of `type` (one more than it had seen so far). */
async function nextEvent(phone: BaresipHandle, type: string, before: number, timeoutMs: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = phone.events().filter((e) => e['type'] === type);
    if (all.length > before) return all[before] as Record<string, unknown>;
    if (Date.now() > deadline) throw new Error(`no ${type} event within ${timeoutMs} ms: ${JSON.stringify(phone.events().slice(-8))}`);
    await sleep(25);
  }
}

function count(phone: BaresipHandle, type: string): number {
  return phone.events().filter((e) => e['type'] === type).length;
}

type Released = Extract<ControlEvent, { event: 'call.released' }>;

/** The PSTN's release event of `call`, if it came. */
function releaseOf(events: readonly ControlEvent[], call: string): Released | undefined {
  return events.find((e): e is Released => e.event === 'call.released' && e.call === call);
}

interface LegRow {
  leg: string;
  kind: string;
  direction: string;
  party: string;
  status: number | null;
}

function lastCall(stateDir: string): { call: Record<string, unknown>; legs: LegRow[] } {
  const db = new DatabaseSync(path.join(stateDir, 'branchline.sqlite'), { readOnly: true });
  try {
    const call = db.prepare('SELECT * FROM calls ORDER BY started_at DESC LIMIT 1').get() as Record<string, unknown>;
    const legs = db.prepare('SELECT leg, kind, direction, party, status FROM call_legs WHERE call_id = ? ORDER BY leg').all(call['id'] as string) as unknown as LegRow[];
    return { call, legs };
  } finally {
    db.close();
  }
}

describe('PSTN calls through the simulated E1 (the sample config)', () => {
  let agent: AgentHandle;
  let work: string;
  let control: string;
  let pstn: SimControlClient;
  let phone: BaresipHandle;
  const events: ControlEvent[] = [];

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'branchline-pstn-'));
    await run('sox', ['-n', '-r', '8000', '-c', '1', '-b', '16', path.join(work, 'phone-440.wav'), 'synth', '30', 'sine', '440']);
    await run('sox', ['-n', '-r', '8000', '-c', '1', '-e', 'u-law', '-t', 'raw', path.join(work, 'pstn-1000.ulaw'), 'synth', '2', 'sine', '1000']);
    const sample = YAML.parse(readFileSync(`${REPO_ROOT}/config/sample.yaml`, 'utf8')) as Record<string, unknown> & { extensions: Array<{ number: string; password: string }>; sip: Record<string, unknown>; linecards: Array<Record<string, unknown>> };
    const port = await freeUdpTcpPort();
    control = `127.0.0.1:${await freeUdpTcpPort()}`;
    const { extensions, state_dir: _stateDir, site: _site, ...rest } = sample;
    assert.deepEqual(sample['dids'], [{ number: '5550100', extension: '1001' }], 'the sample routes DID 5550100 to 1001');
    // 1003: a phone never registered here, without a mailbox; 1004 forwards every call to the outside number.
    const carol = { number: '1003', password: 'carol-1003-secret' };
    const dave = { number: '1004', password: 'dave-1004-secret', forward: { always: OUTSIDE } };
    agent = await startAgent({
      extensions: [...extensions, carol, dave],
      domain: String(sample.sip['domain']),
      udpPort: port,
      tcpPort: port,
      extraConfig: {
        ...rest,
        sip: { ...sample.sip, udp: `127.0.0.1:${port}`, tcp: `127.0.0.1:${port}` },
        media: { ...(rest['media'] as Record<string, unknown> | undefined), bind_address: '127.0.0.1' },
        // The sample's card on a free control port, with one outside subscriber that answers with a 1 kHz tone.
        // More DIDs: to 1002 (not registered here; the sample gives it a mailbox) and 1003.
        dids: [...(sample['dids'] as unknown[]), { number: '5550102', extension: '1002' }, { number: '5550103', extension: '1003' }, { number: '5550104', extension: '1004' }],
        linecards: [
          {
            ...sample.linecards[0],
            control,
            subscribers: [
              { number: OUTSIDE, name: 'Outside', behaviour: 'answer', answer_after: 0.3, audio: 'tone' },
              { number: BUSY_OUTSIDE, behaviour: 'busy' },
            ],
          },
        ],
      },
    });
    await agent.waitForLog((l) => l['msg'] === 'trunks started', 10_000);
    pstn = await SimControlClient.connect(control);
    pstn.on('event', (e) => events.push(e));
    await pstn.request({ op: 'subscribe' });
    await run('mkdir', ['-p', path.join(work, 'rec')]);
    const alice = extensions.find((e) => e.number === '1001');
    assert.ok(alice);
    phone = await startBaresip({
      account: { user: '1001', password: alice.password, registrar: `127.0.0.1:${port}`, domain: agent.domain, regint: 600 },
      audioFile: path.join(work, 'phone-440.wav'),
      recordDir: path.join(work, 'rec'),
    });
    await phone.waitForEvent((e) => e['type'] === 'REGISTER_OK', 5000);
  });

  after(async () => {
    pstn?.close();
    await phone?.cleanup();
    await agent?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('a PSTN call to DID 5550100 rings 1001; answered, both hear each other; `sim call` exits 0', async () => {
    const call = simCall(agent.configPath, ['--from', '2125550147', '--to', '5550100', '--audio', path.join(work, 'pstn-1000.ulaw'), '--talk', '3']);
    const incoming = await phone.waitForEvent((e) => e['type'] === 'CALL_INCOMING', 10_000);
    assert.match(String(incoming['peeruri']), /2125550147/, 'the phone shows the PSTN caller ID');
    const answered = events.length;
    const accepted = await phone.command('accept');
    assert.ok(accepted.ok, accepted.data);
    // Record what the line receives from the phone, from the moment the PSTN sees the answer.
    const deadline = Date.now() + 5000;
    let pstnCall: string | undefined;
    while (pstnCall === undefined && Date.now() < deadline) {
      const e = events.slice(answered).find((x) => x.event === 'call.answered');
      pstnCall = e !== undefined && 'call' in e ? e.call : undefined;
      if (pstnCall === undefined) await sleep(20);
    }
    assert.ok(pstnCall, 'the PSTN saw its call answered');
    await pstn.request({ op: 'record', call: pstnCall });

    const { code, outcome, stderr } = await call;
    assert.equal(code, 0, `sim call exits 0: ${JSON.stringify(outcome)} ${stderr}`);
    assert.ok(outcome);
    assert.equal(outcome['answered'], true);
    assert.equal(outcome['audio_both_ways'], true);
    assert.match(String(outcome['channel']), /^pstn\/1\/[0-9]+$/);
    const packets = outcome['packets'] as { sent: number; received: number; audible_received: number };
    assert.ok(packets.sent >= 120 && packets.received >= 120, `about 150 frames each way in 3 s: ${JSON.stringify(packets)}`);
    assert.ok(packets.audible_received >= 100, `the line heard the phone: ${JSON.stringify(packets)}`);

    await phone.waitForEvent((e) => e['type'] === 'CALL_CLOSED', 5000);
    await sleep(300);
    const heard = await measure([await heardFile(path.join(work, 'rec'), 1)]);
    assert.ok(Math.abs(heard.frequency - 1000) < 60, `the phone hears the PSTN's 1 kHz: ${JSON.stringify(heard)}`);
    assert.ok(heard.rms > 0.05, `loud enough: ${JSON.stringify(heard)}`);
    const lineFile = path.join(work, 'line.alaw');
    await pstn.request({ op: 'save-recording', call: pstnCall, file: lineFile });
    const line = await measure(['-t', 'al', '-r', '8000', '-c', '1', lineFile]);
    assert.ok(Math.abs(line.frequency - 440) < 40, `the PSTN hears the phone's 440 Hz (A-law on the E1): ${JSON.stringify(line)}`);
    assert.ok(line.seconds > 2, `about 3 s recorded on the line: ${JSON.stringify(line)}`);

    await agent.waitForLog((l) => l['event'] === 'call.ended', 5000);
    await sleep(200);
    const { call: row, legs } = lastCall(agent.stateDir);
    assert.equal(row['disposition'], 'answered');
    assert.equal(row['caller'], '2125550147');
    assert.equal(row['dialed'], '5550100');
    assert.equal(row['answered_by'], '1001');
    assert.deepEqual(
      legs.map((l) => [l.leg, l.kind, l.direction, l.kind === 'channel' ? l.party.replace(/[0-9]+$/, 'N') : l.party]),
      [
        ['a', 'channel', 'inbound', 'pstn/1/N'],
        ['b1', 'sip', 'outbound', '1001'],
      ],
    );
    assert.equal(legs[0]?.party, outcome['channel'], 'the record names the channel sim call used');
  });

  test('1001 dials an outside number: a PSTN subscriber answers, audio both ways, DTMF both ways', async () => {
    const closedBefore = count(phone, 'CALL_CLOSED');
    const established = count(phone, 'CALL_ESTABLISHED');
    const seen = events.length;
    const dialed = await phone.command('dial', `sip:${OUTSIDE}@${agent.domain}`);
    assert.ok(dialed.ok, dialed.data);
    await nextEvent(phone, 'CALL_ESTABLISHED', established, 10_000);
    const dialledEvent = events.slice(seen).find((e) => e.event === 'call.dialled');
    assert.ok(dialledEvent, 'the PSTN saw the card dial');
    assert.equal(dialledEvent.to, OUTSIDE);
    assert.equal(dialledEvent.from, '1001', 'caller ID: the extension (trunk policy pass)');
    const pstnCall = dialledEvent.call;
    await pstn.request({ op: 'record', call: pstnCall });

    // A key on the phone (RFC 4733) reaches the line as a digit.
    await sleep(500);
    await phone.command('sndcode', '5');
    const deadline = Date.now() + 3000;
    while (!events.some((e) => e.event === 'call.digits' && e.call === pstnCall && e.digits === '5')) {
      assert.ok(Date.now() < deadline, `the line received digit 5: ${JSON.stringify(events.slice(seen))}`);
      await sleep(50);
    }
    // A digit from the line reaches the phone.
    await pstn.request({ op: 'digits', call: pstnCall, digits: '7' });
    const dtmf = await nextEvent(phone, 'CALL_DTMF_START', 0, 3000);
    assert.equal(dtmf['param'], '7', `the phone got digit 7: ${JSON.stringify(dtmf)}`);

    await sleep(2500);
    await phone.command('hangup');
    const released = await new Promise<Released>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the line was not released after the phone hung up')), 5000);
      const check = (): void => {
        const e = releaseOf(events, pstnCall);
        if (e) {
          clearTimeout(timer);
          resolve(e);
        } else setTimeout(check, 50);
      };
      check();
    });
    assert.equal(released.cause, 16, 'normal clearing on the line');
    await nextEvent(phone, 'CALL_CLOSED', closedBefore, 5000);
    await sleep(300);
    const heard = await measure([await heardFile(path.join(work, 'rec'), 2)]);
    assert.ok(Math.abs(heard.frequency - 1000) < 60, `the phone hears the subscriber's 1 kHz: ${JSON.stringify(heard)}`);
    const lineFile = path.join(work, 'line-out.alaw');
    await pstn.request({ op: 'save-recording', call: pstnCall, file: lineFile });
    const line = await measure(['-t', 'al', '-r', '8000', '-c', '1', lineFile]);
    assert.ok(Math.abs(line.frequency - 440) < 40, `the subscriber hears the phone's 440 Hz: ${JSON.stringify(line)}`);

    await agent.waitForLog((l) => l['event'] === 'call.ended' && agent.logs().filter((x) => x['event'] === 'call.ended').length >= 2, 5000);
    await sleep(200);
    const { call: row, legs } = lastCall(agent.stateDir);
    assert.equal(row['disposition'], 'answered');
    assert.equal(row['caller'], '1001');
    assert.equal(row['dialed'], OUTSIDE);
    assert.equal(row['answered_by'], OUTSIDE);
    assert.deepEqual(
      legs.map((l) => [l.leg, l.kind, l.direction, l.party]),
      [
        ['a', 'sip', 'inbound', '1001'],
        ['b1', 'channel', 'outbound', String(dialledEvent.channel)],
      ],
    );
  });

  test('the phone hangs up a PSTN call first: the line is released with normal clearing', async () => {
    const incoming = count(phone, 'CALL_INCOMING');
    const established = count(phone, 'CALL_ESTABLISHED');
    const call = simCall(agent.configPath, ['--from', '2125550147', '--to', '5550100', '--talk', '10']);
    await nextEvent(phone, 'CALL_INCOMING', incoming, 10_000);
    await phone.command('accept');
    await nextEvent(phone, 'CALL_ESTABLISHED', established, 5000);
    await sleep(1500);
    await phone.command('hangup');
    const { outcome } = await call;
    assert.equal(outcome?.['answered'], true);
    assert.equal(outcome?.['cause'], 16, `the line cleared normally: ${JSON.stringify(outcome)}`);
    assert.ok(Number(outcome?.['seconds']) < 5, `the call ended when the phone hung up, not after --talk: ${JSON.stringify(outcome)}`);
  });

  test('a DID whose extension forwards to an outside number: the call goes back out on a second channel, audio both ways', async () => {
    const seen = events.length;
    const { code, outcome } = await simCall(agent.configPath, ['--from', '2125550147', '--to', '5550104', '--talk', '2']);
    assert.equal(code, 0, `answered by the outside number, audio both ways: ${JSON.stringify(outcome)}`);
    const out = events.slice(seen).find((e): e is Extract<ControlEvent, { event: 'call.dialled' }> => e.event === 'call.dialled');
    assert.equal(out?.to, OUTSIDE);
    assert.equal(out?.from, '2125550147', "the forwarded call presents the original caller's number");
    assert.notEqual(out?.channel, outcome?.['channel'], 'a second channel');
    const started = await agent.waitForLog((l) => l['event'] === 'call.started' && l['dialed'] === '5550104', 1000);
    await agent.waitForLog((l) => l['event'] === 'call.ended' && l['call'] === started['call'], 5000);
    await sleep(200);
    const { call: row, legs } = lastCall(agent.stateDir);
    assert.equal(row['answered_by'], OUTSIDE);
    assert.deepEqual(
      legs.map((l) => [l.leg, l.kind, l.direction, l.party]),
      [
        ['a', 'channel', 'inbound', String(outcome?.['channel'])],
        ['b1', 'channel', 'outbound', String(out?.channel)],
      ],
    );
  });

  test('outside numbers that are busy or do not exist: the phone gets 486 and 404', async () => {
    const closed = count(phone, 'CALL_CLOSED');
    await phone.command('dial', `sip:${BUSY_OUTSIDE}@${agent.domain}`);
    const busy = await nextEvent(phone, 'CALL_CLOSED', closed, 10_000);
    assert.match(String(busy['param']), /486/, `busy far end (cause 17): ${JSON.stringify(busy)}`);
    await phone.command('dial', `sip:2125550177@${agent.domain}`);
    const unknown = await nextEvent(phone, 'CALL_CLOSED', closed + 1, 10_000);
    assert.match(String(unknown['param']), /404/, `unallocated number (cause 1): ${JSON.stringify(unknown)}`);
  });

  test('the PSTN caller hangs up while the phone rings: the phone stops ringing, the call is recorded as cancelled', async () => {
    const incoming = count(phone, 'CALL_INCOMING');
    const closed = count(phone, 'CALL_CLOSED');
    const placed = await pstn.request<{ call: string }>({ op: 'call', from: '2125550147', to: '5550100' });
    await nextEvent(phone, 'CALL_INCOMING', incoming, 10_000);
    await pstn.request({ op: 'hangup', call: placed.call });
    await nextEvent(phone, 'CALL_CLOSED', closed, 5000);
    const started = agent.logs().filter((l) => l['event'] === 'call.started' && l['dialed'] === '5550100').pop();
    const ended = await agent.waitForLog((l) => l['event'] === 'call.ended' && l['call'] === started?.['call'], 5000);
    assert.equal(ended['disposition'], 'cancelled');
  });

  test("a DID whose phone is not registered goes to the extension's voicemail: the PSTN caller leaves a message", async () => {
    const seen = events.length;
    const call = simCall(agent.configPath, ['--from', '2125550147', '--to', '5550102', '--audio', path.join(work, 'pstn-1000.ulaw'), '--talk', '5']);
    // The caller skips the greeting with # (a line digit reaching voicemail as RFC 4733).
    const deadline = Date.now() + 5000;
    let answered: ControlEvent | undefined;
    while ((answered = events.slice(seen).find((e) => e.event === 'call.answered')) === undefined) {
      assert.ok(Date.now() < deadline, 'voicemail answered the PSTN call');
      await sleep(20);
    }
    await sleep(500);
    await pstn.request({ op: 'digits', call: 'call' in answered ? answered.call : '', digits: '#' });
    const { code, outcome } = await call;
    assert.equal(code, 0, `answered by voicemail, audio both ways (greeting out, message in): ${JSON.stringify(outcome)}`);
    const saved = await agent.waitForLog((l) => l['event'] === 'voicemail.deposited', 5000);
    assert.ok(Number(saved['durationMs']) >= 2500, `a message of the PSTN caller's tone was kept: ${JSON.stringify(saved)}`);
    const started = await agent.waitForLog((l) => l['event'] === 'call.started' && l['dialed'] === '5550102', 1000);
    await agent.waitForLog((l) => l['event'] === 'call.ended' && l['call'] === started['call'], 5000);
    await sleep(200);
    const { call: row, legs } = lastCall(agent.stateDir);
    assert.equal(row['answered_by'], 'voicemail 1002');
    assert.deepEqual(
      legs.map((l) => [l.leg, l.kind, l.direction]),
      [
        ['a', 'channel', 'inbound'],
        ['b1', 'application', 'outbound'],
      ],
    );
  });

  test('a DID whose phone is not registered and has no mailbox: the line is released with cause 20 (subscriber absent)', async () => {
    const { code, outcome } = await simCall(agent.configPath, ['--from', '2125550147', '--to', '5550103', '--talk', '1']);
    assert.equal(code, 1, 'sim call exits 1 for an unanswered call');
    assert.equal(outcome?.['answered'], false);
    assert.equal(outcome?.['cause'], 20);
  });

  test('a phone without a mailbox declines a PSTN call: the line hears busy (cause 17)', async () => {
    const carol = await startBaresip({ account: { user: '1003', password: 'carol-1003-secret', registrar: `127.0.0.1:${agent.udpPort}`, domain: agent.domain, regint: 600 } });
    try {
      await carol.waitForEvent((e) => e['type'] === 'REGISTER_OK', 5000);
      const call = simCall(agent.configPath, ['--from', '2125550147', '--to', '5550103', '--talk', '1']);
      await nextEvent(carol, 'CALL_INCOMING', 0, 10_000);
      await carol.command('hangup'); // baresip refuses a ringing call with 486 Busy Here
      const { code, outcome } = await call;
      assert.equal(code, 1);
      assert.equal(outcome?.['answered'], false);
      assert.equal(outcome?.['cause'], 17, `busy on the line: ${JSON.stringify(outcome)}`);
    } finally {
      await carol.cleanup();
    }
  });
});

describe('one analog line shared by two phones (sim FXO, one port)', () => {
  let agent: AgentHandle;
  let work: string;
  let pstn: SimControlClient;
  let alice: BaresipHandle;
  let bob: BaresipHandle;
  const events: ControlEvent[] = [];

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'branchline-line-'));
    const control = `127.0.0.1:${await freeUdpTcpPort()}`;
    agent = await startAgent({
      extensions: [
        { number: '1001', password: 'alice-1001-secret' },
        { number: '1002', password: 'bob-1002-secret' },
      ],
      extraConfig: {
        // baresip answers MD5 digest challenges only.
        sip: { auth: { algorithms: ['MD5'] } },
        media: { bind_address: '127.0.0.1' },
        linecards: [
          {
            driver: 'sim',
            name: 'analog',
            type: 'fxo',
            ports: 1,
            numbers: ['5550200'],
            control,
            time_scale: 0.1,
            subscribers: [
              { number: OUTSIDE, behaviour: 'answer', answer_after: 0.2, audio: 'tone' },
              { number: '911', name: 'Emergency', behaviour: 'answer', answer_after: 0.2, audio: 'tone' },
            ],
          },
        ],
        dids: [{ number: '5550200', extension: '1001' }],
        // A call finding the line busy waits one second, then gets 503 with Retry-After: 7.
        trunking: { max_queue_wait: 1, retry_after: 7 },
      },
    });
    await agent.waitForLog((l) => l['msg'] === 'trunks started', 10_000);
    pstn = await SimControlClient.connect(control);
    pstn.on('event', (e) => events.push(e));
    await pstn.request({ op: 'subscribe' });
    const phone = async (user: string, password: string): Promise<BaresipHandle> => {
      const p = await startBaresip({ account: { user, password, registrar: `127.0.0.1:${agent.udpPort}`, domain: agent.domain, regint: 600 } });
      await p.waitForEvent((e) => e['type'] === 'REGISTER_OK', 5000);
      return p;
    };
    alice = await phone('1001', 'alice-1001-secret');
    bob = await phone('1002', 'bob-1002-secret');
  });

  after(async () => {
    pstn?.close();
    await alice?.cleanup();
    await bob?.cleanup();
    await agent?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  test('the line is busy: a second outside call waits, then gets 503 with Retry-After; an emergency call pre-empts the first', async () => {
    await alice.command('dial', `sip:${OUTSIDE}@${agent.domain}`);
    await nextEvent(alice, 'CALL_ESTABLISHED', 0, 10_000);
    const first = events.find((e): e is Extract<ControlEvent, { event: 'call.dialled' }> => e.event === 'call.dialled' && e.to === OUTSIDE);
    assert.ok(first, 'the line carries 1001 to the outside number');

    const started = Date.now();
    await bob.command('dial', `sip:${OUTSIDE}@${agent.domain}`);
    const closed = await nextEvent(bob, 'CALL_CLOSED', 0, 10_000);
    assert.match(String(closed['param']), /503/, `503 for the second call: ${JSON.stringify(closed)}`);
    assert.ok(Date.now() - started >= 900, 'it waited max_queue_wait for a channel first');
    const refused = await agent.waitForLog((l) => l['event'] === 'trunk.refused', 2000);
    assert.deepEqual([refused['code'], refused['status'], refused['retryAfter']], ['EQUEUE_TIMEOUT', 503, 7]);
    await agent.waitForLog((l) => l['event'] === 'call.ended', 2000);
    await sleep(200);
    const failed = lastCall(agent.stateDir);
    assert.deepEqual([failed.call['caller'], failed.call['final_status'], failed.call['disposition']], ['1002', 503, 'failed']);

    // 911 from Bob: the line is taken from Alice's call (cause 8, pre-emption) and dials.
    await bob.command('dial', `sip:911@${agent.domain}`);
    await nextEvent(alice, 'CALL_CLOSED', 0, 10_000);
    await nextEvent(bob, 'CALL_ESTABLISHED', 0, 10_000);
    const preempted = releaseOf(events, first.call);
    assert.equal(preempted?.cause, 8, `Alice's call was pre-empted on the line: ${JSON.stringify(preempted)}`);
    assert.ok(events.some((e) => e.event === 'call.dialled' && e.to === '911'), 'the emergency call went out on the line');
    await sleep(500);
    await bob.command('hangup');
    await nextEvent(bob, 'CALL_CLOSED', 1, 5000);
    await agent.waitForLog((l) => l['event'] === 'call.ended' && agent.logs().filter((x) => x['event'] === 'call.ended').length >= 3, 5000);
    await sleep(200);
    const emergency = lastCall(agent.stateDir);
    assert.deepEqual([emergency.call['dialed'], emergency.call['emergency'], emergency.call['disposition']], ['911', 1, 'answered']);
  });

  test('an emergency call takes the line from an answered inbound PSTN call: the phone on it gets a BYE', async () => {
    const aliceIncoming = count(alice, 'CALL_INCOMING');
    const aliceClosed = count(alice, 'CALL_CLOSED');
    const bobClosed = count(bob, 'CALL_CLOSED');
    const bobEstablished = count(bob, 'CALL_ESTABLISHED');
    const placed = await pstn.request<{ call: string }>({ op: 'call', from: '2125550147', to: '5550200' });
    await nextEvent(alice, 'CALL_INCOMING', aliceIncoming, 10_000);
    await alice.command('accept');
    const deadline = Date.now() + 5000;
    while (!events.some((e) => e.event === 'call.answered' && e.call === placed.call)) {
      assert.ok(Date.now() < deadline, 'the PSTN call was answered');
      await sleep(20);
    }
    const dialled = Date.now();
    await bob.command('dial', `sip:911@${agent.domain}`);
    await nextEvent(alice, 'CALL_CLOSED', aliceClosed, 10_000);
    assert.ok(Date.now() - dialled < 2000, 'the phone was hung up as the line was taken');
    await nextEvent(bob, 'CALL_ESTABLISHED', bobEstablished, 10_000);
    assert.equal(releaseOf(events, placed.call)?.cause, 8, 'the inbound call was pre-empted on the line');
    const started = await agent.waitForLog((l) => l['event'] === 'call.started' && l['dialed'] === '5550200', 1000);
    const ended = await agent.waitForLog((l) => l['event'] === 'call.ended' && l['call'] === started['call'], 2000);
    assert.match(String(ended['reason']), /Line taken/, `the record says why: ${JSON.stringify(ended)}`);
    await bob.command('hangup');
    await nextEvent(bob, 'CALL_CLOSED', bobClosed, 5000);
  });
});

