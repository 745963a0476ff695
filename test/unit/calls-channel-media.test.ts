// The bridge between a line-card channel and an RTP session (agent/calls/channel-media.ts)
// on real parts: the simulated E1 card (A-law) with its PSTN, the agent's media engine,
// and a "phone" that is a UDP socket on loopback speaking PCMU. What the PSTN plays
// reaches the phone as PCMU at the right pitch; what the phone sends in 10 ms packets
// reaches the line as 20 ms A-law frames at the right pitch; a key pressed on the phone
// (RFC 4733) reaches the line as a digit, and a line digit reaches the phone as RFC 4733.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { ChannelMedia } from '../../agent/calls/channel-media.ts';
import { decodeG711, encodeG711 } from '../../agent/media/g711.ts';
import { goertzelCoefficient, goertzelPower } from '../../agent/media/goertzel.ts';
import { MediaEngine, ToneSource, type RtpSession } from '../../agent/media/index.ts';
import { createRtpView, parseRtpInto, writeRtpHeader } from '../../agent/media/rtp-packet.ts';
import { readTelephoneEvent, writeTelephoneEvent } from '../../agent/media/telephone-event.ts';
import type { PstnCall } from '../../drivers/sim/pstn-call.ts';
import { SimCard } from '../../drivers/sim/sim-card.ts';
import type { ChannelRef } from '../../drivers/types.ts';

const TE_PT = 101;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The share of a signal's energy at `hz` (Goertzel over the whole buffer). */
function shareAt(pcm: Int16Array, hz: number): number {
  const power = goertzelPower(pcm, pcm.length, goertzelCoefficient(hz, 8000));
  let energy = 0;
  for (const s of pcm) energy += s * s;
  return energy === 0 ? 0 : (2 * power) / pcm.length / energy;
}

let engine: MediaEngine;
let card: SimCard;
let pstnCall: PstnCall;
let channel: ChannelRef;
let session: RtpSession;
let phone: dgram.Socket;
let bridge: ChannelMedia;
const received: Buffer[] = [];

before(async () => {
  const logger = pino({ level: 'silent' });
  engine = new MediaEngine({ bindAddress: '127.0.0.1', codecs: ['PCMU', 'PCMA'] }, logger);
  engine.start();
  card = new SimCard({ name: 'pstn', type: 'e1' });
  await card.start();
  const incoming = new Promise<ChannelRef>((resolve) => card.once('incoming', (c) => resolve(c.channel)));
  pstnCall = card.pstn.placeCall({ from: '2125550147', to: '5550100' });
  channel = await incoming;
  phone = dgram.createSocket('udp4');
  await new Promise<void>((r) => phone.bind(0, '127.0.0.1', r));
  phone.on('message', (m) => received.push(m));
  session = await engine.createSession({ logger, codec: 'PCMU', telephoneEventPt: TE_PT });
  session.setRemote({ address: '127.0.0.1', port: phone.address().port });
  await card.answer(channel);
  await pstnCall.until('connected');
  bridge = new ChannelMedia({ card, channel, law: 'PCMA', session, log: logger });
  bridge.start();
});

after(async () => {
  bridge.stop();
  phone.close();
  await card.stop();
  await engine.stop();
});

test('the PSTN tone reaches the phone as PCMU, transcoded from the E1 A-law', async () => {
  received.length = 0;
  pstnCall.playSource(new ToneSource({ frequencies: [1000], levelDbm0: -13, cadenceMs: [] }));
  await sleep(600);
  const view = createRtpView();
  const audio = received.filter((p) => parseRtpInto(p, p.length, view) === undefined && view.payloadType === 0);
  assert.ok(audio.length >= 20, `about 30 packets in 600 ms: ${audio.length}`);
  const pcm = new Int16Array(audio.length * 160);
  audio.forEach((p, i) => {
    parseRtpInto(p, p.length, view);
    decodeG711('PCMU', p, pcm.subarray(i * 160), view.payloadOffset, view.payloadLength);
  });
  assert.ok(shareAt(pcm, 1000) > 0.8, `the phone hears 1 kHz: ${shareAt(pcm, 1000).toFixed(2)}`);
  assert.ok(bridge.stats.lineToPhone >= audio.length);
});

test("the phone's 10 ms PCMU packets reach the line as 20 ms A-law frames at 440 Hz", async () => {
  pstnCall.record();
  const target = session.localPort;
  const samples = Int16Array.from({ length: 8000 }, (_, n) => Math.round(8000 * Math.sin((2 * Math.PI * 440 * n) / 8000)));
  const before = bridge.stats.phoneToLine;
  for (let i = 0; i < 50; i++) {
    const packet = Buffer.alloc(12 + 80);
    writeRtpHeader(packet, i === 0, 0, i, i * 80, 0x1234);
    encodeG711('PCMU', samples.subarray(i * 80, i * 80 + 80), packet, 12);
    phone.send(packet, target, '127.0.0.1');
    await sleep(10);
  }
  await sleep(100);
  const frames = bridge.stats.phoneToLine - before;
  assert.ok(frames >= 24 && frames <= 25, `50 packets of 10 ms make 25 frames of 20 ms: ${frames}`);
  const line = pstnCall.recorded();
  assert.ok(line.length >= 24 * 160, `the line recorded the frames: ${line.length} bytes`);
  const pcm = new Int16Array(line.length);
  decodeG711('PCMA', line, pcm, 0, line.length);
  assert.ok(shareAt(pcm, 440) > 0.8, `the line hears 440 Hz: ${shareAt(pcm, 440).toFixed(2)}`);
});

test('a key on the phone (RFC 4733) reaches the line as a digit', async () => {
  const digits = new Promise<string>((resolve) => pstnCall.once('digits', resolve));
  const target = session.localPort;
  for (let i = 0; i < 6; i++) {
    const packet = Buffer.alloc(16);
    writeRtpHeader(packet, i === 0, TE_PT, 100 + i, 48_000, 0x1234);
    writeTelephoneEvent(packet, 12, { event: 5, end: i >= 3, volume: 10, duration: Math.min(i + 1, 4) * 160 });
    phone.send(packet, target, '127.0.0.1');
    await sleep(20);
  }
  assert.equal(await Promise.race([digits, sleep(2000).then(() => 'none')]), '5');
  assert.ok(bridge.stats.digitsToLine >= 1);
});

test('a digit from the line reaches the phone as RFC 4733 events', async () => {
  received.length = 0;
  pstnCall.sendDigits('7');
  await sleep(800);
  const view = createRtpView();
  const events = received
    .filter((p) => parseRtpInto(p, p.length, view) === undefined && view.payloadType === TE_PT)
    .map((p) => {
      parseRtpInto(p, p.length, view);
      return readTelephoneEvent(p, view.payloadOffset, view.payloadLength);
    });
  assert.ok(events.length >= 3, `event packets for the digit: ${events.length}`);
  assert.ok(events.every((e) => e?.event === 7), 'all for key 7');
  assert.ok(events.some((e) => e?.end), 'with an end packet');
});
