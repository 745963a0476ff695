// RTP sessions over real UDP sockets on loopback: audio a listener would hear,
// the bytes a phone would receive, NAT latching, digits both ways, RTCP.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DtmfDetector } from '../../agent/media/dtmf-detector.ts';
import { decodeG711 } from '../../agent/media/g711.ts';
import { goertzelCoefficient, goertzelPower, toneEnergy } from '../../agent/media/goertzel.ts';
import { MediaClock } from '../../agent/media/media-clock.ts';
import { PortPool } from '../../agent/media/port-pool.ts';
import { parseRtcp, type RtcpPacket } from '../../agent/media/rtcp.ts';
import { buildRtp, parseRtp, type RtpPacket } from '../../agent/media/rtp-packet.ts';
import { RtpSession, type RtpSessionOptions } from '../../agent/media/rtp-session.ts';
import type { DigitEvent } from '../../agent/media/telephone-event.ts';
import { dbm0ToAmplitude, ToneSource } from '../../agent/media/tone-generator.ts';

const HOST = '127.0.0.1';

/** A bare UDP socket standing in for a phone: records what arrives, sends what we say. */
interface Phone {
  socket: dgram.Socket;
  port: number;
  packets: { packet: RtpPacket; bytes: Buffer; from: number }[];
  send(bytes: Uint8Array, port: number): void;
}

async function phone(t: TestContext): Promise<Phone> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  const p: Phone = {
    socket,
    port: socket.address().port,
    packets: [],
    send: (bytes, port) => socket.send(bytes, port, HOST),
  };
  socket.on('message', (bytes, rinfo) => {
    try {
      p.packets.push({ packet: parseRtp(bytes), bytes: Buffer.from(bytes), from: rinfo.port });
    } catch {
      // not RTP
    }
  });
  t.after(() => socket.close());
  return p;
}

function engine(t: TestContext): { clock: MediaClock; ports: PortPool } {
  const clock = new MediaClock();
  clock.start();
  t.after(() => clock.stop());
  return { clock, ports: new PortPool(HOST) };
}

async function session(t: TestContext, env: { clock: MediaClock; ports: PortPool }, options: Partial<RtpSessionOptions> = {}): Promise<RtpSession> {
  const s = new RtpSession({ ...env, ...options });
  await s.start();
  t.after(() => s.stop());
  return s;
}

async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function pcmuFrame(ssrc: number, seq: number, ts: number, fill = 0xff, marker = false, pt = 0): Buffer {
  return buildRtp({ marker, payloadType: pt, sequenceNumber: seq & 0xffff, timestamp: ts >>> 0, ssrc, csrcs: [], payload: new Uint8Array(160).fill(fill), paddingLength: 0 });
}

function share(samples: Int16Array, hz: number): number {
  let total = 0;
  for (const v of samples) total += v * v;
  return toneEnergy(goertzelPower(samples, samples.length, goertzelCoefficient(hz, 8000)), samples.length) / total;
}

test('1 s of 1 kHz tone between two sessions: the receiver hears 1 kHz at the sent level', async (t) => {
  const env = engine(t);
  const a = await session(t, env);
  const b = await session(t, env, { codec: 'PCMA' });
  a.setRemote({ address: HOST, port: b.localPort });
  b.setRemote({ address: HOST, port: a.localPort });
  a.setCodec('PCMA', undefined);
  const heard: number[] = [];
  b.on('audio', (pcm) => heard.push(...pcm));
  const outcome = await a.play(new ToneSource({ frequencies: [1000], levelDbm0: -10, cadenceMs: [] }, 1000));
  assert.equal(outcome, 'ended');
  await until(() => heard.length >= 8000, 500, 'the last frames');
  const audio = Int16Array.from(heard);
  assert.equal(audio.length, 8000);
  assert.ok(share(audio, 1000) > 0.99, `1 kHz carries ${share(audio, 1000)}`);
  let sum = 0;
  for (const v of audio) sum += v * v;
  const rms = Math.sqrt(sum / audio.length);
  const expected = dbm0ToAmplitude(-10) / Math.SQRT2;
  assert.ok(Math.abs(20 * Math.log10(rms / expected)) < 0.3, `level ${rms} vs ${expected}`);
  const stats = b.stats();
  assert.equal(stats.packetsReceived, 50);
  assert.equal(stats.packetsLost, 0);
});

