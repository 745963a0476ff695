// Anchored-media benchmark: N concurrent relayed G.711 calls through the media
// engine. Each call has two legs (two RtpSessions joined by a MediaRelay) and two
// "phones"; each phone sends 20 ms frames (50 packets/s) to its leg and receives
// the other phone's audio back, so per call the relay takes in 100 and sends out
// 100 packets per second (N = 200 → 40,000 packets/s in + out).
//
// Three processes: this orchestrator (idle), the relay (only the media engine, so
// its CPU is measured alone) and the generator (all phones: senders and sinks).
// With two or more cores they are pinned apart: relay on CPU 0, generator on 1
// (--no-pin leaves placement to the scheduler, for a machine shared with others).
// Pinning takes every thread of a process: the relay's V8 helper threads (GC,
// compiler) share CPU 0 with it, and their CPU counts in the relay's.
//
// --realtime makes the main thread of the relay and of the generator SCHED_RR, so
// that other work on a shared machine cannot preempt them; their helper threads
// (V8 GC and compiler workers) stay at normal priority and run in the main
// thread's idle time. With the helpers SCHED_RR too (--realtime-all-threads, how
// this bench ran before) a helper's job — a JIT compilation (up to 8 ms seen),
// the sweep of the received datagrams' buffers after a scavenge (1.5-3.5 ms) —
// held the relay thread off its core until the job ended: equal real-time
// priorities do not preempt each other. The appliance runs neither real-time (the
// unit has RestrictRealtime=true) nor pinned, so that was an artefact of the
// bench. What the main-thread-only mode still suffers on a shared machine: other
// work can hold off a helper the relay thread waits for (a parallel scavenge of
// 3-5 ms instead of 0.3 ms seen at load 2-3). Helpers at a lower real-time
// priority than the main thread are no way out: tried once, the main threads of
// both relay and generator then ran at 95 % of their cores (the kernel's
// real-time limit), apparently busy-waiting for helpers that could not run.
//
// What "added jitter" includes: the generator stamps a frame's send time just
// before send() (its own lateness against the schedule is not counted) and its
// arrival in its 'message' handler, so a delay of the generator's event loop in
// receiving is counted as the relay's. The floor row measures that share: the same
// generator and load with the phones wired to each other. The phones run on the
// other core (CPU 1), never on the relay's.
//
// Figures per N (after a warm-up, over a measurement window):
//   relay CPU %     user+system time of the relay process / wall time
//   lost            frames sent in the window that never reached the far phone
//   added jitter    per frame, |arrival interval at the sink − send interval at
//                   the generator| (ms), p50 / p99 / max
//   floor           the same figure with the phones wired straight to each other
//                   (no relay): what the generator itself adds to the measurement
//   RSS             the relay process, at the end of the window
//   clock p99       lateness of the relay's 20 ms packet clock: > 1-2 ms means
//                   the relay did not get the CPU when it needed it
//   gen late p99    how late the generator sent, against its schedule
//   preempted       involuntary context switches of the relay's main thread in
//                   the window: other processes (or, with --realtime-all-threads,
//                   its own V8 helper threads) taking its CPU
// It prints figures, never pass/fail.
//
//   node bench/media-relay.ts                          # N = 50,100,200,300 pass-through
//   node bench/media-relay.ts --calls 200,400 --seconds 20
//   node bench/media-relay.ts --transcode              # leg B PCMA: µ-law↔A-law on every packet
//   node bench/media-relay.ts --repeat 3 --nice=-10    # on a machine shared with other work
//   node bench/media-relay.ts --realtime               # SCHED_RR: what the relay does when it has the CPU
//   node bench/media-relay.ts --realtime --realtime-all-threads   # the helper threads SCHED_RR too (before 2026-11-22)
//   BENCH_CHILD_FLAGS=--max-semi-space-size=64 node bench/media-relay.ts   # V8/Node flags for relay and generator
//   BENCH_RELAY_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node bench/media-relay.ts   # flags for the relay only
//   node bench/media-relay.ts --probe                  # + the relay's GC pauses and event-loop delay, and how
//                                                      #   many frames with > 2 ms added jitter follow a relay GC
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { alawToLinear, linearToAlaw, linearToUlaw, ulawToLinear } from '../agent/media/g711.ts';
import { MediaEngine } from '../agent/media/engine.ts';
import { createRtpView, parseRtpInto, writeRtpHeader } from '../agent/media/rtp-packet.ts';
import type { RtpSession } from '../agent/media/rtp-session.ts';
import type { MediaRelay } from '../agent/media/relay.ts';
import { createLogger } from '../agent/log/logger.ts';

