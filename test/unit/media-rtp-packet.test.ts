import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MediaPacketError } from '../../agent/media/errors.ts';
import {
  buildBye,
  buildReceiverReport,
  buildSdes,
  buildSenderReport,
  ntpFromUnixMs,
  ntpMiddle32,
  parseRtcp,
} from '../../agent/media/rtcp.ts';
import { buildRtp, createRtpView, parseRtp, parseRtpInto, writeRtpFields } from '../../agent/media/rtp-packet.ts';
import { RtpReceiveStats } from '../../agent/media/rtp-stats.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('RTP: a plain PCMU packet has the RFC 3550 header bytes', () => {
  const packet = buildRtp({
    marker: true,
    payloadType: 0,
    sequenceNumber: 0x1234,
    timestamp: 0xdeadbeef,
    ssrc: 0x01020304,
    csrcs: [],
    payload: Uint8Array.of(0xff, 0xfe),
    paddingLength: 0,
  });
  // V=2 P=0 X=0 CC=0 | M=1 PT=0 | seq | ts | ssrc | payload
  assert.equal(hex(packet), '8080' + '1234' + 'deadbeef' + '01020304' + 'fffe');
});

test('RTP: CSRCs, header extension and padding, built and parsed back', () => {
  const packet = buildRtp({
    marker: false,
    payloadType: 8,
    sequenceNumber: 65535,
    timestamp: 160,
    ssrc: 0xffffffff,
    csrcs: [0xaabbccdd, 7],
    extension: { profile: 0xbede, data: Uint8Array.of(0x10, 0x41, 0, 0) },
    payload: Uint8Array.of(1, 2, 3),
    paddingLength: 4,
  });
  assert.equal(
    hex(packet),
    'b2' + '08' + 'ffff' + '000000a0' + 'ffffffff' + 'aabbccdd' + '00000007' + 'bede0001' + '10410000' + '010203' + '00000004',
  );
  const parsed = parseRtp(packet);
  assert.equal(parsed.payloadType, 8);
  assert.equal(parsed.sequenceNumber, 65535);
  assert.equal(parsed.ssrc, 0xffffffff);
  assert.deepEqual(parsed.csrcs, [0xaabbccdd, 7]);
  assert.equal(parsed.extension?.profile, 0xbede);
  assert.equal(hex(parsed.extension!.data), '10410000');
  assert.equal(hex(parsed.payload), '010203');
  assert.equal(parsed.paddingLength, 4);
});

test('RTP: datagrams that are not RTP are refused with a reason', () => {
  const view = createRtpView();
  const cases: [string, string][] = [
    ['80000001', 'short'],
    ['40000001000000000000000000', 'version'], // V=1
    ['82000001000000000000000011111111', 'csrc'], // CC=2, one CSRC present
    ['9000000100000000000000000000', 'extension'], // X=1, extension header cut
    ['a000000100000000000000000000ff', 'padding'], // P=1, padding count 255
    ['a00000010000000000000000000000', 'padding'], // P=1, padding count 0
  ];
  for (const [bytes, reason] of cases) {
    const buf = Buffer.from(bytes, 'hex');
    assert.equal(parseRtpInto(buf, buf.length, view), reason, bytes);
    assert.throws(() => parseRtp(buf), (e: unknown) => e instanceof MediaPacketError && e.reason === reason);
  }
});

test('RTP: header fields rewritten in place keep the payload and the V/P/X/CC byte', () => {
  const packet = Buffer.from('b0' + '00' + '0001' + '00000000' + '00000001' + 'bede0000' + 'aabb', 'hex');
  writeRtpFields(packet, true, 101, 0xfffe, 0x80000000, 0xcafebabe);
  assert.equal(hex(packet), 'b0' + 'e5' + 'fffe' + '80000000' + 'cafebabe' + 'bede0000' + 'aabb');
});

