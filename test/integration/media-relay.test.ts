// Anchored media: two "phones" (bare UDP sockets) talk through a relay of two
// RTP sessions; we check what each phone receives, byte for byte.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DtmfDetector } from '../../agent/media/dtmf-detector.ts';
import { MediaEngine } from '../../agent/media/engine.ts';
import { decodeG711, linearToAlaw, ulawToLinear } from '../../agent/media/g711.ts';
import { buildRtp, parseRtp, type RtpPacket } from '../../agent/media/rtp-packet.ts';
import type { RtpSession } from '../../agent/media/rtp-session.ts';
import { answerOffer, createOffer, SdpOrigin } from '../../agent/media/sdp.ts';
import type { DigitEvent } from '../../agent/media/telephone-event.ts';
import { createLogger } from '../../agent/log/logger.ts';

const HOST = '127.0.0.1';
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface Phone {
  port: number;
  received: RtpPacket[];
  send(packet: Uint8Array, port: number): void;
}

async function phone(t: TestContext): Promise<Phone> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  const p: Phone = { port: socket.address().port, received: [], send: (b, port) => socket.send(b, port, HOST) };
  socket.on('message', (m) => {
    try {
      p.received.push(parseRtp(m));
    } catch {
      // RTCP lands on the RTP port of a bare socket only if misrouted; ignore.
    }
  });
  t.after(() => socket.close());
  return p;
}

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function startEngine(t: TestContext): MediaEngine {
  const media = new MediaEngine({ bindAddress: HOST }, createLogger('silent'));
  media.start();
  t.after(() => media.stop());
  return media;
}

function frame(ssrc: number, seq: number, ts: number, payload: Uint8Array, options: { marker?: boolean; pt?: number } = {}): Buffer {
  return buildRtp({
    marker: options.marker ?? false,
    payloadType: options.pt ?? 0,
    sequenceNumber: seq & 0xffff,
    timestamp: ts >>> 0,
    ssrc,
    csrcs: [],
    payload,
    paddingLength: 0,
  });
}

/** Two phones, two legs, one relay; leg options as the SDP negotiation would set them. */
async function bridge(
  t: TestContext,
  legA: { codec: 'PCMU' | 'PCMA'; te?: number },
  legB: { codec: 'PCMU' | 'PCMA'; te?: number },
): Promise<{ media: MediaEngine; p1: Phone; p2: Phone; a: RtpSession; b: RtpSession }> {
  const media = startEngine(t);
  const p1 = await phone(t);
  const p2 = await phone(t);
  const a = await media.createSession({ codec: legA.codec, telephoneEventPt: legA.te, remote: { address: HOST, port: p1.port } });
  const b = await media.createSession({ codec: legB.codec, telephoneEventPt: legB.te, remote: { address: HOST, port: p2.port } });
  const relay = media.relay(a, b);
  t.after(() => relay.stop());
  return { media, p1, p2, a, b };
}

test('same codec: payload passes through untouched; SSRC, sequence and timestamps are leg B\'s own', async (t) => {
  const { p1, p2, a, b } = await bridge(t, { codec: 'PCMU' }, { codec: 'PCMU' });
  const payloads = Array.from({ length: 10 }, (_, i) => new Uint8Array(160).fill(0x10 + i));
  // Phone 1 loses packet 4 on the way: the gap must show in the timestamps.
  for (let i = 0; i < 10; i++) {
    if (i === 4) continue;
    p1.send(frame(0x11111111, 60000 + i, 4_000_000_000 + i * 160, payloads[i]!, { marker: i === 0 }), a.localPort);
    await sleep(2);
  }
  await until(() => p2.received.length === 9, 500, '9 relayed packets');
  const out = p2.received;
  assert.ok(out.every((p) => p.ssrc === b.ssrc && p.payloadType === 0));
  assert.equal(out[0]!.marker, true);
  const sent = [0, 1, 2, 3, 5, 6, 7, 8, 9];
  out.forEach((p, k) => {
    assert.equal(hex(p.payload), hex(payloads[sent[k]!]!), `payload ${k}`);
    // Our own sequence numbers (+1 per packet sent), the original timing.
    assert.equal(p.sequenceNumber, (out[0]!.sequenceNumber + k) & 0xffff);
    assert.equal(p.timestamp, (out[0]!.timestamp + sent[k]! * 160) >>> 0);
  });
  assert.equal(p1.received.length, 0); // nothing echoed back
  assert.equal(b.stats().packetsSent, 9);
});

test('PCMU on leg A, PCMA on leg B: transcoded both ways, byte for byte', async (t) => {
  const { p1, p2, a, b } = await bridge(t, { codec: 'PCMU' }, { codec: 'PCMA' });
  const ulaw = Uint8Array.from({ length: 160 }, (_, i) => (i * 37) & 0xff);
  p1.send(frame(1, 1, 0, ulaw), a.localPort);
  await until(() => p2.received.length === 1, 500, 'A→B');
  const expectedAlaw = ulaw.map((u) => linearToAlaw(ulawToLinear(u)));
  assert.equal(p2.received[0]!.payloadType, 8);
  assert.equal(hex(p2.received[0]!.payload), hex(expectedAlaw));

  // B→A: A-law in, µ-law out; the decoded audio differs from the original by
  // no more than the two quantisations.
  p2.send(frame(2, 1, 0, expectedAlaw, { pt: 8 }), b.localPort);
  await until(() => p1.received.length === 1, 500, 'B→A');
  assert.equal(p1.received[0]!.payloadType, 0);
  const original = new Int16Array(160);
  const roundTrip = new Int16Array(160);
  decodeG711('PCMU', ulaw, original);
  decodeG711('PCMU', p1.received[0]!.payload, roundTrip);
  for (let i = 0; i < 160; i++) assert.ok(Math.abs(original[i]! - roundTrip[i]!) <= Math.abs(original[i]!) / 14 + 16, `sample ${i}`);
});