const HOST = '127.0.0.1';
const FRAME_MS = 20;
const HEADER = 12;
const PAYLOAD = 160;

// ---- messages between the processes ------------------------------------------

type ToRelay =
  | { op: 'setup'; calls: number; phonePorts: [number, number][]; transcode: boolean }
  | { op: 'mark' }
  | { op: 'report' }
  | { op: 'exit' };

type FromRelay =
  | { op: 'ready'; legPorts: [number, number][] }
  | { op: 'marked' }
  | {
      op: 'report';
      cpuMicros: number;
      wallMs: number;
      rssBytes: number;
      forwarded: number;
      clockLateP99Ms: number;
      preempted: number;
      probe?: RelayProbe;
    };

/** --probe: what happened inside the relay process during the window. */
interface RelayProbe {
  /** GC pauses on the main thread: [epoch start ms, duration ms, kind]. */
  gc: [number, number, string][];
  /** Event-loop delay (1 ms sampling timer): p50, p99, max ms. */
  loopDelay: number[];
  /**
   * Stalls of the relay's event loop seen by the 1 ms timer, gaps > 3 ms:
   * [epoch ms at the end, gap ms, main-thread CPU ms during the gap].
   */
  stalls: [number, number, number][];
  /** Steal time (the hypervisor running something else) per CPU in the window, ms. */
  steal: number[];
  /** CPU ms used in the window per thread name (main thread and Node/V8 helpers). */
  threads: Record<string, number>;
}

/** Steal time per CPU so far, ms. */
function stealMs(): number[] {
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d/.test(l))
    .map((l) => Number(l.split(/\s+/)[8]) * 10);
}

/** CPU time (ms) of each thread of this process, summed by thread name. */
function threadCpu(): Record<string, number> {
  const out: Record<string, number> = {};
  const tick = 1000 / 100; // USER_HZ
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (Number(fields[11]) + Number(fields[12])) * tick;
      out[name] = (out[name] ?? 0) + ms;
    } catch {
      // The thread ended.
    }
  }
  return out;
}

type ToGenerator =
  | { op: 'bind'; calls: number }
  | { op: 'start'; targets: [number, number][]; transcode: boolean; seconds: number }
  | { op: 'window'; fromMs: number; toMs: number }
  | { op: 'exit' };

type FromGenerator =
  | { op: 'bound'; ports: [number, number][] }
  | { op: 'started'; startedAt: number }
  | {
      op: 'results';
      sent: number;
      received: number;
      lost: number;
      jitter: number[];
      sendLateP99Ms: number;
      cpuPercent: number;
      /** --probe: [epoch arrival ms, added jitter ms] of frames with added jitter > 1 ms. */
      spikes?: [number, number][];
    };

// ---- payload index that survives µ-law↔A-law transcoding ---------------------
//
// The generator writes the frame number into the first 4 payload bytes as base-64
// digits, using only µ-law codes that come back unchanged from µ→A→µ (and their
// A-law images for the other direction), so a sink can read the frame number
// whether or not the relay transcoded the payload.
const ULAW_DIGITS: number[] = [];
for (let u = 0; u < 256 && ULAW_DIGITS.length < 64; u++) {
  const a = linearToAlaw(ulawToLinear(u));
  if (linearToUlaw(alawToLinear(a)) === u && u !== 0x7f) ULAW_DIGITS.push(u);
}
const ALAW_DIGITS = ULAW_DIGITS.map((u) => linearToAlaw(ulawToLinear(u)));
const DIGIT_OF = new Int16Array(256).fill(-1);
const DIGIT_OF_ALAW = new Int16Array(256).fill(-1);
ULAW_DIGITS.forEach((u, i) => (DIGIT_OF[u] = i));
ALAW_DIGITS.forEach((a, i) => (DIGIT_OF_ALAW[a] = i));

