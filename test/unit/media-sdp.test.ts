// SDP offer/answer (RFC 3264) against offers as phones send them, and offers
// the call core must answer with 488.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SdpNegotiationError } from '../../agent/media/errors.ts';
import { acceptAnswer, answerOffer, createOffer, describeAudio, SdpOrigin, type LocalMedia } from '../../agent/media/sdp.ts';

const crlf = (lines: string[]): string => lines.join('\r\n') + '\r\n';

// What a desk phone offers: G.722 first, then G.711, telephone-event at 101.
const phoneOffer = crlf([
  'v=0',
  'o=- 20518 0 IN IP4 192.168.1.23',
  's=SDP data',
  'c=IN IP4 192.168.1.23',
  't=0 0',
  'm=audio 11780 RTP/AVP 9 8 0 18 101',
  'a=rtpmap:9 G722/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:18 G729/8000',
  'a=fmtp:18 annexb=no',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-15',
  'a=ptime:20',
  'a=sendrecv',
]);

function local(extra: Partial<LocalMedia> = {}): LocalMedia {
  return { address: '10.0.0.5', port: 40000, origin: new SdpOrigin('4711', 1), ...extra };
}

function lines(sdp: string): string[] {
  return sdp.split('\r\n').filter((l) => l !== '');
}

test('our offer: PCMU, PCMA, telephone-event 101, ptime 20, sendrecv', () => {
  const sdp = createOffer(local());
  assert.deepEqual(lines(sdp), [
    'v=0',
    'o=branchline 4711 1 IN IP4 10.0.0.5',
    's=Branchline',
    'c=IN IP4 10.0.0.5',
    't=0 0',
    'm=audio 40000 RTP/AVP 0 8 101',
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16',
    'a=ptime:20',
    'a=sendrecv',
  ]);
});

test('answer to a phone: our preference wins (PCMU), its telephone-event PT is kept', () => {
  const { sdp, media } = answerOffer(phoneOffer, local());
  assert.deepEqual(lines(sdp), [
    'v=0',
    'o=branchline 4711 1 IN IP4 10.0.0.5',
    's=Branchline',
    'c=IN IP4 10.0.0.5',
    't=0 0',
    'm=audio 40000 RTP/AVP 0 101',
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16',
    'a=ptime:20',
    'a=sendrecv',
  ]);
  assert.deepEqual(media, {
    remoteAddress: '192.168.1.23',
    remotePort: 11780,
    remoteRtcpPort: 11781,
    codec: 'PCMU',
    payloadType: 0,
    telephoneEventPt: 101,
    direction: 'sendrecv',
    remoteDirection: 'sendrecv',
    heldByRemote: false,
    ptime: 20,
    mediaIndex: 0,
  });
});

test('answer with A-law preferred (a European trunk), static PTs without rtpmap', () => {
  const offer = crlf(['v=0', 'o=- 1 1 IN IP4 10.1.1.1', 's=-', 'c=IN IP4 10.1.1.1', 't=0 0', 'm=audio 5004 RTP/AVP 0 8']);
  const { media, sdp } = answerOffer(offer, local({ codecs: ['PCMA', 'PCMU'] }));
  assert.equal(media.codec, 'PCMA');
  assert.equal(media.payloadType, 8);
  assert.equal(media.telephoneEventPt, undefined); // not offered: digits go in-band
  assert.ok(lines(sdp).includes('m=audio 40000 RTP/AVP 8'));
});

test('hold and resume, every way a phone does it', () => {
  const offerWith = (direction: string, address = '192.168.1.23'): string =>
    phoneOffer.replace('a=sendrecv', direction).replace(/IN IP4 192\.168\.1\.23\r\nt=/, `IN IP4 ${address}\r\nt=`);
  const cases: [string, string, string, string, boolean][] = [
    // offer direction, c= address, our answer direction, remote direction, held
    ['a=sendonly', '192.168.1.23', 'recvonly', 'sendonly', true],
    ['a=inactive', '192.168.1.23', 'inactive', 'inactive', true],
    ['a=recvonly', '192.168.1.23', 'sendonly', 'recvonly', false],
    ['a=sendrecv', '0.0.0.0', 'recvonly', 'sendonly', true], // RFC 2543 hold
    ['a=sendonly', '0.0.0.0', 'recvonly', 'sendonly', true],
    ['a=sendrecv', '192.168.1.23', 'sendrecv', 'sendrecv', false], // resume
  ];
  for (const [dir, address, ours, theirs, held] of cases) {
    const { sdp, media } = answerOffer(offerWith(dir, address), local());
    assert.equal(media.direction, ours, `${dir} ${address}`);
    assert.equal(media.remoteDirection, theirs, `${dir} ${address}`);
    assert.equal(media.heldByRemote, held, `${dir} ${address}`);
    assert.ok(lines(sdp).includes(`a=${ours}`), `${dir} ${address}: answer says a=${ours}`);
  }
  // We put the phone on hold: our wish (sendonly) meets its sendrecv.
  const { media } = answerOffer(phoneOffer, local({ direction: 'sendonly' }));
  assert.equal(media.direction, 'sendonly');
  // Session-level a=sendonly applies when the m= section has none.
  const sessionLevel = phoneOffer.replace('a=sendrecv\r\n', '').replace('t=0 0\r\n', 't=0 0\r\na=sendonly\r\n');
  assert.equal(answerOffer(sessionLevel, local()).media.direction, 'recvonly');
});

