// Concurrent voicemail deposits: N callers leave a message at the same time, over
// real RTP, into the real voicemail subsystem (store in SQLite, µ-law WAV files,
// fsync + rename + index per message).
//
// Two processes: this one is the agent side (media engine, Voicemail, store), so
// its CPU is measured alone; a generator child holds the N phones. Each phone skips
// the greeting with # (RFC 4733), waits for the tone, speaks an espeak-ng sentence
// looped to --seconds, then presses #. With --pin (and ≥ 2 cores) the agent side
// runs on CPU 0 and the generator on CPU 1.
//
// Figures per N:
//   saved        deposits that ended 'saved'
//   correct      stored files whose length is within 100 ms of what was spoken and
//                whose waveform correlates > 0.95 with it (checked after the window)
//   lost         RTP packets the phones sent during recording that the agent did
//                not receive (per the phones' counters vs the agent sessions')
//   CPU %        user + system of the agent process over the recording window
//   disk kB/s    bytes the agent process wrote (/proc/self/io write_bytes) per second
//                of the window: message audio plus SQLite (WAL) writes
//   indexed p99  ms from the caller's final # (sent by the generator) to the
//                message being indexed (the voicemail.deposited event): the end of
//                recording, flush, fsync, rename, fsync folder, SQLite commit
// It prints figures, never pass/fail; the last line is JSON.
//
//   node bench/voicemail-deposit.ts                       # N = 100, 20 s messages
//   node bench/voicemail-deposit.ts --calls 10,50,100 --seconds 10 --pin
//   node bench/voicemail-deposit.ts --calls 4 --seconds 3  # a smoke run
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { PcmSource } from '../agent/media/audio-source.ts';
import { MediaEngine } from '../agent/media/engine.ts';
import type { RtpSession } from '../agent/media/rtp-session.ts';
import { readWavFile, writeWavFile } from '../agent/media/wav.ts';
import { EventBus } from '../agent/events/bus.ts';
import { Database } from '../agent/store/db.ts';
import { GroupCommitter } from '../agent/store/group-commit.ts';
import { migrate } from '../agent/store/migrations.ts';
import { buildPrompts } from '../agent/voicemail/prompts/build.ts';
import { Voicemail } from '../agent/voicemail/voicemail.ts';
import { afterBeep, bestCorrelation, trimmedSpeech } from '../test/helpers/voicemail.ts';

const HOST = '127.0.0.1';
const SELF = fileURLToPath(import.meta.url);

type ToGenerator = { op: 'setup'; agentPorts: number[]; speechFile: string; seconds: number } | { op: 'go' } | { op: 'exit' };
type FromGenerator =
  | { op: 'ready'; phonePorts: number[] }
  | { op: 'pressed'; index: number; at: number }
  | { op: 'done'; sent: number[] };

// ---- generator (child) ---------------------------------------------------------

async function generator(): Promise<void> {
  const media = new MediaEngine({ bindAddress: HOST }, pino({ level: 'silent' }));
  media.start();
  const phones: RtpSession[] = [];
  let speech: Int16Array = new Int16Array(0);
  let seconds = 0;
  const send = (m: FromGenerator): void => void process.send?.(m);
  process.on('message', async (m: ToGenerator) => {
    if (m.op === 'setup') {
      speech = (await readWavFile(m.speechFile)).samples;
      seconds = m.seconds;
      for (const port of m.agentPorts) {
        const phone = await media.createSession({ telephoneEventPt: 101 });
        phone.setRemote({ address: HOST, port });
        phones.push(phone);
      }
      send({ op: 'ready', phonePorts: phones.map((p) => p.localPort) });
    } else if (m.op === 'go') {
      const message = new Int16Array(seconds * 8000);
      for (let i = 0; i < message.length; i++) message[i] = speech[i % speech.length]!;
      await Promise.all(
        phones.map(async (phone, index) => {
          await new Promise((r) => setTimeout(r, 200 + ((index * 7) % 100)));
          const tone = afterBeep(phone, 60_000);
          await phone.sendDigits('#');
          await tone;
          await phone.play(new PcmSource(message));
          send({ op: 'pressed', index, at: Date.now() });
          await phone.sendDigits('#');
        }),
      );
      send({ op: 'done', sent: phones.map((p) => p.stats().packetsSent) });
    } else {
      await media.stop();
      process.exit(0);
    }
  });
}

// ---- agent side ----------------------------------------------------------------

interface RunFigures {
  calls: number;
  seconds: number;
  saved: number;
  correct: number;
  packetsExpected: number;
  packetsReceived: number;
  lost: number;
  cpuPercent: number;
  diskKBps: number;
  storedKB: number;
  indexedP50Ms: number;
  indexedP99Ms: number;
}