function writeIndex(buf: Buffer, offset: number, index: number, alaw: boolean): void {
  const digits = alaw ? ALAW_DIGITS : ULAW_DIGITS;
  for (let k = 0; k < 4; k++) buf[offset + k] = digits[(index >>> (6 * k)) & 63]!;
}

function readIndex(buf: Buffer, offset: number, alaw: boolean): number {
  const table = alaw ? DIGIT_OF_ALAW : DIGIT_OF;
  let index = 0;
  for (let k = 0; k < 4; k++) {
    const d = table[buf[offset + k]!]!;
    if (d < 0) return -1;
    index |= d << (6 * k);
  }
  return index;
}

// ---- relay process -----------------------------------------------------------

async function relayRole(): Promise<void> {
  const media = new MediaEngine({ bindAddress: HOST }, createLogger('warn'));
  media.start();
  const sessions: RtpSession[] = [];
  const relays: MediaRelay[] = [];
  const forwarded = (): number => relays.reduce((n, r) => n + r.stats().aToB + r.stats().bToA, 0);
  // Involuntary context switches of the main thread (the one that relays): the
  // process-wide count would also count helper threads that the main thread preempts.
  const preemptions = (): number => {
    const status = readFileSync(`/proc/self/task/${process.pid}/status`, 'utf8');
    return Number(/nonvoluntary_ctxt_switches:\s*(\d+)/.exec(status)?.[1] ?? 0);
  };
  let mark = { cpu: process.cpuUsage(), at: performance.now(), forwarded: 0, preempted: 0 };
  const send = (m: FromRelay): void => void process.send!(m);
  const probing = process.env.BENCH_PROBE === '1';
  let gcEntries: [number, number, string][] = [];
  const gcKinds: Record<number, string> = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weak-callbacks' };
  const loopDelay = probing ? monitorEventLoopDelay({ resolution: 1 }) : undefined;
  let stalls: [number, number, number][] = [];
  let threadsAtMark: Record<string, number> = {};
  let stealAtMark: number[] = [];
  if (probing) {
    let last = performance.now();
    let lastCpu = process.threadCpuUsage();
    setInterval(() => {
      const now = performance.now();
      const cpu = process.threadCpuUsage();
      if (now - last > 3) {
        const cpuMs = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
        stalls.push([performance.timeOrigin + now, now - last, cpuMs]);
      }
      last = now;
      lastCpu = cpu;
    }, 1);
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
        gcEntries.push([performance.timeOrigin + e.startTime, e.duration, gcKinds[kind] ?? String(kind)]);
      }
    }).observe({ entryTypes: ['gc'] });
  }
  process.on('message', async (m: ToRelay) => {
    if (m.op === 'setup') {
      const legPorts: [number, number][] = [];
      for (let i = 0; i < m.calls; i++) {
        const [p1, p2] = m.phonePorts[i]!;
        const a = await media.createSession({ codec: 'PCMU', telephoneEventPt: 101, remote: { address: HOST, port: p1 } });
        const b = await media.createSession({
          codec: m.transcode ? 'PCMA' : 'PCMU',
          telephoneEventPt: 101,
          remote: { address: HOST, port: p2 },
        });
        sessions.push(a, b);
        relays.push(media.relay(a, b));
        legPorts.push([a.localPort, b.localPort]);
      }
      send({ op: 'ready', legPorts });
    } else if (m.op === 'mark') {
      media.clock.resetStats();
      mark = { cpu: process.cpuUsage(), at: performance.now(), forwarded: forwarded(), preempted: preemptions() };
      gcEntries = [];
      stalls = [];
      if (probing) {
        threadsAtMark = threadCpu();
        stealAtMark = stealMs();
      }
      loopDelay?.reset();
      loopDelay?.enable();
      send({ op: 'marked' });
    } else if (m.op === 'report') {
      const cpu = process.cpuUsage(mark.cpu);
      send({
        op: 'report',
        cpuMicros: cpu.user + cpu.system,
        wallMs: performance.now() - mark.at,
        rssBytes: process.memoryUsage().rss,
        forwarded: forwarded() - mark.forwarded,
        // Involuntary context switches: how often other work took the relay's CPU.
        preempted: preemptions() - mark.preempted,
        clockLateP99Ms: media.clock.stats().lateP99Ms,
        probe: probing
          ? {
              gc: gcEntries,
              loopDelay: loopDelay ? [0.5, 0.99, 1].map((q) => (q === 1 ? loopDelay.max : loopDelay.percentile(q * 100)) / 1e6) : [],
              stalls,
              steal: stealMs().map((v, i) => v - (stealAtMark[i] ?? 0)),
              threads: Object.fromEntries(Object.entries(threadCpu()).map(([k, v]) => [k, v - (threadsAtMark[k] ?? 0)])),
            }
          : undefined,
      });
    } else if (m.op === 'exit') {
      for (const r of relays) r.stop();
      await media.stop();
      process.exit(0);
    }
  });
}

