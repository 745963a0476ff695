// Line-card figures (issue 5), on the simulated card in this one process:
//
// 1. A full E1: all 30 channels connected, a tone flowing PSTN → card on every
//    channel (paced by the PSTN's 20 ms clock) and frames flowing card → PSTN (paced
//    by one 20 ms clock on the card side, as the agent's media engine would write).
//    Reported over the measurement window:
//      CPU %        user+system time of this process / wall time (both sides of the
//                   line are in it: the card's driver and the simulated PSTN)
//      frames       received each way, and lost (sent − received)
//      jitter       per frame, |arrival interval − 20 ms| at the receiving side, ms,
//                   p50 / p99 / max, for each direction
// 2. The same E1 bridged to RTP through the agent's media path: each channel's
//    frames go through the call core's bridge (agent/calls/channel-media.ts) to an
//    RtpSession of the agent's media engine, as for a PSTN call answered by a phone;
//    the 30 "phones" are UDP endpoints in a child process on the other core, each
//    sending 20 ms G.711 packets (PCMU by default: the E1's A-law is transcoded both
//    ways; --phone-codec PCMA: none) and timing what arrives. Reported: CPU of this
//    process (card, PSTN and bridge + media engine) and of the phones' process, frames
//    each way, and |arrival interval − 20 ms| p50/p99 at the phones (line → RTP) and
//    at the PSTN (RTP → line).
// 3. Seize-to-dial latency: from dial() on an idle channel until it resolves (the
//    network has the whole number), p50 / p99, for PRI and CAS with real signalling
//    times (PRI: SETUP → CALL PROCEEDING 30 ms; CAS: wink 200 ms + 140 ms a digit) and
//    with signalling time 0 (what the driver itself adds); and for the serial AT
//    driver on a real pty pair (socat) with the modem emulator answering: a voice
//    modem (ATDT… handed to the device) and a cellular module (ATD…; → OK).
//
// It prints figures, never pass/fail.
//
//   node bench/linecard.ts                     # 10 s window after 2 s warm-up, 50 dials each
//   node bench/linecard.ts --seconds 3 --dials 10   # a smoke run
//   node bench/linecard.ts --only bridged --seconds 3   # only the E1 bridged to RTP

import { fork } from 'node:child_process';
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ChannelMedia } from '../agent/calls/channel-media.ts';
import { MediaEngine, type RtpSession } from '../agent/media/index.ts';
import { encodeG711, type CodecName } from '../agent/media/g711.ts';
import { writeRtpHeader } from '../agent/media/rtp-packet.ts';
import { MediaClock } from '../agent/media/media-clock.ts';
import { ToneSource } from '../agent/media/tone-generator.ts';
import { SerialAtCard } from '../drivers/serial-at/serial-at-card.ts';
import { SimCard } from '../drivers/sim/sim-card.ts';
import { ModemEmulator, type EmulatedKind } from '../test/helpers/modem-emulator.ts';
import type { PstnCall } from '../drivers/sim/pstn-call.ts';
import { FRAME_BYTES, type ChannelRef } from '../drivers/types.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    dials: { type: 'string', default: '50' },
    number: { type: 'string', default: '5559000' },
    only: { type: 'string' },
    'phone-codec': { type: 'string', default: 'PCMU' },
    phones: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const dials = Number(values.dials);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Arrival-interval jitter over many streams: |interval − 20 ms| per frame. */
class Jitter {
  readonly #last = new Map<string, number>();
  readonly #samples: number[] = [];
  recording = false;
  frames = 0;

  arrived(stream: string, now: number): void {
    const last = this.#last.get(stream);
    this.#last.set(stream, now);
    if (!this.recording) return;
    this.frames++;
    if (last !== undefined) this.#samples.push(Math.abs(now - last - 20));
  }

  summary(): string {
    const s = Float64Array.from(this.#samples).sort();
    const q = (p: number): string => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(2) : '-');
    return `p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${s.length ? s[s.length - 1]!.toFixed(2) : '-'} ms`;
  }
}

function quantiles(samples: number[]): string {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number): string => s[Math.min(s.length - 1, Math.floor(p * s.length))]!.toFixed(2);
  return `p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${s[s.length - 1]!.toFixed(2)} ms`;
}