test('extra streams are rejected with port 0, in order; the first usable audio is taken', () => {
  const offer = crlf([
    'v=0',
    'o=- 1 1 IN IP4 10.1.1.1',
    's=-',
    'c=IN IP4 10.1.1.1',
    't=0 0',
    'm=video 5006 RTP/AVP 96',
    'a=rtpmap:96 H264/90000',
    'm=audio 5008 RTP/SAVP 0', // SRTP: not for us
    'm=audio 5004 RTP/AVP 8 0',
    'c=IN IP4 10.1.1.2',
    'a=rtcp:6000',
  ]);
  const { sdp, media } = answerOffer(offer, local());
  const mLines = lines(sdp).filter((l) => l.startsWith('m='));
  assert.deepEqual(mLines, ['m=video 0 RTP/AVP 96', 'm=audio 0 RTP/SAVP 0', 'm=audio 40000 RTP/AVP 0']);
  assert.equal(media.mediaIndex, 2);
  assert.equal(media.remoteAddress, '10.1.1.2'); // media-level c= wins
  assert.equal(media.remoteRtcpPort, 6000); // RFC 3605 a=rtcp
});

test('malformed or unusable offers are a typed 488 error, not a crash', () => {
  const bad: [string, string, 'EMALFORMED' | 'ENOAUDIO' | 'ENOCODEC'][] = [
    ['empty body', '', 'EMALFORMED'],
    ['not SDP', 'hello: world\r\n', 'EMALFORMED'],
    ['no c= line', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 't=0 0', 'm=audio 5004 RTP/AVP 0']), 'EMALFORMED'],
    ['c= not an address', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4 phone.local', 't=0 0', 'm=audio 5004 RTP/AVP 0']), 'EMALFORMED'],
    ['bad payload list', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4 1.2.3.4', 't=0 0', 'm=audio 5004 RTP/AVP zero']), 'EMALFORMED'],
    ['port out of range', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4 1.2.3.4', 't=0 0', 'm=audio 70000 RTP/AVP 0']), 'EMALFORMED'],
    ['video only', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4 1.2.3.4', 't=0 0', 'm=video 5004 RTP/AVP 96']), 'ENOAUDIO'],
    ['audio rejected (port 0)', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4 1.2.3.4', 't=0 0', 'm=audio 0 RTP/AVP 0']), 'ENOAUDIO'],
    ['no m= line', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4 1.2.3.4', 't=0 0']), 'ENOAUDIO'],
    ['codec-less: G.729 and G.722 only', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4 1.2.3.4', 't=0 0', 'm=audio 5004 RTP/AVP 18 9', 'a=rtpmap:18 G729/8000']), 'ENOCODEC'],
    ['PCMU at the wrong rate', crlf(['v=0', 'o=- 1 1 IN IP4 1.2.3.4', 's=-', 'c=IN IP4 1.2.3.4', 't=0 0', 'm=audio 5004 RTP/AVP 96', 'a=rtpmap:96 PCMU/16000']), 'ENOCODEC'],
  ];
  for (const [name, offer, code] of bad) {
    assert.throws(
      () => answerOffer(offer, local()),
      (e: unknown) => e instanceof SdpNegotiationError && e.code === code && e.status === 488,
      name,
    );
  }
  const noCodec = (() => {
    try {
      answerOffer(bad[9]![1], local());
    } catch (e) {
      return e as SdpNegotiationError;
    }
    return undefined;
  })();
  assert.equal(noCodec?.warning, 305); // Warning: 305 Incompatible media format
});

test('the answer to our offer: first offered codec in the answer, its telephone-event PT', () => {
  const answer = crlf([
    'v=0',
    'o=- 9 9 IN IP4 192.168.1.40',
    's=-',
    'c=IN IP4 192.168.1.40',
    't=0 0',
    'm=audio 12000 RTP/AVP 8 96',
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:96 telephone-event/8000',
    'a=recvonly',
  ]);
  const media = acceptAnswer(answer, {});
  assert.equal(media.codec, 'PCMA');
  assert.equal(media.telephoneEventPt, 96);
  assert.equal(media.direction, 'sendonly');
  assert.equal(media.remotePort, 12000);
  assert.throws(
    () => acceptAnswer(answer.replace('m=audio 12000', 'm=audio 0'), {}),
    (e: unknown) => e instanceof SdpNegotiationError && e.code === 'ENOAUDIO',
  );
  assert.throws(
    () => acceptAnswer(answer.replace('RTP/AVP 8 96', 'RTP/AVP 18 96').replace('PCMA/8000', 'G729/8000').replace('a=rtpmap:8', 'a=rtpmap:18'), {}),
    (e: unknown) => e instanceof SdpNegotiationError && e.code === 'ENOCODEC',
  );
});

test('origin version grows with each new body; describeAudio reads a body for logs', () => {
  const origin = new SdpOrigin('100', 5);
  assert.equal(origin.bump(), 6);
  assert.ok(lines(createOffer(local({ origin }))).includes('o=branchline 100 6 IN IP4 10.0.0.5'));
  assert.deepEqual(describeAudio(phoneOffer), {
    address: '192.168.1.23',
    port: 11780,
    codecs: ['G722', 'PCMA', 'PCMU', 'G729', 'TELEPHONE-EVENT'],
    direction: 'sendrecv',
  });
});