// ---- generator process -------------------------------------------------------

interface Stream {
  socket: dgram.Socket; // sends from here (the phone's port)
  target: number; // the leg port (or the other phone, for the floor run)
  alaw: boolean; // payload law on this phone's side
  ssrc: number;
  next: number; // frame number to send next
  due: number; // when that frame is due (monotonic ms)
  buf: Buffer[]; // a few buffers in rotation: dgram holds one until sent
  sentAt: Float64Array;
  arrivedAt: Float64Array; // of the frames of the stream going the other way
}

async function generatorRole(): Promise<void> {
  const phones: dgram.Socket[][] = [];
  let streams: Stream[] = [];
  let timer: NodeJS.Timeout | undefined;
  let capacity = 0;
  let sendLate: number[] = [];
  let lastArrival = 0;
  let cpuAtStart = { cpu: process.cpuUsage(), at: performance.now() };
  const send = (m: FromGenerator): void => void process.send!(m);

  const bind = (): Promise<dgram.Socket> =>
    new Promise((resolve) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, HOST, () => resolve(s));
    });

  process.on('message', async (m: ToGenerator) => {
    if (m.op === 'bind') {
      const ports: [number, number][] = [];
      for (let i = 0; i < m.calls; i++) {
        const pair = [await bind(), await bind()];
        phones.push(pair);
        ports.push([pair[0]!.address().port, pair[1]!.address().port]);
      }
      send({ op: 'bound', ports });
    } else if (m.op === 'start') {
      capacity = Math.ceil(((m.seconds + 5) * 1000) / FRAME_MS);
      const startedAt = performance.now() + 50;
      streams = [];
      const view = createRtpView();
      phones.forEach((pair, call) => {
        // Phone 0 talks to leg A (µ-law), phone 1 to leg B (A-law when transcoding).
        const mine = [0, 1].map((side) => ({
          socket: pair[side]!,
          target: m.targets[call]![side]!,
          alaw: side === 1 && m.transcode,
          ssrc: 0x1000 + call * 2 + side,
          next: 0,
          // Each phone at its own phase within the 20 ms period, as real phones are.
          due: startedAt + Math.random() * FRAME_MS,
          buf: Array.from({ length: 4 }, () => Buffer.alloc(HEADER + PAYLOAD, side === 1 && m.transcode ? 0xd5 : 0xff)),
          sentAt: new Float64Array(capacity).fill(NaN),
          arrivedAt: new Float64Array(capacity).fill(NaN),
        }));
        mine.forEach((stream, side) => {
          const other = mine[1 - side]!;
          // What arrives at this phone was sent by the other phone.
          stream.socket.on('message', (msg) => {
            const at = performance.now();
            if (parseRtpInto(msg, msg.length, view) !== undefined) return;
            const index = readIndex(msg, view.payloadOffset, stream.alaw);
            if (index >= 0 && index < capacity) other.arrivedAt[index] = at;
            lastArrival = at;
          });
        });
        streams.push(...mine);
      });
      const tick = (): void => {
        const now = performance.now();
        for (const s of streams) {
          // Send every frame that is due (a late wake-up sends the backlog).
          while (s.due <= now && s.next < capacity) {
            const buf = s.buf[s.next & 3]!;
            writeRtpHeader(buf, s.next === 0, s.alaw ? 8 : 0, s.next & 0xffff, (s.next * PAYLOAD) >>> 0, s.ssrc);
            writeIndex(buf, HEADER, s.next, s.alaw);
            const t = performance.now();
            s.sentAt[s.next] = t;
            sendLate.push(t - s.due);
            s.socket.send(buf, 0, buf.length, s.target, HOST);
            s.next++;
            s.due += FRAME_MS;
          }
        }
        if (sendLate.length > 100_000) sendLate = sendLate.slice(-50_000);
      };
      timer = setInterval(tick, 1);
      cpuAtStart = { cpu: process.cpuUsage(), at: performance.now() };
      send({ op: 'started', startedAt });
    } else if (m.op === 'window') {
      clearInterval(timer);
      const used = process.cpuUsage(cpuAtStart.cpu);
      const cpuPercent = ((used.user + used.system) / 1000 / (performance.now() - cpuAtStart.at)) * 100;
      // Let the last frames land: wait until nothing has arrived for 200 ms (a
      // stalled generator may still have frames queued in its sockets).
      const stoppedAt = performance.now();
      do await new Promise((r) => setTimeout(r, 50));
      while (performance.now() - lastArrival < 200 && performance.now() - stoppedAt < 3000);
      let sent = 0;
      let received = 0;
      let lost = 0;
      const jitter: number[] = [];
      const spikes: [number, number][] = [];
      for (const s of streams) {
        for (let i = 0; i < capacity; i++) {
          const t = s.sentAt[i]!;
          if (Number.isNaN(t) || t < m.fromMs || t >= m.toMs) continue;
          sent++;
          const a = s.arrivedAt[i]!;
          if (Number.isNaN(a)) {
            lost++;
            continue;
          }
          received++;
          const prevSent = s.sentAt[i - 1];
          const prevArrived = s.arrivedAt[i - 1];
          if (prevSent !== undefined && prevArrived !== undefined && !Number.isNaN(prevArrived) && prevSent >= m.fromMs) {
            const j = Math.abs(a - prevArrived - (t - prevSent));
            jitter.push(j);
            if (j > 1 && process.env.BENCH_PROBE === '1') spikes.push([performance.timeOrigin + a, j]);
          }
        }
      }
      sendLate.sort((x, y) => x - y);
      send({
        op: 'results',
        sent,
        received,
        lost,
        jitter: summarise(jitter),
        sendLateP99Ms: sendLate[Math.floor(sendLate.length * 0.99)] ?? 0,
        cpuPercent,
        spikes: process.env.BENCH_PROBE === '1' ? spikes : undefined,
      });
    } else if (m.op === 'exit') {
      for (const pair of phones) for (const s of pair) s.close();
      process.exit(0);
    }
  });
}