async function fullE1(): Promise<void> {
  const card = new SimCard({ name: 'bench', type: 'e1' });
  await card.start();
  const toCard = new Jitter();
  const toPstn = new Jitter();
  const connected: ChannelRef[] = [];
  const calls: PstnCall[] = [];
  card.on('incoming', ({ channel }) => void card.answer(channel));
  card.on('answer', ({ channel }) => connected.push(channel));
  for (let i = 0; i < 30; i++) {
    const call = card.pstn.placeCall({ from: `21255501${String(i).padStart(2, '0')}`, to: '5550100' });
    calls.push(call);
    call.on('frame', () => toPstn.arrived(call.id, performance.now()));
  }
  await Promise.all(calls.map((c) => c.until('connected')));
  for (const ch of connected) card.onFrame(ch, () => toCard.arrived(`${ch.span}/${ch.channel}`, performance.now()));
  for (const call of calls) call.playSource(new ToneSource({ frequencies: [1000], levelDbm0: -13, cadenceMs: [] }));
  // The card side writes like the agent's media engine: one clock, every channel each tick.
  const frame = new Uint8Array(FRAME_BYTES).fill(0x55);
  const clock = new MediaClock();
  clock.add(() => {
    for (const ch of connected) card.writeFrame(ch, frame);
  });
  clock.start();

  await sleep(warmup * 1000);
  const sentBefore = calls.reduce((n, c) => n + c.stats.framesSent, 0);
  toCard.recording = true;
  toPstn.recording = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  toCard.recording = false;
  toPstn.recording = false;
  const sentToCard = calls.reduce((n, c) => n + c.stats.framesSent, 0) - sentBefore;
  clock.stop();

  const cpuPct = ((cpu.user + cpu.system) / 1000 / wall) * 100;
  const expected = Math.round((30 * wall) / 20);
  console.log(`E1, 30 channels connected, audio both ways, ${(wall / 1000).toFixed(1)} s window`);
  console.log(`  CPU                 ${cpuPct.toFixed(1)} % of one core (card driver + simulated PSTN, this process)`);
  console.log(`  PSTN → card         ${toCard.frames} frames (PSTN sent ${sentToCard}, ${expected} due), jitter ${toCard.summary()}`);
  console.log(`  card → PSTN         ${toPstn.frames} frames (${expected} due), jitter ${toPstn.summary()}`);
  const clockStats = card.pstn.clock.stats();
  console.log(`  PSTN 20 ms clock    late p50 ${clockStats.lateP50Ms.toFixed(1)} ms, p99 ${clockStats.lateP99Ms.toFixed(1)} ms, skipped ticks ${clockStats.skippedTicks}`);
  await card.stop();
}

/** A message between this process and the phones' process. */
type PhonesMessage =
  | { kind: 'start'; agentPorts: number[]; codec: CodecName }
  | { kind: 'ports'; ports: number[] }
  | { kind: 'record'; on: boolean }
  | { kind: 'report' }
  | { kind: 'stats'; frames: number; jitter: string; cpuPct: number; sent: number };

