// The two media policies as the call session drives them, on the real media engine
// (UDP sockets on loopback): what SDP each side is given, that anchored media
// actually relays RTP between two "phones" (plain UDP sockets here, sending G.711
// packets), how hold is answered locally, late offers, and refusals with 488.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { AnchoredMediaPath, DirectMediaPath } from '../../agent/calls/media-path.ts';
import { createLogger } from '../../agent/log/logger.ts';
import { MediaEngine } from '../../agent/media/engine.ts';
import { SdpNegotiationError } from '../../agent/media/errors.ts';
import { buildRtp, parseRtp } from '../../agent/media/rtp-packet.ts';
import { describeAudio } from '../../agent/media/sdp.ts';

const HOST = '127.0.0.1';
const log = createLogger('silent');

/** A phone's RTP socket and the SDP that names it. */
async function phone(name: string, direction = 'sendrecv'): Promise<{ socket: dgram.Socket; port: number; sdp: string; received: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, HOST, resolve));
  const port = socket.address().port;
  const received: Buffer[] = [];
  socket.on('message', (m) => received.push(m));
  const sdp = ['v=0', `o=${name} 1 1 IN IP4 ${HOST}`, 's=-', `c=IN IP4 ${HOST}`, 't=0 0', `m=audio ${port} RTP/AVP 0 101`, 'a=rtpmap:0 PCMU/8000', 'a=rtpmap:101 telephone-event/8000', `a=${direction}`, ''].join('\r\n');
  return { socket, port, sdp, received };
}

/** The first payload byte of an RTP packet (undefined for anything else). */
function payloadByte(datagram: Buffer): number | undefined {
  try {
    return parseRtp(datagram).payload[0];
  } catch {
    return undefined;
  }
}

function send(from: dgram.Socket, toPort: number, seq: number, fill: number): void {
  const packet = buildRtp({ payloadType: 0, sequenceNumber: seq, timestamp: seq * 160, ssrc: 0x1234, marker: false, csrcs: [], paddingLength: 0, payload: Buffer.alloc(160, fill) });
  from.send(packet, toPort, HOST);
}

describe('media paths on the real engine', () => {
  let engine: MediaEngine;
  const sockets: dgram.Socket[] = [];

  before(() => {
    engine = new MediaEngine({ bindAddress: HOST }, log);
    engine.start();
  });

  after(async () => {
    for (const s of sockets) s.close();
    await engine.stop();
  });

  test('direct: SDP passes through untouched both ways; garbage is refused with 488', async () => {
    const path = new DirectMediaPath();
    const a = await phone('alice');
    const b = await phone('bob');
    sockets.push(a.socket, b.socket);
    assert.equal(await path.offerToCallees(a.sdp), a.sdp);
    assert.equal(path.toCaller(b.sdp), b.sdp);
    assert.deepEqual(path.midCallOffer(), { kind: 'relay' });
    await assert.rejects(path.offerToCallees('v=0\r\nthis is not sdp\r\n'), (err: unknown) => err instanceof SdpNegotiationError && err.status === 488);
  });

  test('anchored: each phone is given the agent\'s address, and RTP flows both ways through the relay', async () => {
    const path = new AnchoredMediaPath(engine, log);
    const a = await phone('alice');
    const b = await phone('bob');
    sockets.push(a.socket, b.socket);
    const offerToB = await path.offerToCallees(a.sdp);
    const toB = describeAudio(offerToB);
    assert.equal(toB.address, HOST);
    assert.notEqual(toB.port, a.port, 'the callee is offered the agent\'s port, not the caller\'s');
    const toA = describeAudio(path.toCaller(b.sdp));
    assert.notEqual(toA.port, b.port, 'the caller is answered with the agent\'s port');
    assert.notEqual(toA.port, toB.port, 'one session per leg');

    for (let i = 0; i < 5; i++) {
      send(a.socket, toA.port, i, 0x11); // alice → agent (leg a) → bob
      send(b.socket, toB.port, 100 + i, 0x22); // bob → agent (leg b) → alice
      await sleep(20);
    }
    await sleep(100);
    const atBob = b.received.map(payloadByte).filter((x) => x === 0x11);
    const atAlice = a.received.map(payloadByte).filter((x) => x === 0x22);
    assert.ok(atBob.length >= 4, `Alice's packets reached Bob (${atBob.length})`);
    assert.ok(atAlice.length >= 4, `Bob's packets reached Alice (${atAlice.length})`);
    await path.stop();
  });

  test('anchored: a hold offer is answered locally (recvonly), a resume sendrecv; a bad one throws 488', async () => {
    const path = new AnchoredMediaPath(engine, log);
    const a = await phone('alice');
    const b = await phone('bob');
    sockets.push(a.socket, b.socket);
    await path.offerToCallees(a.sdp);
    path.toCaller(b.sdp);
    const held = await phone('alice', 'sendonly');
    sockets.push(held.socket);
    const hold = path.midCallOffer('a', held.sdp);
    assert.equal(hold.kind, 'local');
    assert.equal(hold.kind === 'local' ? describeAudio(hold.sdp).direction : '', 'recvonly');
    const resume = path.midCallOffer('a', a.sdp);
    assert.equal(resume.kind === 'local' ? describeAudio(resume.sdp).direction : '', 'sendrecv');
    assert.throws(() => path.midCallOffer('b', 'v=0\r\nm=video 0 RTP/AVP 31\r\n'), SdpNegotiationError);
    await path.stop();
  });

  test('anchored with a late offer: the agent offers both sides and takes the caller\'s answer from the ACK', async () => {
    const path = new AnchoredMediaPath(engine, log);
    const a = await phone('alice');
    const b = await phone('bob');
    sockets.push(a.socket, b.socket);
    const offerToB = await path.offerToCallees('');
    assert.ok(describeAudio(offerToB).codecs.includes('PCMU'));
    const offerToA = path.toCaller(b.sdp);
    assert.match(offerToA, /^v=0/, 'the caller gets an offer in the 200');
    path.callerAck(a.sdp); // does not throw: the answer is taken
    await path.stop();
  });
});