/** [p50, p99, max] in ms. */
function summarise(values: number[]): number[] {
  if (values.length === 0) return [NaN, NaN, NaN];
  const sorted = Float64Array.from(values).sort();
  const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
  return [q(0.5), q(0.99), sorted[sorted.length - 1]!];
}

// ---- orchestrator ------------------------------------------------------------

let niceness = 0;
let realtime = false;
/** --realtime: 'main' = only each child's main thread SCHED_RR; 'all' = every thread (chrt on the command). */
let realtimeThreads: 'main' | 'all' = 'main';
let withFloor = true;

function child(role: 'relay' | 'generator', cpu: number | undefined): ChildProcess {
  const script = fileURLToPath(import.meta.url);
  const flags = `${process.env.BENCH_CHILD_FLAGS ?? ''} ${role === 'relay' ? (process.env.BENCH_RELAY_FLAGS ?? '') : ''}`;
  const command = [process.execPath, ...flags.split(' ').filter(Boolean), script, '--role', role];
  if (cpu !== undefined) command.unshift('taskset', '-c', String(cpu));
  if (niceness !== 0) command.unshift('nice', '-n', String(niceness));
  if (realtime && realtimeThreads === 'all') command.unshift('chrt', '--rr', '10');
  const env = realtime && realtimeThreads === 'main' ? { ...process.env, BENCH_RT_MAIN: '1' } : process.env;
  const stdio: ['ignore', 'inherit', 'inherit', 'ipc'] = ['ignore', 'inherit', 'inherit', 'ipc'];
  return spawn(command[0]!, command.slice(1), { stdio, env });
}

