// The simulated card as a process of its own (drivers/sim/main.ts), driven from
// outside over its control socket — loopback TCP and a Unix socket — and the public
// `branchline sim call` command as a thin client of that socket.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { encodeG711 } from '../../agent/media/g711.ts';
import { SimControlClient } from '../../drivers/sim/control-client.ts';
import type { CallOutcome, CallSummary, ControlEvent } from '../../drivers/sim/control-protocol.ts';
import { startAgent } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { track, waitExit } from '../helpers/proc.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

interface SimProcess {
  child: ChildProcess;
  control: string;
}

async function startSim(args: string[]): Promise<SimProcess> {
  const child = track(spawn(process.execPath, [path.join(ROOT, 'drivers/sim/main.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`sim did not start within 10 s: ${stderr}`)), 10_000);
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    child.once('exit', (code) => reject(new Error(`sim exited with ${code}: ${stderr}`)));
  });
  const { control } = JSON.parse(line) as { control: string };
  return { child, control };
}

async function stopSim(sim: SimProcess): Promise<void> {
  sim.child.kill('SIGTERM');
  const status = await waitExit(sim.child);
  assert.equal(status.code, 0, 'the sim process stops cleanly on SIGTERM');
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = track(spawn(process.execPath, [path.join(ROOT, 'agent/cli.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('sim card as a separate process, loopback TCP control socket', () => {
  let sim: SimProcess;
  let client: SimControlClient;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sim-control-'));
    sim = await startSim(['--type', 'e1', '--control', '127.0.0.1:0', '--time-scale', '0.05', '--answer', 'echo', '--answer-after', '50']);
    client = await SimControlClient.connect(sim.control);
  });
  after(async () => {
    client.close();
    await stopSim(sim);
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the card, its span and no alarms', async () => {
    const status = await client.request<{ protocol: number; card: string; spans: { span: number; alarms: string[] }[]; channels: Record<string, string> }>({ op: 'status' });
    assert.equal(status.protocol, 1);
    assert.equal(status.card, 'pstn');
    assert.deepEqual(status.spans, [{ span: 1, alarms: [] }]);
    assert.deepEqual(status.channels, {}, 'every channel idle');
  });

  it('runs a whole call: answered on the top channel, audio both ways, normal clearing', async () => {
    const outcome = await client.request<CallOutcome>({ op: 'call', from: '2125550147', to: '5550100', talk: 0.6 });
    assert.equal(outcome.answered, true);
    assert.equal(outcome.channel, 'pstn/1/30');
    assert.equal(outcome.audio_both_ways, true);
    assert.equal(outcome.cause, 16);
    assert.ok(outcome.packets.sent >= 20 && outcome.packets.sent <= 40, `sent ${outcome.packets.sent} frames in 0.6 s`);
    assert.ok(outcome.packets.audible_received >= outcome.packets.sent - 3, `echoed ${outcome.packets.audible_received} of ${outcome.packets.sent}`);
  });

  it('streams call events in order to a subscriber, and plays a µ-law file transcoded for the A-law span', async () => {
    const events: ControlEvent[] = [];
    client.on('event', (e) => events.push(e));
    await client.request({ op: 'subscribe' });
    const file = path.join(dir, 'tone.ulaw');
    const pcm = Int16Array.from({ length: 8000 }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 8000)));
    const ulaw = new Uint8Array(pcm.length);
    encodeG711('PCMU', pcm, ulaw);
    await writeFile(file, ulaw);
    const call = await client.request<CallSummary>({ op: 'call', from: '2125550148', to: '5550100', audio: file });
    assert.equal(call.state, 'setup');
    const deadline = Date.now() + 5000;
    while (!events.some((e) => e.event === 'call.answered') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const status = await client.request<{ channels: Record<string, string> }>({ op: 'status' });
    assert.deepEqual(status.channels, { '1/30': 'connected' }, 'the card side sees the call on the top channel');
    // The echo takes a few 20 ms frames to come back: ask until it has (a loaded machine is slow).
    let live: CallSummary | undefined;
    do {
      live = (await client.request<CallSummary[]>({ op: 'calls' })).find((c) => c.call === call.call);
      if (live && live.audibleFramesReceived <= 5) await new Promise((r) => setTimeout(r, 20));
    } while (live && live.audibleFramesReceived <= 5 && Date.now() < deadline);
    assert.ok(live, 'the call is listed');
    assert.equal(live.state, 'connected');
    assert.ok(live.audibleFramesReceived > 5, 'the echo of the file came back audible');
    await client.request({ op: 'hangup', call: call.call });
    while (!events.some((e) => e.event === 'call.released') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const mine = events.filter((e) => 'call' in e && e.call === call.call).map((e) => e.event);
    assert.deepEqual(mine, ['call.alerting', 'call.answered', 'call.released']);
    assert.deepEqual(events.find((e) => e.event === 'call.released'), { event: 'call.released', call: call.call, cause: 16, by: 'pstn' });
  });

  it('pulls the cable (alarm, calls refused with cause 34) and plugs it back (alarm cleared)', async () => {
    const events: ControlEvent[] = [];
    client.on('event', (e) => events.push(e));
    await client.request({ op: 'cable.pull', span: 1 });
    const refused = await client.request<CallOutcome>({ op: 'call', from: '2125550149', to: '5550100', talk: 0.2, answer_timeout: 1 });
    assert.equal(refused.answered, false);
    assert.equal(refused.cause, 34);
    await client.request({ op: 'cable.plug', span: 1 });
    const deadline = Date.now() + 5000;
    while (events.filter((e) => e.event === 'alarm').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      events.filter((e) => e.event === 'alarm'),
      [
        { event: 'alarm', span: 1, alarm: 'loss-of-signal', active: true },
        { event: 'alarm', span: 1, alarm: 'loss-of-signal', active: false },
      ],
    );
    const again = await client.request<CallOutcome>({ op: 'call', from: '2125550149', to: '5550100', talk: 0.2 });
    assert.equal(again.answered, true);
  });

  it('answers bad requests with a code and a message that says what was wrong', async () => {
    await assert.rejects(client.request({ op: 'nonsense' } as never), { code: 'EUNKNOWNOP' });
    await assert.rejects(client.request({ op: 'call', to: '55x' } as never), (err: Error & { code?: string }) => err.code === 'EARGUMENT' && /to/.test(err.message));
    await assert.rejects(client.request({ op: 'call', to: '5550100', audio: '/nonexistent/file.ulaw' }), (err: Error & { code?: string }) => err.code === 'EARGUMENT' && /ENOENT/.test(err.message));
    await assert.rejects(client.request({ op: 'hangup', call: 'pstn-999999' }), { code: 'ENOCALL' });
    await assert.rejects(client.request({ op: 'cable.pull', span: 7 }), { code: 'EARGUMENT' });
  });
});

describe('sim card over a Unix socket, and `branchline sim call`', () => {
  let sim: SimProcess;
  let dir: string;
  let configFile: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sim-cli-'));
    const socket = path.join(dir, 'pstn.sock');
    sim = await startSim(['--type', 't1', '--control', socket, '--time-scale', '0.05', '--answer', 'echo', '--answer-after', '50']);
    configFile = path.join(dir, 'branchline.yaml');
    await writeFile(
      configFile,
      [
        'site: { id: sim-test }',
        'sip: { domain: sim.test }',
        'extensions: []',
        'linecards:',
        '  - { driver: sim, name: pstn, type: t1, control: ' + JSON.stringify(socket) + ' }',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await stopSim(sim);
    await rm(dir, { recursive: true, force: true });
  });

  it('places a call, prints one JSON line with the outcome, and exits 0 when audio went both ways', async () => {
    const { code, stdout, stderr } = await runCli(['sim', 'call', '--config', configFile, '--from', '2125550147', '--to', '5550100', '--talk', '0.5']);
    assert.equal(code, 0, stderr);
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, 1);
    const outcome = JSON.parse(lines[0]!) as CallOutcome;
    assert.equal(outcome.answered, true);
    assert.equal(outcome.channel, 'pstn/1/23'); // T1 PRI: 23 bearer channels, the network takes the top one
    assert.equal(outcome.audio_both_ways, true);
    assert.ok(outcome.packets.sent > 10 && outcome.packets.received > 10);
  });

  it('exits 2 with a clear message when the config has no reachable sim card', async () => {
    const other = path.join(dir, 'nosim.yaml');
    await writeFile(other, 'site: { id: sim-test }\nsip: { domain: sim.test }\nextensions: []\n');
    const missing = await runCli(['sim', 'call', '--config', other, '--from', '1', '--to', '5550100']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no sim line card/);
    const usage = await runCli(['sim', 'call', '--config', configFile, '--to', '5550100']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--from NUMBER is required/);
  });
});

describe('`branchline sim call` against the running agent', () => {
  it('reaches the agent through its sim card: a DID the agent does not have is refused with cause 1, exit 1', async () => {
    const control = `127.0.0.1:${await freeUdpTcpPort()}`;
    const agent = await startAgent({
      extensions: [{ number: '1001', password: 'alice-1001-secret' }],
      extraConfig: { linecards: [{ driver: 'sim', name: 'pstn', type: 'e1', control, time_scale: 0.05 }] },
    });
    try {
      await agent.waitForLog((l) => l['msg'] === 'line card started', 10_000);
      const { code, stdout, stderr } = await runCli(['sim', 'call', '--config', agent.configPath, '--from', '2125550147', '--to', '5559999', '--talk', '1']);
      assert.equal(code, 1, stderr);
      const outcome = JSON.parse(stdout.trim()) as CallOutcome;
      assert.deepEqual(outcome, {
        answered: false,
        channel: 'pstn/1/30',
        seconds: 0,
        packets: { sent: 0, received: 0, audible_received: 0 },
        cause: 1,
        audio_both_ways: false,
      });
    } finally {
      await agent.cleanup();
    }
  });
});

describe('the control client against something that does not speak the protocol', () => {
  it('fails the waiting request with EPROTOCOL, without throwing, when a line is not JSON', async () => {
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const client = await SimControlClient.connect(`127.0.0.1:${port}`);
    try {
      await assert.rejects(client.request({ op: 'status' }), { code: 'EPROTOCOL' });
      await assert.rejects(client.request({ op: 'status' }), { code: 'ECLOSED' });
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