function writeBytes(io: string): number {
  return Number(/^write_bytes: (\d+)/m.exec(io)?.[1] ?? 0);
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runOnce(calls: number, seconds: number, speechFile: string, speech: Int16Array, pin: boolean): Promise<RunFigures> {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-bench-'));
  const logger = pino({ level: 'silent' });
  const db = await Database.open(path.join(stateDir, 'branchline.sqlite'));
  await migrate(db);
  const committer = new GroupCommitter(db, { coalesceMs: 2 });
  const bus = new EventBus(logger);
  const indexedAt = new Map<string, number>();
  bus.on('voicemail.deposited', (e) => indexedAt.set(e.mailbox, Date.now()));
  const mailboxes = Array.from({ length: calls }, (_, i) => String(2000 + i));
  const vm = new Voicemail({
    settings: { format: 'ulaw', pin_attempts: 3, lockout: { failures: 5, duration: 900 }, mwi: { unsolicited: true, min_expires: 60, max_expires: 3600 } },
    extensions: mailboxes.map((number) => ({ number, password: 'secret', voicemail: { pin: '1234', max_messages: 100, max_message_seconds: seconds + 30, min_message_seconds: 1, silence_seconds: 10 } })),
    stateDir,
    domain: 'bench.test',
    logger,
    bus,
    db,
    committer,
  });
  await vm.start();
  const media = new MediaEngine({ bindAddress: HOST }, logger);
  media.start();
  const legs: RtpSession[] = [];
  for (let i = 0; i < calls; i++) legs.push(await media.createSession({ telephoneEventPt: 101 }));

  const child: ChildProcess = spawn(pin ? 'taskset' : process.execPath, pin ? ['-c', '1', process.execPath, SELF, '--generator'] : [SELF, '--generator'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages: FromGenerator[] = [];
  let wake: (() => void) | undefined;
  child.on('message', (m: FromGenerator) => {
    messages.push(m);
    wake?.();
  });
  const next = async <K extends FromGenerator['op']>(op: K): Promise<Extract<FromGenerator, { op: K }>> => {
    for (;;) {
      const i = messages.findIndex((m) => m.op === op);
      if (i >= 0) return messages.splice(i, 1)[0] as Extract<FromGenerator, { op: K }>;
      await new Promise<void>((r) => (wake = r));
    }
  };
  child.send({ op: 'setup', agentPorts: legs.map((l) => l.localPort), speechFile, seconds } satisfies ToGenerator);
  const { phonePorts } = await next('ready');
  legs.forEach((leg, i) => leg.setRemote({ address: HOST, port: phonePorts[i]! }));

  const ioBefore = writeBytes(await readFile('/proc/self/io', 'utf8'));
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const pressedAt = new Map<number, number>();
  const deposits = legs.map((leg, i) => vm.deposit(leg, { mailbox: mailboxes[i]!, reason: 'no-answer', caller: { number: '1000' } }));
  child.send({ op: 'go' } satisfies ToGenerator);
  const collectPresses = (async () => {
    for (let n = 0; n < calls; n++) {
      const p = await next('pressed');
      pressedAt.set(p.index, p.at);
    }
  })();
  const results = await Promise.all(deposits);
  await collectPresses;
  const wall = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  await committer.idle();
  const ioAfter = writeBytes(await readFile('/proc/self/io', 'utf8'));
  const done = await next('done');
  child.send({ op: 'exit' } satisfies ToGenerator);

  const received = legs.reduce((n, l) => n + l.stats().packetsReceived, 0);
  const sent = done.sent.reduce((a, b) => a + b, 0);
  let saved = 0;
  let correct = 0;
  let storedBytes = 0;
  const expectedMs = seconds * 1000;
  const spoken = new Int16Array(seconds * 8000);
  for (let i = 0; i < spoken.length; i++) spoken[i] = speech[i % speech.length]!;
  for (const r of results) {
    if (r.outcome !== 'saved') continue;
    saved++;
    const wav = await readWavFile(r.message.file);
    storedBytes += wav.samples.length;
    const okLength = Math.abs(r.message.durationMs - expectedMs) <= 100;
    // Correlation on the first 2 s is enough to tell a right file from a wrong one.
    const head = bestCorrelation(spoken.subarray(0, 16000), wav.samples.subarray(0, 16000), 400).correlation;
    if (okLength && head > 0.95) correct++;
  }
  const latencies = [...pressedAt].map(([i, at]) => (indexedAt.get(mailboxes[i]!) ?? at) - at);
  await media.stop();
  await committer.idle();
  await db.close();
  await rm(stateDir, { recursive: true, force: true });
  return {
    calls,
    seconds,
    saved,
    correct,
    packetsExpected: sent,
    packetsReceived: received,
    lost: Math.max(0, sent - received),
    cpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / wall) * 1000) / 10,
    diskKBps: Math.round((ioAfter - ioBefore) / 1024 / (wall / 1000)),
    storedKB: Math.round(storedBytes / 1024),
    indexedP50Ms: percentile(latencies, 50),
    indexedP99Ms: percentile(latencies, 99),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      calls: { type: 'string', default: '100' },
      seconds: { type: 'string', default: '20' },
      pin: { type: 'boolean', default: false },
      generator: { type: 'boolean', default: false },
    },
  });
  if (values.generator) return generator();
  const load = os.loadavg()[0] ?? 0;
  if (load > 0.5) console.error(`warning: load average ${load.toFixed(2)}: figures will be disturbed`);
  await buildPrompts();
  const work = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-bench-speech-'));
  const speech = await trimmedSpeech('Hello, this is a benchmark caller leaving a voicemail message about tomorrow’s delivery schedule.');
  const speechFile = path.join(work, 'speech.wav');
  await writeWavFile(speechFile, speech, { fsync: false });
  const seconds = Number(values.seconds);
  const all: RunFigures[] = [];
  for (const n of values.calls.split(',').map(Number)) {
    const f = await runOnce(n, seconds, speechFile, speech, values.pin);
    all.push(f);
    console.log(
      `N=${f.calls} (${f.seconds} s each): saved ${f.saved}, correct ${f.correct}, lost ${f.lost}/${f.packetsExpected} packets, ` +
        `agent CPU ${f.cpuPercent} %, disk ${f.diskKBps} kB/s (${f.storedKB} kB of audio), indexed after # p50/p99 ${f.indexedP50Ms}/${f.indexedP99Ms} ms`,
    );
  }
  await rm(work, { recursive: true, force: true });
  console.log(JSON.stringify({ bench: 'voicemail-deposit', load, cores: os.cpus().length, runs: all }));
  await writeFile(path.join(os.tmpdir(), 'bl-vm-bench-last.json'), JSON.stringify(all));
}

await main();