function request<T extends { op: string }>(proc: ChildProcess, message: object, reply: T['op']): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: T): void => {
      if (m.op !== reply) return;
      proc.off('message', on);
      resolve(m);
    };
    proc.on('message', on);
    proc.send(message);
  });
}

interface Row {
  calls: number;
  mode: string;
  cpuPercent: number;
  packetsPerSecond: number;
  sent: number;
  lost: number;
  jitter: number[];
  floor: number[];
  rssMb: number;
  clockLateP99Ms: number;
  sendLateP99Ms: number;
  generatorCpuPercent: number;
  preempted: number;
  probe?: RelayProbe;
  spikes?: [number, number][];
}

async function runOne(calls: number, seconds: number, warmup: number, transcode: boolean, pin: boolean): Promise<Row> {
  const relayCpu = pin ? 0 : undefined;
  const generatorCpu = pin ? 1 : undefined;
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  // The floor: phones straight to each other, same generator, same load.
  const floor = !withFloor ? [NaN, NaN, NaN] : await (async () => {
    const gen = child('generator', generatorCpu);
    const bound = await request<Extract<FromGenerator, { op: 'bound' }>>(gen, { op: 'bind', calls }, 'bound');
    const crossed = bound.ports.map(([p1, p2]) => [p2, p1] as [number, number]);
    const started = await request<Extract<FromGenerator, { op: 'started' }>>(
      gen,
      { op: 'start', targets: crossed, transcode: false, seconds: seconds + warmup },
      'started',
    );
    await sleep((warmup + seconds) * 1000 + 100);
    const from = started.startedAt + warmup * 1000;
    const r = await request<Extract<FromGenerator, { op: 'results' }>>(gen, { op: 'window', fromMs: from, toMs: from + seconds * 1000 }, 'results');
    gen.send({ op: 'exit' });
    return r.jitter;
  })();

  const relay = child('relay', relayCpu);
  const gen = child('generator', generatorCpu);
  try {
    const bound = await request<Extract<FromGenerator, { op: 'bound' }>>(gen, { op: 'bind', calls }, 'bound');
    const ready = await request<Extract<FromRelay, { op: 'ready' }>>(relay, { op: 'setup', calls, phonePorts: bound.ports, transcode }, 'ready');
    const started = await request<Extract<FromGenerator, { op: 'started' }>>(
      gen,
      { op: 'start', targets: ready.legPorts, transcode, seconds: seconds + warmup },
      'started',
    );
    await sleep(warmup * 1000 + 50);
    await request(relay, { op: 'mark' }, 'marked');
    await sleep(seconds * 1000);
    const report = await request<Extract<FromRelay, { op: 'report' }>>(relay, { op: 'report' }, 'report');
    const from = started.startedAt + warmup * 1000 + 50;
    const results = await request<Extract<FromGenerator, { op: 'results' }>>(
      gen,
      { op: 'window', fromMs: from, toMs: from + seconds * 1000 - 100 },
      'results',
    );
    return {
      calls,
      mode: transcode ? 'transcode' : 'pass-through',
      cpuPercent: (report.cpuMicros / 1000 / report.wallMs) * 100,
      packetsPerSecond: (report.forwarded * 2 * 1000) / report.wallMs,
      sent: results.sent,
      lost: results.lost,
      jitter: results.jitter,
      floor,
      rssMb: report.rssBytes / 2 ** 20,
      clockLateP99Ms: report.clockLateP99Ms,
      sendLateP99Ms: results.sendLateP99Ms,
      generatorCpuPercent: results.cpuPercent,
      preempted: report.preempted,
      probe: report.probe,
      spikes: results.spikes,
    };
  } finally {
    relay.send({ op: 'exit' });
    gen.send({ op: 'exit' });
    await Promise.all([relay, gen].map((p) => new Promise((r) => (p.exitCode === null ? p.once('exit', r) : r(null)))));
  }
}