test('RTCP: sender report with one report block, SDES CNAME and BYE, byte for byte', () => {
  const sr = buildSenderReport({
    ssrc: 0x11111111,
    ntpSeconds: 0xe0000000,
    ntpFraction: 0x80000000,
    rtpTimestamp: 8000,
    packetCount: 50,
    octetCount: 8000,
    reports: [
      {
        ssrc: 0x22222222,
        fractionLost: 64,
        cumulativeLost: -1,
        highestSequence: 0x0001000a,
        jitter: 40,
        lastSr: 0x12345678,
        delaySinceLastSr: 65536,
      },
    ],
  });
  assert.equal(
    hex(sr),
    '81c8000c' + '11111111' + 'e0000000' + '80000000' + '00001f40' + '00000032' + '00001f40' +
      '22222222' + '40' + 'ffffff' + '0001000a' + '00000028' + '12345678' + '00010000',
  );
  const sdes = buildSdes(0x11111111, 'ab');
  // header, SSRC, CNAME item (type 1, length 2, "ab"), null terminator, padded.
  assert.equal(hex(sdes), '81ca0003' + '11111111' + '01026162' + '00000000');
  const bye = buildBye([0x11111111], 'bye');
  assert.equal(hex(bye), '81cb0002' + '11111111' + '03627965');
  const rr = buildReceiverReport({ ssrc: 0x33333333, reports: [] });
  assert.equal(hex(rr), '80c90001' + '33333333');
});

test('RTCP: a compound packet parses into its parts', () => {
  const compound = Buffer.concat([
    buildReceiverReport({
      ssrc: 5,
      reports: [{ ssrc: 6, fractionLost: 0, cumulativeLost: 3, highestSequence: 100, jitter: 12, lastSr: 0, delaySinceLastSr: 0 }],
    }),
    buildSdes(5, 'branchline@127.0.0.1'),
    buildBye([5, 9], 'call ended'),
  ]);
  const packets = parseRtcp(compound);
  assert.deepEqual(packets, [
    {
      type: 'rr',
      ssrc: 5,
      reports: [{ ssrc: 6, fractionLost: 0, cumulativeLost: 3, highestSequence: 100, jitter: 12, lastSr: 0, delaySinceLastSr: 0 }],
    },
    { type: 'sdes', chunks: [{ ssrc: 5, cname: 'branchline@127.0.0.1' }] },
    { type: 'bye', ssrcs: [5, 9], reason: 'call ended' },
  ]);
});

test('RTCP: bad version or a length past the datagram is refused', () => {
  assert.throws(() => parseRtcp(Buffer.from('41c90001' + '00000000', 'hex')), (e: unknown) => e instanceof MediaPacketError && e.reason === 'version');
  assert.throws(() => parseRtcp(Buffer.from('80c90005' + '00000000', 'hex')), (e: unknown) => e instanceof MediaPacketError && e.reason === 'length');
  assert.throws(() => parseRtcp(Buffer.from('80c9', 'hex')), MediaPacketError);
});

test('NTP time: Unix epoch maps to 2208988800 s, and LSR takes the middle 32 bits', () => {
  assert.deepEqual(ntpFromUnixMs(0), { seconds: 2208988800, fraction: 0 });
  assert.deepEqual(ntpFromUnixMs(1500), { seconds: 2208988801, fraction: 0x80000000 });
  assert.equal(ntpMiddle32(0x12345678, 0x9abcdef0), 0x56789abc);
});

test('receive statistics: loss, sequence wrap and jitter per RFC 3550 A.1/A.3/A.8', () => {
  const stats = new RtpReceiveStats(8000);
  // 100 packets from seq 65500 (wrapping), every tenth lost, perfectly paced.
  let received = 0;
  for (let i = 0; i < 100; i++) {
    if (i % 10 === 5) continue;
    stats.update(42, (65500 + i) & 0xffff, 1000 + i * 160, i * 20);
    received++;
  }
  // The first packet is the probation packet (A.1): it does not count.
  assert.equal(stats.received, received - 1);
  assert.equal(stats.expected, 99);
  assert.equal(stats.lost, 10); // i = 5, 15, … 95
  assert.equal(stats.extendedHighest, 65536 + ((65500 + 99) & 0xffff));
  assert.equal(stats.jitter, 0);
  const block = stats.reportBlock(0, 0);
  assert.equal(block.fractionLost, Math.floor((10 * 256) / 99));
  assert.equal(block.cumulativeLost, 10);
  // The next interval starts fresh.
  assert.equal(stats.reportBlock(0, 0).fractionLost, 0);

  // Alternating 5 ms early/late arrivals: jitter converges to 40 timestamp units (5 ms).
  const jittery = new RtpReceiveStats(8000);
  for (let i = 0; i < 400; i++) jittery.update(7, i, i * 160, i * 20 + (i % 2 ? 5 : 0));
  assert.ok(Math.abs(jittery.jitterMs - 5) < 0.1, `jitter ${jittery.jitterMs}`);
});
