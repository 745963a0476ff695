// RTP fixed header, CSRC list, header extension and padding (RFC 3550 §5.1, §5.3.1).
//
//  0                   1                   2                   3
//  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
// |V=2|P|X|  CC   |M|     PT      |       sequence number         |
// |                           timestamp                           |
// |           synchronization source (SSRC) identifier            |
// |            contributing source (CSRC) identifiers  (0..15)    |
// |  [profile-defined 16 bits]    |  [extension length in words]  |
//
// Two ways in: `parseRtpInto` fills a caller-owned view without allocating (the
// receive path of every session runs it per packet), `parseRtp` returns a full
// object and throws (tests, tools, anything off the hot path).
import { MediaPacketError } from './errors.ts';

export const RTP_VERSION = 2;
export const RTP_HEADER_BYTES = 12;

/** Why a datagram is not an RTP packet. */
export type RtpParseFailure = 'short' | 'version' | 'csrc' | 'extension' | 'padding';

/** Header fields and where the payload lies inside the datagram; reused per packet. */
export interface RtpView {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrcCount: number;
  hasExtension: boolean;
  /** Offset of the first payload byte (after CSRCs and extension). */
  payloadOffset: number;
  /** Payload bytes, padding excluded. */
  payloadLength: number;
  paddingLength: number;
}

export function createRtpView(): RtpView {
  return {
    marker: false,
    payloadType: 0,
    sequenceNumber: 0,
    timestamp: 0,
    ssrc: 0,
    csrcCount: 0,
    hasExtension: false,
    payloadOffset: 0,
    payloadLength: 0,
    paddingLength: 0,
  };
}

/**
 * Parses the first `length` bytes of `buf` into `view`. Returns undefined on
 * success or why the datagram is not RTP; `view` is then unspecified.
 */