function printProbe(row: Row): void {
  const probe = row.probe!;
  const byKind = new Map<string, { n: number; total: number; max: number }>();
  for (const [, d, kind] of probe.gc) {
    const k = byKind.get(kind) ?? { n: 0, total: 0, max: 0 };
    k.n++;
    k.total += d;
    k.max = Math.max(k.max, d);
    byKind.set(kind, k);
  }
  const gc = [...byKind].map(([kind, k]) => `${kind} ${k.n}× (total ${k.total.toFixed(1)} ms, max ${k.max.toFixed(2)} ms)`).join('; ');
  console.log(`#   relay GC in window: ${gc || 'none'}`);
  console.log(`#   relay event-loop delay p50/p99/max: ${probe.loopDelay.map((x) => x.toFixed(2)).join(' / ')} ms`);
  const big = (row.spikes ?? []).filter(([, j]) => j > 2);
  // A relay stall delays the frames that arrive right after it: count spikes
  // arriving from the pause's start to 3 ms after its end.
  const afterGc = big.filter(([at]) => probe.gc.some(([start, d]) => at >= start && at <= start + d + 3)).length;
  // The timer notices a stall when it ends: a spike whose frame arrived within
  // the stall or 3 ms after it is put down to the relay's event loop.
  const inStall = big.filter(([at]) => probe.stalls.some(([end, gap]) => at >= end - gap && at <= end + 3)).length;
  const stallMs = probe.stalls.reduce((n, [, g]) => n + g, 0);
  const stallCpuMs = probe.stalls.reduce((n, [, , c]) => n + c, 0);
  console.log(
    `#   relay event-loop stalls > 3 ms: ${probe.stalls.length} (total ${stallMs.toFixed(0)} ms of which main thread on CPU ${stallCpuMs.toFixed(0)} ms, max ${Math.max(0, ...probe.stalls.map(([, g]) => g)).toFixed(1)} ms); steal per CPU ${probe.steal.join('/')} ms; relay threads' CPU ms: ${Object.entries(probe.threads).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`,
  );
  const byDirection = new Map<number, number>();
  for (const [at] of big) byDirection.set(Math.floor(at / 10), (byDirection.get(Math.floor(at / 10)) ?? 0) + 1);
  console.log(
    `#   frames with added jitter > 2 ms: ${big.length} (${((big.length / Math.max(1, row.sent)) * 100).toFixed(2)} % of sent) in ${byDirection.size} distinct 10 ms slots; ${afterGc} within 3 ms after a relay GC pause, ${inStall} during or within 3 ms after a relay event-loop stall`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      calls: { type: 'string', default: '50,100,200,300' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      transcode: { type: 'boolean', default: false },
      // Pinning measures the relay on a core of its own; on a machine shared with
      // other work it can starve the relay behind a busy core (--no-pin).
      pin: { type: 'boolean', default: true },
      // Runs per N. On a shared machine a run can be disturbed by other work (its
      // relay clock lateness shows it); every run is printed, the summary takes
      // the run with the lowest p99 per N.
      repeat: { type: 'string', default: '1' },
      // Scheduling priority of the relay and the generator (nice -n). A negative
      // value keeps other work on a shared machine from preempting them, which is
      // closer to an appliance where the agent has the CPU to itself.
      nice: { type: 'string', default: '0' },
      // Run the main threads of the relay and the generator SCHED_RR (chrt --rr
      // -p 10, needs root): other work can no longer preempt them, as on an
      // appliance where the agent owns the CPU. Their helper threads keep normal
      // priority (see the top of this file). The kernel still keeps 5 % of each
      // second for everything else.
      realtime: { type: 'boolean', default: false },
      // With --realtime, run the children's helper threads (V8 GC and compiler
      // workers) at the same SCHED_RR priority as their main thread, as before:
      // pinned to the same core, a helper's job then holds the main thread off
      // until it ends.
      'realtime-all-threads': { type: 'boolean', default: false },
      // Report the relay's GC pauses and event-loop delay, and attribute frames
      // with > 2 ms added jitter to relay GC pauses (costs a 1 ms timer in the relay).
      probe: { type: 'boolean', default: false },
      // --no-floor skips the generator-only run (quicker experiments; floor shows NaN).
      floor: { type: 'boolean', default: true },
    },
    allowNegative: true,
  });
  // --realtime (main thread only): the thread that runs JavaScript takes SCHED_RR
  // itself; the helper threads Node and V8 started before keep normal priority.
  if (values.role && process.env.BENCH_RT_MAIN === '1') execFileSync('chrt', ['--rr', '-p', '10', String(process.pid)]);
  if (values.role === 'relay') return relayRole();
  if (values.role === 'generator') return generatorRole();

  const calls = values.calls.split(',').map(Number);
  const seconds = Number(values.seconds);
  const warmup = Number(values.warmup);
  const cpus = os.availableParallelism();
  const pin = values.pin && cpus >= 2;
  niceness = Number(values.nice);
  if (values.probe) process.env.BENCH_PROBE = '1';
  withFloor = values.floor;
  realtime = values.realtime;
  realtimeThreads = values['realtime-all-threads'] ? 'all' : 'main';
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`# media relay benchmark — node ${process.version}, ${cpus} CPUs (${os.cpus()[0]?.model ?? '?'}), load ${load}`);
  if (os.loadavg()[0]! > 0.5) console.log('# WARNING: the machine is busy (load > 0.5): jitter and CPU figures will be pessimistic');
  console.log(`# ${seconds} s window after ${warmup} s warm-up; relay${pin ? ' on CPU 0, generator on CPU 1' : ' and generator not pinned'}${niceness ? `, both at nice ${niceness}` : ''}${realtime ? (realtimeThreads === 'all' ? ', both SCHED_RR (all threads)' : ', both main threads SCHED_RR (helper threads at normal priority)') : ''}`);
  console.log(
    '# calls  mode          pkt/s in+out  relay CPU  sent     lost  added jitter p50/p99/max ms   floor p99  RSS MB  clock p99  gen late p99  gen CPU  preempted',
  );
  const repeat = Math.max(1, Number(values.repeat));
  const rows: Row[] = [];
  const bestRows: Row[] = [];
  for (const n of calls) {
    let bestRow: Row | undefined;
    for (let r = 0; r < repeat; r++) {
      const row = await runOne(n, seconds, warmup, values.transcode, pin);
      rows.push(row);
      const [p50, p99, max] = row.jitter.map((x) => x.toFixed(3));
      console.log(
        `${String(row.calls).padStart(7)}  ${row.mode.padEnd(12)}  ${row.packetsPerSecond.toFixed(0).padStart(12)}  ${row.cpuPercent.toFixed(1).padStart(8)}%  ${String(row.sent).padStart(7)}  ${String(row.lost).padStart(5)}  ${`${p50} / ${p99} / ${max}`.padEnd(28)}  ${row.floor[1]!.toFixed(3).padStart(9)}  ${row.rssMb.toFixed(1).padStart(6)}  ${row.clockLateP99Ms.toFixed(2).padStart(9)}  ${row.sendLateP99Ms.toFixed(2).padStart(12)}  ${row.generatorCpuPercent.toFixed(0).padStart(6)}%  ${String(row.preempted).padStart(9)}`,
      );
      if (row.probe) printProbe(row);
      const score = (x: Row): number => (x.lost > 0 ? Infinity : x.jitter[1]!);
      if (!bestRow || score(row) < score(bestRow)) bestRow = row;
    }
    bestRows.push(bestRow!);
  }
  const fit = bestRows.filter((r) => r.lost === 0 && r.jitter[1]! < 2 && r.cpuPercent <= 100);
  const best = fit.reduce((m, r) => Math.max(m, r.calls), 0);
  console.log(`# largest N tried with zero loss, p99 added jitter < 2 ms and relay CPU ≤ 100%: ${best || 'none'}${repeat > 1 ? ` (best of ${repeat} runs per N)` : ''}`);
  const jsonRows = rows.map(({ spikes: _spikes, probe, ...row }) => ({
    ...row,
    probe: probe && { gcCount: probe.gc.length, gcMaxMs: Math.max(0, ...probe.gc.map(([, d]) => d)), loopDelay: probe.loopDelay, stalls: probe.stalls.length, steal: probe.steal, threads: probe.threads },
  }));
  console.log(JSON.stringify({ bench: 'media-relay', node: process.version, cpus, pin, nice: niceness, realtime, realtimeThreads, loadavg: os.loadavg(), seconds, warmup, best, rows: jsonRows }));
}

await main();