test('RFC 4733 events are forwarded with the other leg\'s payload type; digits reported on the way', async (t) => {
  const { p1, p2, a } = await bridge(t, { codec: 'PCMU', te: 101 }, { codec: 'PCMU', te: 96 });
  const seen: DigitEvent[] = [];
  a.on('digit', (d) => seen.push(d));
  const ev = (end: boolean, duration: number): Uint8Array => Uint8Array.of(4, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff);
  const packets = [ev(false, 160), ev(false, 320), ev(true, 480), ev(true, 480), ev(true, 480)];
  packets.forEach((payload, i) => p1.send(frame(9, 100 + i, 8000, payload, { pt: 101, marker: i === 0 }), a.localPort));
  await until(() => p2.received.length === 5, 500, '5 event packets');
  assert.ok(p2.received.every((p) => p.payloadType === 96));
  assert.deepEqual(p2.received.map((p) => Buffer.from(p.payload).toString('hex')), ['040a00a0', '040a0140', '048a01e0', '048a01e0', '048a01e0']);
  assert.equal(p2.received[0]!.marker, true);
  assert.ok(p2.received.every((p) => p.timestamp === p2.received[0]!.timestamp));
  assert.deepEqual(seen.map((d) => d.digit), ['4']);
  assert.equal(p1.received.length, 0);
});

test('leg B without telephone-event: an RFC 4733 digit from A reaches B as an in-band tone', async (t) => {
  const { p1, p2, a } = await bridge(t, { codec: 'PCMU', te: 101 }, { codec: 'PCMA' });
  const detected: DigitEvent[] = [];
  const detector = new DtmfDetector((e) => detected.push(e));
  const pcm = new Int16Array(160);
  const ev = (end: boolean, duration: number): Uint8Array => Uint8Array.of(11, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff);
  for (let i = 1; i <= 6; i++) {
    p1.send(frame(9, i, 16000, ev(i >= 4, Math.min(i, 4) * 160), { pt: 101, marker: i === 1 }), a.localPort);
    await sleep(20);
  }
  // 80 ms of tone (4 frames), then 60 ms of silence (3 frames).
  await until(() => p2.received.length >= 7, 1000, 'tone frames on leg B');
  await sleep(100);
  assert.equal(p2.received.length, 7);
  assert.ok(p2.received.every((p) => p.payloadType === 8), 'only audio on leg B');
  for (const p of p2.received) {
    decodeG711('PCMA', p.payload, pcm);
    detector.push(pcm);
  }
  detector.flush();
  assert.deepEqual(detected.map((d) => d.digit), ['#']);
});

test('the engine answers an offer and relays between the two answered legs', async (t) => {
  const media = startEngine(t);
  const p1 = await phone(t);
  const p2 = await phone(t);
  const offer = (port: number, codec: string): string =>
    createOffer({ address: HOST, port, codecs: [codec as 'PCMU' | 'PCMA'], origin: new SdpOrigin() });
  const a = await media.createSession();
  const b = await media.createSession();
  const negotiatedA = answerOffer(offer(p1.port, 'PCMU'), media.localMedia(a, new SdpOrigin()));
  const negotiatedB = answerOffer(offer(p2.port, 'PCMA'), media.localMedia(b, new SdpOrigin()));
  a.applyNegotiation(negotiatedA.media);
  b.applyNegotiation(negotiatedB.media);
  assert.match(negotiatedA.sdp, new RegExp(`m=audio ${a.localPort} RTP/AVP 0 101`));
  assert.match(negotiatedB.sdp, new RegExp(`m=audio ${b.localPort} RTP/AVP 8 101`));
  media.relay(a, b);
  p1.send(frame(1, 1, 0, new Uint8Array(160).fill(0xff)), a.localPort);
  p2.send(frame(2, 1, 0, new Uint8Array(160).fill(0xd5), { pt: 8 }), b.localPort);
  await until(() => p1.received.length === 1 && p2.received.length === 1, 500, 'both directions');
  assert.equal(p2.received[0]!.payloadType, 8);
  assert.equal(p1.received[0]!.payloadType, 0);
  assert.deepEqual(media.stats().sessions, 2);
  await a.stop();
  assert.equal(media.stats().sessions, 1);
});

test('a prompt played to leg B takes over from the relayed audio, then the relay resumes', async (t) => {
  const { media, p1, p2, a, b } = await bridge(t, { codec: 'PCMU' }, { codec: 'PCMU' });
  let seq = 0;
  const talk = setInterval(() => p1.send(frame(7, seq, seq++ * 160, new Uint8Array(160).fill(0x42)), a.localPort), 20);
  t.after(() => clearInterval(talk));
  await until(() => p2.received.length >= 5, 500, 'relayed audio');
  const kinds = (): string => p2.received.map((p) => (p.payload[0] === 0x42 ? 'R' : 'T')).join('');
  assert.equal(await b.play(media.tone('busy', 200)), 'ended');
  await until(() => /T+RRR$/.test(kinds()), 500, 'relayed audio again');
  clearInterval(talk);
  // Relayed, then the 200 ms tone (10 frames), then relayed again — never interleaved.
  assert.match(kinds(), /^R+T{10}R+$/);
  const seqs = p2.received.map((p) => p.sequenceNumber);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], (seqs[i - 1]! + 1) & 0xffff);
  const ts = p2.received.map((p) => p.timestamp);
  for (let i = 1; i < ts.length; i++) assert.ok(((ts[i]! - ts[i - 1]!) | 0) > 0, `timestamps go forward at ${i}`);
  assert.ok(b.stats().forwardDropped >= 8);
});