test('on the wire: one SSRC, sequence +1 and timestamp +160 per frame, marker on the first', async (t) => {
  const env = engine(t);
  const p = await phone(t);
  const a = await session(t, env, { remote: { address: HOST, port: p.port } });
  await a.play(new ToneSource({ frequencies: [1000], levelDbm0: -10, cadenceMs: [] }, 200));
  await until(() => p.packets.length >= 10, 500, '10 packets');
  const packets = p.packets.map((x) => x.packet);
  assert.equal(packets.length, 10);
  assert.equal(packets[0]!.marker, true);
  for (let i = 1; i < packets.length; i++) {
    assert.equal(packets[i]!.marker, false);
    assert.equal(packets[i]!.ssrc, packets[0]!.ssrc);
    assert.equal(packets[i]!.sequenceNumber, (packets[0]!.sequenceNumber + i) & 0xffff);
    assert.equal(packets[i]!.timestamp, (packets[0]!.timestamp + 160 * i) >>> 0);
  }
  // Header byte for byte: V=2, no P/X/CC, PT 0, 160 bytes of payload.
  const first = p.packets[0]!.bytes;
  assert.equal(first.length, 172);
  assert.equal(first.subarray(0, 2).toString('hex'), '8080');
  assert.equal(p.packets[1]!.bytes.subarray(0, 2).toString('hex'), '8000');
  assert.equal(a.stats().packetsSent, 10);
});

test('latching: the peer sends from another port than its SDP said; we switch to it', async (t) => {
  const env = engine(t);
  const signalled = await phone(t); // the port the SDP named; the phone's NAT uses another
  const actual = await phone(t);
  const intruder = await phone(t);
  const a = await session(t, env, { remote: { address: HOST, port: signalled.port }, relatchAfterMs: 300 });
  const latched: number[] = [];
  a.on('latched', (r) => latched.push(r.port));
  void a.play(new ToneSource({ frequencies: [440], levelDbm0: -20, cadenceMs: [] }));

  // Before the peer speaks, we send where the SDP said.
  await until(() => signalled.packets.length >= 2, 500, 'packets to the signalled port');
  for (let i = 0; i < 5; i++) actual.send(pcmuFrame(0xabc, i, i * 160), a.localPort);
  await until(() => actual.packets.length >= 3, 500, 'packets to the latched port');
  const countAtSignalled = signalled.packets.length;
  assert.deepEqual(latched, [actual.port]);
  assert.deepEqual(a.stats().remote, { address: HOST, port: actual.port });

  // Another source while the latched one is alive is dropped, not followed.
  actual.send(pcmuFrame(0xabc, 5, 5 * 160), a.localPort);
  for (let i = 0; i < 3; i++) intruder.send(pcmuFrame(0xdef, i, i * 160), a.localPort);
  await sleep(60);
  assert.equal(a.stats().foreign, 3);
  assert.equal(a.stats().remote?.port, actual.port);
  assert.ok(signalled.packets.length <= countAtSignalled + 1); // at most one frame in flight

  // Once the latched source has been silent long enough, a new one may take over (NAT rebinding).
  await sleep(350);
  intruder.send(pcmuFrame(0xdef, 10, 1600), a.localPort);
  await until(() => intruder.packets.length >= 2, 500, 'packets to the new source');
  assert.deepEqual(latched, [actual.port, intruder.port]);
});

test('latching off: we keep sending where the SDP said', async (t) => {
  const env = engine(t);
  const signalled = await phone(t);
  const other = await phone(t);
  const a = await session(t, env, { remote: { address: HOST, port: signalled.port }, latching: false });
  void a.play(new ToneSource({ frequencies: [440], levelDbm0: -20, cadenceMs: [] }));
  for (let i = 0; i < 5; i++) other.send(pcmuFrame(0xabc, i, i * 160), a.localPort);
  await sleep(150);
  assert.equal(other.packets.length, 0);
  assert.ok(signalled.packets.length >= 5);
  assert.equal(a.stats().packetsReceived, 5);
});