/** The phones' side (a child process): one socket per phone, 20 ms packets out, arrivals timed. */
async function phonesProcess(): Promise<void> {
  const send = (m: PhonesMessage): void => void process.send?.(m);
  const sockets: dgram.Socket[] = [];
  const jitter = new Jitter();
  let sent = 0;
  let cpu0 = process.cpuUsage();
  let t0 = performance.now();
  process.on('message', (m: PhonesMessage) => {
    if (m.kind === 'start') {
      void (async () => {
        for (let i = 0; i < m.agentPorts.length; i++) {
          const socket = dgram.createSocket('udp4');
          await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
          socket.on('message', () => jitter.arrived(String(i), performance.now()));
          sockets.push(socket);
        }
        send({ kind: 'ports', ports: sockets.map((s) => s.address().port) });
        // A 440 Hz tone, one 20 ms frame encoded once; each phone its own header.
        const pcm = Int16Array.from({ length: 160 }, (_, n) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * n) / 8000)));
        const payload = new Uint8Array(160);
        encodeG711(m.codec, pcm, payload);
        const pt = m.codec === 'PCMU' ? 0 : 8;
        const clock = new MediaClock();
        clock.add((tick) => {
          for (let i = 0; i < sockets.length; i++) {
            const packet = Buffer.allocUnsafe(172);
            writeRtpHeader(packet, tick === 0, pt, tick & 0xffff, (tick * 160) >>> 0, 1000 + i);
            packet.set(payload, 12);
            sockets[i]!.send(packet, m.agentPorts[i]!, '127.0.0.1');
            sent++;
          }
        });
        clock.start();
      })();
    } else if (m.kind === 'record') {
      jitter.recording = m.on;
      if (m.on) {
        cpu0 = process.cpuUsage();
        t0 = performance.now();
        sent = 0;
      }
    } else if (m.kind === 'report') {
      const cpu = process.cpuUsage(cpu0);
      send({ kind: 'stats', frames: jitter.frames, jitter: jitter.summary(), cpuPct: ((cpu.user + cpu.system) / 1000 / (performance.now() - t0)) * 100, sent });
      setTimeout(() => process.exit(0), 50);
    }
  });
}

