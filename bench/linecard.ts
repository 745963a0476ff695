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
// 2. Seize-to-dial latency: from dial() on an idle channel until it resolves (the
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

import { parseArgs } from 'node:util';
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

await fullE1();
console.log(`Seize-to-dial latency, ${dials} dials each (${values.number.length} digits)`);
await seizeToDial('pri', 1);
await seizeToDial('cas', 1);
await seizeToDial('pri', 0);
await seizeToDial('cas', 0);
await serialSeizeToDial('voice-modem');
await serialSeizeToDial('cellular');