test('RFC 4733: digits sent by one session arrive as digits at the other, bytes as the RFC says', async (t) => {
  const env = engine(t);
  const wire = await phone(t);
  const a = await session(t, env, { telephoneEventPt: 101 });
  const b = await session(t, env, { telephoneEventPt: 101 });
  a.setRemote({ address: HOST, port: b.localPort });
  const digits: DigitEvent[] = [];
  b.on('digit', (d) => digits.push(d));
  await a.sendDigits('159#', { durationMs: 80 });
  await until(() => digits.length === 4, 500, '4 digits');
  assert.deepEqual(
    digits.map((d) => [d.digit, d.durationMs, d.source, d.endedBy]),
    [
      ['1', 80, 'rfc4733', 'end'],
      ['5', 80, 'rfc4733', 'end'],
      ['9', 80, 'rfc4733', 'end'],
      ['#', 80, 'rfc4733', 'end'],
    ],
  );

  // The same digit to a bare socket: 3 updates, then the end packet three times.
  a.setRemote({ address: HOST, port: wire.port });
  await a.sendDigits('7', { durationMs: 80, volume: 12 });
  await until(() => wire.packets.length >= 6, 500, '6 event packets');
  const events = wire.packets.map((x) => x.packet);
  assert.deepEqual(
    events.map((e) => Buffer.from(e.payload).toString('hex')),
    ['070c00a0', '070c0140', '070c01e0', '078c0280', '078c0280', '078c0280'],
  );
  assert.deepEqual(events.map((e) => e.marker), [true, false, false, false, false, false]);
  assert.ok(events.every((e) => e.payloadType === 101 && e.timestamp === events[0]!.timestamp));
  for (let i = 1; i < events.length; i++) assert.equal(events[i]!.sequenceNumber, (events[0]!.sequenceNumber + i) & 0xffff);
});

test('no telephone-event negotiated: digits go in-band and the Goertzel detector finds them', async (t) => {
  const env = engine(t);
  const a = await session(t, env);
  const b = await session(t, env, { inbandDtmf: true });
  a.setRemote({ address: HOST, port: b.localPort });
  const digits: DigitEvent[] = [];
  b.on('digit', (d) => digits.push(d));
  await a.sendDigits('*08', { durationMs: 100, gapMs: 80 });
  await until(() => digits.length === 3, 1000, '3 digits');
  assert.deepEqual(digits.map((d) => [d.digit, d.source]), [
    ['*', 'inband'],
    ['0', 'inband'],
    ['8', 'inband'],
  ]);
});

test('hold: a recvonly session sends nothing; sendrecv again resumes with a marker', async (t) => {
  const env = engine(t);
  const p = await phone(t);
  const a = await session(t, env, { remote: { address: HOST, port: p.port } });
  void a.play(new ToneSource({ frequencies: [440], levelDbm0: -20, cadenceMs: [] }));
  await until(() => p.packets.length >= 3, 500, 'first packets');
  a.setDirection('recvonly');
  await sleep(30);
  const held = p.packets.length;
  await sleep(150);
  assert.equal(p.packets.length, held, 'nothing sent on hold');
  a.setDirection('sendrecv');
  await until(() => p.packets.length >= held + 3, 500, 'packets after resume');
  const resumed = p.packets[held]!.packet;
  const before = p.packets[held - 1]!.packet;
  // The timeline continued through the hold: the timestamp jumped by the time on hold.
  const gap = (resumed.timestamp - before.timestamp) >>> 0;
  assert.ok(gap >= 160 * 7, `timestamp advanced ${gap} over the hold`);
  assert.equal(resumed.sequenceNumber, (before.sequenceNumber + 1) & 0xffff);
  assert.equal(resumed.marker, true);
  assert.equal(p.packets[held + 1]!.packet.marker, false);
});