async function e1Bridged(): Promise<void> {
  const codec: CodecName = values['phone-codec'] === 'PCMA' ? 'PCMA' : 'PCMU';
  const logger = pino({ level: 'silent' });
  const engine = new MediaEngine({ bindAddress: '127.0.0.1', codecs: ['PCMU', 'PCMA'], rtcpIntervalMs: 5000 }, logger);
  engine.start();
  const card = new SimCard({ name: 'bench', type: 'e1' });
  await card.start();
  const connected: ChannelRef[] = [];
  const calls: PstnCall[] = [];
  const toPstn = new Jitter();
  card.on('incoming', ({ channel }) => void card.answer(channel));
  card.on('answer', ({ channel }) => connected.push(channel));
  for (let i = 0; i < 30; i++) {
    const call = card.pstn.placeCall({ from: `21255501${String(i).padStart(2, '0')}`, to: '5550100' });
    calls.push(call);
    call.on('frame', () => toPstn.arrived(call.id, performance.now()));
  }
  await Promise.all(calls.map((c) => c.until('connected')));
  for (const call of calls) call.playSource(new ToneSource({ frequencies: [1000], levelDbm0: -13, cadenceMs: [] }));
  const sessions: RtpSession[] = [];
  for (let i = 0; i < connected.length; i++) sessions.push(await engine.createSession({ logger, codec }));

  const phones = fork(new URL(import.meta.url), ['--phones'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = (kind: PhonesMessage['kind']): Promise<PhonesMessage> => new Promise((resolve) => {
    const on = (m: PhonesMessage): void => {
      if (m.kind !== kind) return;
      phones.off('message', on);
      resolve(m);
    };
    phones.on('message', on);
  });
  const portsReply = next('ports');
  phones.send({ kind: 'start', agentPorts: sessions.map((s) => s.localPort), codec } satisfies PhonesMessage);
  const ports = (await portsReply) as Extract<PhonesMessage, { kind: 'ports' }>;
  const bridges = connected.map((channel, i) => {
    const session = sessions[i]!;
    session.setRemote({ address: '127.0.0.1', port: ports.ports[i]! });
    session.setCodec(codec, undefined);
    const bridge = new ChannelMedia({ card, channel, law: 'PCMA', session, log: logger, inbandDigits: false });
    bridge.start();
    return bridge;
  });

  await sleep(warmup * 1000);
  phones.send({ kind: 'record', on: true } satisfies PhonesMessage);
  toPstn.recording = true;
  const before = bridges.map((b) => b.stats);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  toPstn.recording = false;
  const statsReply = next('stats');
  phones.send({ kind: 'report' } satisfies PhonesMessage);
  const phoneStats = (await statsReply) as Extract<PhonesMessage, { kind: 'stats' }>;
  const after = bridges.map((b) => b.stats);
  const lineToPhone = after.reduce((n, s, i) => n + s.lineToPhone - before[i]!.lineToPhone, 0);
  const phoneToLine = after.reduce((n, s, i) => n + s.phoneToLine - before[i]!.phoneToLine, 0);
  const expected = Math.round((30 * wall) / 20);
  const cpuPct = ((cpu.user + cpu.system) / 1000 / wall) * 100;
  console.log(`E1, 30 channels bridged to RTP (phones ${codec}, E1 A-law: ${codec === 'PCMA' ? 'no transcoding' : 'transcoded both ways'}), ${(wall / 1000).toFixed(1)} s window`);
  console.log(`  CPU                 ${cpuPct.toFixed(1)} % of one core (card + PSTN + bridge + media engine); phones' process ${phoneStats.cpuPct.toFixed(1)} %`);
  console.log(`  line → phones       ${lineToPhone} frames bridged, ${phoneStats.frames} packets arrived (${expected} due), jitter ${phoneStats.jitter}`);
  console.log(`  phones → line       ${phoneStats.sent} packets sent, ${phoneToLine} frames bridged, ${toPstn.frames} arrived at the PSTN, jitter ${toPstn.summary()}`);
  const clock = engine.stats().clock;
  console.log(`  media 20 ms clock   late p50 ${clock.lateP50Ms.toFixed(1)} ms, p99 ${clock.lateP99Ms.toFixed(1)} ms, skipped ticks ${clock.skippedTicks}`);
  console.log(JSON.stringify({ bench: 'linecard-e1-bridged', codec, seconds: Math.round(wall) / 1000, cpuPct: Math.round(cpuPct * 10) / 10, lineToPhone, phonesArrived: phoneStats.frames, phoneToLine, pstnArrived: toPstn.frames, due: expected }));
  for (const b of bridges) b.stop();
  await card.stop();
  await engine.stop();
}

async function seizeToDial(signalling: 'pri' | 'cas', timeScale: number): Promise<void> {
  const card = new SimCard({ name: 'bench', type: 'e1', signalling, timeScale, subscribers: [{ number: values.number, behaviour: 'busy' }] });
  await card.start();
  const samples: number[] = [];
  const ch = { span: 1, channel: 1 };
  for (let i = 0; i < dials; i++) {
    const cleared = new Promise<void>((resolve) => {
      const onState = (e: { state: string }): void => {
        if (e.state === 'idle') {
          card.off('state', onState);
          resolve();
        }
      };
      card.on('state', onState);
    });
    const t0 = performance.now();
    await card.dial(ch, { number: values.number });
    samples.push(performance.now() - t0);
    await cleared; // the busy subscriber clears the call; wait for the channel to be free
  }
  console.log(`  ${signalling.toUpperCase()} ${timeScale === 0 ? 'no signalling time' : 'real signalling'}`.padEnd(36) + quantiles(samples));
  await card.stop();
}

async function serialSeizeToDial(kind: EmulatedKind): Promise<void> {
  const emu = await ModemEmulator.start({ kind });
  const card = new SerialAtCard({ name: 'bench', kind, device: emu.hostPath });
  await card.start();
  const samples: number[] = [];
  const ch = { span: 1, channel: 1 };
  for (let i = 0; i < dials; i++) {
    const dialled = new Promise((r) => emu.once('dial', r));
    const t0 = performance.now();
    await card.dial(ch, { number: values.number });
    samples.push(performance.now() - t0);
    await dialled;
    await card.release(ch);
  }
  console.log(`  serial-at ${kind} (pty)`.padEnd(36) + quantiles(samples));
  await card.stop();
  await emu.close();
}

if (values.phones) {
  await phonesProcess();
} else {
  const only = values.only;
  if (only === undefined || only === 'e1') await fullE1();
  if (only === undefined || only === 'bridged') await e1Bridged();
  if (only === undefined || only === 'dial') {
    console.log(`Seize-to-dial latency, ${dials} dials each (${values.number.length} digits)`);
    await seizeToDial('pri', 1);
    await seizeToDial('cas', 1);
    await seizeToDial('pri', 0);
    await seizeToDial('cas', 0);
    await serialSeizeToDial('voice-modem');
    await serialSeizeToDial('cellular');
  }
}