export function parseRtpInto(buf: Uint8Array, length: number, view: RtpView): RtpParseFailure | undefined {
  if (length < RTP_HEADER_BYTES) return 'short';
  const b0 = buf[0]!;
  if (b0 >> 6 !== RTP_VERSION) return 'version';
  const b1 = buf[1]!;
  const csrcCount = b0 & 0x0f;
  let offset = RTP_HEADER_BYTES + csrcCount * 4;
  if (offset > length) return 'csrc';
  const hasExtension = (b0 & 0x10) !== 0;
  if (hasExtension) {
    if (offset + 4 > length) return 'extension';
    const words = (buf[offset + 2]! << 8) | buf[offset + 3]!;
    offset += 4 + words * 4;
    if (offset > length) return 'extension';
  }
  let paddingLength = 0;
  if (b0 & 0x20) {
    // §5.1: the last octet counts the padding, itself included.
    paddingLength = buf[length - 1]!;
    if (paddingLength === 0 || offset + paddingLength > length) return 'padding';
  }
  view.marker = (b1 & 0x80) !== 0;
  view.payloadType = b1 & 0x7f;
  view.sequenceNumber = (buf[2]! << 8) | buf[3]!;
  view.timestamp = ((buf[4]! << 24) | (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!) >>> 0;
  view.ssrc = ((buf[8]! << 24) | (buf[9]! << 16) | (buf[10]! << 8) | buf[11]!) >>> 0;
  view.csrcCount = csrcCount;
  view.hasExtension = hasExtension;
  view.payloadOffset = offset;
  view.paddingLength = paddingLength;
  view.payloadLength = length - offset - paddingLength;
  return undefined;
}

/** An RTP packet as a plain object. */
export interface RtpPacket {
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrcs: number[];
  /** Header extension (RFC 3550 §5.3.1): 16-bit profile value and data (a multiple of 4 bytes). */
  extension?: { profile: number; data: Uint8Array };
  payload: Uint8Array;
  /** Padding octets to append (1..255), the count included; 0 for none. */
  paddingLength: number;
}

const failureText: Record<RtpParseFailure, string> = {
  short: 'shorter than the 12-byte RTP header',
  version: 'RTP version is not 2',
  csrc: 'CSRC list runs past the end of the packet',
  extension: 'header extension runs past the end of the packet',
  padding: 'padding count is zero or larger than the packet',
};

/** Parses a whole datagram; throws MediaPacketError (reason = RtpParseFailure). */
export function parseRtp(buf: Uint8Array): RtpPacket {
  const view = createRtpView();
  const failure = parseRtpInto(buf, buf.length, view);
  if (failure) throw new MediaPacketError(failure, `not an RTP packet: ${failureText[failure]}`);
  const csrcs: number[] = [];
  for (let i = 0; i < view.csrcCount; i++) {
    const o = RTP_HEADER_BYTES + i * 4;
    csrcs.push(((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0);
  }
  const packet: RtpPacket = {
    marker: view.marker,
    payloadType: view.payloadType,
    sequenceNumber: view.sequenceNumber,
    timestamp: view.timestamp,
    ssrc: view.ssrc,
    csrcs,
    payload: buf.subarray(view.payloadOffset, view.payloadOffset + view.payloadLength),
    paddingLength: view.paddingLength,
  };
  if (view.hasExtension) {
    const o = RTP_HEADER_BYTES + view.csrcCount * 4;
    packet.extension = { profile: (buf[o]! << 8) | buf[o + 1]!, data: buf.subarray(o + 4, view.payloadOffset) };
  }
  return packet;
}

/** Bytes `buildRtp` will produce for this packet. */
export function rtpPacketLength(p: Omit<RtpPacket, 'payload'> & { payload: { length: number } }): number {
  return (
    RTP_HEADER_BYTES +
    p.csrcs.length * 4 +
    (p.extension ? 4 + p.extension.data.length : 0) +
    p.payload.length +
    p.paddingLength
  );
}

/** Serialises a full packet into a new Buffer. */
export function buildRtp(p: RtpPacket): Buffer {
  if (p.csrcs.length > 15) throw new MediaPacketError('csrc', 'at most 15 CSRCs fit in an RTP header');
  if (p.extension && p.extension.data.length % 4 !== 0) {
    throw new MediaPacketError('extension', 'header extension data must be a multiple of 4 bytes');
  }
  if (p.paddingLength < 0 || p.paddingLength > 255) throw new MediaPacketError('padding', 'padding must be 0..255 bytes');
  const buf = Buffer.alloc(rtpPacketLength(p));
  buf[0] =
    (RTP_VERSION << 6) | (p.paddingLength > 0 ? 0x20 : 0) | (p.extension ? 0x10 : 0) | p.csrcs.length;
  writeRtpFields(buf, p.marker, p.payloadType, p.sequenceNumber, p.timestamp, p.ssrc);
  let o = RTP_HEADER_BYTES;
  for (const csrc of p.csrcs) {
    buf.writeUInt32BE(csrc >>> 0, o);
    o += 4;
  }
  if (p.extension) {
    buf.writeUInt16BE(p.extension.profile, o);
    buf.writeUInt16BE(p.extension.data.length / 4, o + 2);
    buf.set(p.extension.data, o + 4);
    o += 4 + p.extension.data.length;
  }
  buf.set(p.payload, o);
  o += p.payload.length;
  if (p.paddingLength > 0) buf[o + p.paddingLength - 1] = p.paddingLength;
  return buf;
}

/**
 * Writes a 12-byte header with no CSRC, extension or padding at the start of
 * `buf`. The send path of every session uses it on a buffer it already holds.
 */
export function writeRtpHeader(
  buf: Uint8Array,
  marker: boolean,
  payloadType: number,
  sequenceNumber: number,
  timestamp: number,
  ssrc: number,
): void {
  buf[0] = RTP_VERSION << 6;
  writeRtpFields(buf, marker, payloadType, sequenceNumber, timestamp, ssrc);
}

/**
 * Rewrites marker, payload type, sequence number, timestamp and SSRC of a packet
 * in place, keeping V/P/X/CC and whatever follows. The relay forwards with it.
 */
export function writeRtpFields(
  buf: Uint8Array,
  marker: boolean,
  payloadType: number,
  sequenceNumber: number,
  timestamp: number,
  ssrc: number,
): void {
  buf[1] = (marker ? 0x80 : 0) | (payloadType & 0x7f);
  buf[2] = (sequenceNumber >>> 8) & 0xff;
  buf[3] = sequenceNumber & 0xff;
  buf[4] = (timestamp >>> 24) & 0xff;
  buf[5] = (timestamp >>> 16) & 0xff;
  buf[6] = (timestamp >>> 8) & 0xff;
  buf[7] = timestamp & 0xff;
  buf[8] = (ssrc >>> 24) & 0xff;
  buf[9] = (ssrc >>> 16) & 0xff;
  buf[10] = (ssrc >>> 8) & 0xff;
  buf[11] = ssrc & 0xff;
}

/**
 * RFC 5761 §4: on a shared port, RTCP packet types 200–204 appear where RTP puts
 * M+PT, i.e. PT 72–76 with the marker set. We keep RTCP on its own port, but a
 * peer that muxes anyway must not have its reports played as audio.
 */
export function looksLikeRtcp(buf: Uint8Array, length: number): boolean {
  if (length < 2) return false;
  const pt = buf[1]!;
  return pt >= 192 && pt <= 223;
}