test('RTCP: a sender report with CNAME while sending, a BYE on stop; stats from the peer report', async (t) => {
  const env = engine(t);
  const rtcpPeer = dgram.createSocket('udp4');
  t.after(() => rtcpPeer.close());
  const rtcp: RtcpPacket[][] = [];
  rtcpPeer.on('message', (m) => rtcp.push(parseRtcp(m)));
  await new Promise<void>((resolve) => rtcpPeer.bind(0, HOST, resolve));
  const p = await phone(t);
  const a = new RtpSession({ ...env, rtcpIntervalMs: 100, remote: { address: HOST, port: p.port, rtcpPort: rtcpPeer.address().port } });
  await a.start();
  t.after(() => a.stop());
  void a.play(new ToneSource({ frequencies: [440], levelDbm0: -20, cadenceMs: [] }));
  await until(() => rtcp.some((c) => c[0]!.type === 'sr'), 1000, 'a sender report');
  const [report0, sdes] = rtcp.find((c) => c[0]!.type === 'sr')!;
  assert.ok(report0?.type === 'sr' && sdes?.type === 'sdes', 'SR first, then SDES');
  assert.equal(report0.ssrc, a.ssrc);
  assert.ok(report0.packetCount > 0);
  assert.match(sdes.chunks[0]!.cname ?? '', /^branchline@/);
  // The peer reports 25% loss of our stream: it shows in our stats.
  const myLocalRtcp = a.localPort + 1;
  const report = Buffer.from(
    '81c90007' + '00000099' + a.ssrc.toString(16).padStart(8, '0') + '40' + '000005' + '00000064' + '00000050' + '00000000' + '00000000',
    'hex',
  );
  rtcpPeer.send(report, myLocalRtcp, HOST);
  await until(() => a.stats().remoteReport !== undefined, 500, 'the peer report to be read');
  assert.deepEqual(a.stats().remoteReport, { fractionLost: 0.25, cumulativeLost: 5, jitterMs: 10 });
  await a.stop();
  await until(() => rtcp.some((c) => c.some((x) => x.type === 'bye')), 500, 'BYE');
  const bye = rtcp.flat().find((x) => x.type === 'bye');
  assert.deepEqual(bye, { type: 'bye', ssrcs: [a.ssrc], reason: 'call ended' });
});

test('media timeout: a receiving session that hears nothing says so once', async (t) => {
  const env = engine(t);
  const p = await phone(t);
  const a = await session(t, env, { remote: { address: HOST, port: p.port }, mediaTimeoutMs: 400 });
  let timeouts = 0;
  a.on('timeout', () => timeouts++);
  p.send(pcmuFrame(1, 1, 160), a.localPort);
  await sleep(100);
  assert.equal(timeouts, 0);
  await until(() => timeouts === 1, 1000, 'the timeout');
  await sleep(100);
  assert.equal(timeouts, 1);
});

test('received PCMU decodes to the samples that were sent', async (t) => {
  const env = engine(t);
  const p = await phone(t);
  const a = await session(t, env, { remote: { address: HOST, port: p.port } });
  const heard: Int16Array[] = [];
  a.on('audio', (pcm) => heard.push(Int16Array.from(pcm)));
  const payload = Uint8Array.from({ length: 160 }, (_, i) => i);
  p.send(buildRtp({ marker: true, payloadType: 0, sequenceNumber: 1, timestamp: 0, ssrc: 5, csrcs: [], payload, paddingLength: 0 }), a.localPort);
  await until(() => heard.length === 1, 500, 'one frame');
  const expected = new Int16Array(160);
  decodeG711('PCMU', payload, expected);
  assert.deepEqual(heard[0], expected);
  // An in-band detector attached to the session sees nothing in that ramp.
  const found: DigitEvent[] = [];
  const detector = new DtmfDetector((e) => found.push(e));
  detector.push(heard[0]!);
  detector.flush();
  assert.deepEqual(found, []);
});

test('statistics: what a phone sent, with two frames lost on the way', async (t) => {
  const env = engine(t);
  const p = await phone(t);
  const a = await session(t, env, { remote: { address: HOST, port: p.port } });
  for (let i = 0; i < 20; i++) {
    if (i === 7 || i === 13) continue;
    p.send(pcmuFrame(0x5eed, 1000 + i, 50_000 + i * 160), a.localPort);
  }
  await until(() => a.stats().packetsReceived === 18, 500, '18 packets');
  const stats = a.stats();
  assert.equal(stats.packetsLost, 2);
  assert.equal(stats.octetsReceived, 18 * 160);
  assert.equal(stats.malformed, 0);
  // Garbage on the RTP port is counted, not played.
  p.send(Buffer.from('not rtp at all'), a.localPort);
  await until(() => a.stats().malformed === 1, 500, 'the malformed datagram');
});
