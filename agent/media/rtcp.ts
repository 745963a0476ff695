// RTCP sender/receiver reports, SDES CNAME and BYE (RFC 3550 §6.4–§6.6), built and
// parsed as compound packets. Basic on purpose: we send reports so that NATs keep
// the RTCP port open and peers that watch RTCP (some PBXs hang up without it) are
// content, and we read the peer's reports for loss/jitter statistics.
import { MediaPacketError } from './errors.ts';

export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;

/** One reception report block (§6.4.1), 24 bytes on the wire. */
export interface ReportBlock {
  ssrc: number;
  /** Fraction lost since the previous report, in 1/256. */
  fractionLost: number;
  /** Cumulative packets lost; signed 24-bit (duplicates can make it negative). */
  cumulativeLost: number;
  /** Extended highest sequence number received (cycles << 16 | max seq). */
  highestSequence: number;
  /** Interarrival jitter in timestamp units. */
  jitter: number;
  /** Middle 32 bits of the NTP timestamp of the last SR received, 0 if none. */
  lastSr: number;
  /** Delay since that SR, in 1/65536 s, 0 if none. */
  delaySinceLastSr: number;
}

export interface SenderReport {
  type: 'sr';
  ssrc: number;
  /** 64-bit NTP timestamp as two 32-bit halves (seconds since 1900, fraction). */
  ntpSeconds: number;
  ntpFraction: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  reports: ReportBlock[];
}

export interface ReceiverReport {
  type: 'rr';
  ssrc: number;
  reports: ReportBlock[];
}

export interface SourceDescription {
  type: 'sdes';
  /** CNAME (item type 1) per SSRC; other items are skipped. */
  chunks: { ssrc: number; cname?: string }[];
}

export interface Goodbye {
  type: 'bye';
  ssrcs: number[];
  reason?: string;
}

export interface OtherRtcp {
  type: 'other';
  packetType: number;
}

export type RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | OtherRtcp;

// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET = 2_208_988_800;

/** Wall-clock milliseconds to the two halves of an NTP timestamp. */
export function ntpFromUnixMs(ms: number): { seconds: number; fraction: number } {
  const seconds = Math.floor(ms / 1000);
  const fraction = Math.floor(((ms - seconds * 1000) / 1000) * 0x1_0000_0000);
  return { seconds: (seconds + NTP_UNIX_OFFSET) >>> 0, fraction: fraction >>> 0 };
}

/** The "middle 32 bits" of an NTP timestamp that LSR echoes (§6.4.1). */
export function ntpMiddle32(seconds: number, fraction: number): number {
  return (((seconds & 0xffff) << 16) | (fraction >>> 16)) >>> 0;
}

function writeHeader(buf: Buffer, offset: number, count: number, packetType: number, totalBytes: number): void {
  buf[offset] = 0x80 | (count & 0x1f);
  buf[offset + 1] = packetType;
  // Length in 32-bit words minus one, header included.
  buf.writeUInt16BE(totalBytes / 4 - 1, offset + 2);
}

function writeReportBlock(buf: Buffer, offset: number, r: ReportBlock): void {
  buf.writeUInt32BE(r.ssrc >>> 0, offset);
  buf[offset + 4] = Math.max(0, Math.min(255, r.fractionLost | 0));
  const lost = Math.max(-0x800000, Math.min(0x7fffff, r.cumulativeLost | 0));
  buf.writeUIntBE(lost & 0xffffff, offset + 5, 3);
  buf.writeUInt32BE(r.highestSequence >>> 0, offset + 8);
  buf.writeUInt32BE(r.jitter >>> 0, offset + 12);
  buf.writeUInt32BE(r.lastSr >>> 0, offset + 16);
  buf.writeUInt32BE(r.delaySinceLastSr >>> 0, offset + 20);
}

export function buildSenderReport(sr: Omit<SenderReport, 'type'>): Buffer {
  if (sr.reports.length > 31) throw new MediaPacketError('count', 'at most 31 report blocks fit in one SR');
  const bytes = 28 + 24 * sr.reports.length;
  const buf = Buffer.alloc(bytes);
  writeHeader(buf, 0, sr.reports.length, RTCP_SR, bytes);
  buf.writeUInt32BE(sr.ssrc >>> 0, 4);
  buf.writeUInt32BE(sr.ntpSeconds >>> 0, 8);
  buf.writeUInt32BE(sr.ntpFraction >>> 0, 12);
  buf.writeUInt32BE(sr.rtpTimestamp >>> 0, 16);
  buf.writeUInt32BE(sr.packetCount >>> 0, 20);
  buf.writeUInt32BE(sr.octetCount >>> 0, 24);
  sr.reports.forEach((r, i) => writeReportBlock(buf, 28 + 24 * i, r));
  return buf;
}

export function buildReceiverReport(rr: Omit<ReceiverReport, 'type'>): Buffer {
  if (rr.reports.length > 31) throw new MediaPacketError('count', 'at most 31 report blocks fit in one RR');
  const bytes = 8 + 24 * rr.reports.length;
  const buf = Buffer.alloc(bytes);
  writeHeader(buf, 0, rr.reports.length, RTCP_RR, bytes);
  buf.writeUInt32BE(rr.ssrc >>> 0, 4);
  rr.reports.forEach((r, i) => writeReportBlock(buf, 8 + 24 * i, r));
  return buf;
}

/** SDES with one chunk carrying a CNAME (§6.5.1), the item every compound packet needs. */
export function buildSdes(ssrc: number, cname: string): Buffer {
  const text = Buffer.from(cname, 'utf8');
  if (text.length > 255) throw new MediaPacketError('sdes', 'CNAME longer than 255 bytes');
  // SSRC, type, length, text, then at least one null octet ending the item list,
  // padded to a 32-bit boundary (§6.5).
  const chunk = 4 + 2 + text.length + 1;
  const padded = Math.ceil(chunk / 4) * 4;
  const bytes = 4 + padded;
  const buf = Buffer.alloc(bytes);
  writeHeader(buf, 0, 1, RTCP_SDES, bytes);
  buf.writeUInt32BE(ssrc >>> 0, 4);
  buf[8] = 1; // CNAME
  buf[9] = text.length;
  text.copy(buf, 10);
  return buf;
}

export function buildBye(ssrcs: number[], reason?: string): Buffer {
  if (ssrcs.length > 31) throw new MediaPacketError('count', 'at most 31 SSRCs fit in one BYE');
  const text = reason === undefined ? undefined : Buffer.from(reason, 'utf8');
  if (text && text.length > 255) throw new MediaPacketError('bye', 'BYE reason longer than 255 bytes');
  const reasonBytes = text ? Math.ceil((1 + text.length) / 4) * 4 : 0;
  const bytes = 4 + 4 * ssrcs.length + reasonBytes;
  const buf = Buffer.alloc(bytes);
  writeHeader(buf, 0, ssrcs.length, RTCP_BYE, bytes);
  ssrcs.forEach((s, i) => buf.writeUInt32BE(s >>> 0, 4 + 4 * i));
  if (text) {
    const o = 4 + 4 * ssrcs.length;
    buf[o] = text.length;
    text.copy(buf, o + 1);
  }
  return buf;
}

function readReportBlocks(buf: Buffer, offset: number, count: number): ReportBlock[] {
  const reports: ReportBlock[] = [];
  for (let i = 0; i < count; i++) {
    const o = offset + 24 * i;
    const raw = buf.readUIntBE(o + 5, 3);
    reports.push({
      ssrc: buf.readUInt32BE(o),
      fractionLost: buf[o + 4]!,
      cumulativeLost: raw & 0x800000 ? raw - 0x1000000 : raw,
      highestSequence: buf.readUInt32BE(o + 8),
      jitter: buf.readUInt32BE(o + 12),
      lastSr: buf.readUInt32BE(o + 16),
      delaySinceLastSr: buf.readUInt32BE(o + 20),
    });
  }
  return reports;
}

function fail(reason: string, message: string): never {
  throw new MediaPacketError(reason, `not an RTCP packet: ${message}`);
}

/**
 * Parses a compound RTCP datagram into its packets. Throws MediaPacketError on a
 * header that does not fit (§6.1 validity checks: version 2, lengths that add up).
 */
export function parseRtcp(input: Uint8Array): RtcpPacket[] {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const packets: RtcpPacket[] = [];
  let offset = 0;
  if (buf.length < 4) fail('short', 'shorter than a 4-byte header');
  while (offset < buf.length) {
    if (offset + 4 > buf.length) fail('short', 'truncated header');
    const b0 = buf[offset]!;
    if (b0 >> 6 !== 2) fail('version', 'version is not 2');
    const count = b0 & 0x1f;
    const packetType = buf[offset + 1]!;
    const bytes = (buf.readUInt16BE(offset + 2) + 1) * 4;
    if (offset + bytes > buf.length) fail('length', 'length field runs past the datagram');
    let end = offset + bytes;
    if (b0 & 0x20) {
      const pad = buf[end - 1]!;
      if (pad === 0 || pad > bytes - 4) fail('padding', 'bad padding count');
      end -= pad;
    }
    const body = offset + 4;
    switch (packetType) {
      case RTCP_SR: {
        if (end - body < 24 + 24 * count) fail('length', 'SR shorter than its report count');
        packets.push({
          type: 'sr',
          ssrc: buf.readUInt32BE(body),
          ntpSeconds: buf.readUInt32BE(body + 4),
          ntpFraction: buf.readUInt32BE(body + 8),
          rtpTimestamp: buf.readUInt32BE(body + 12),
          packetCount: buf.readUInt32BE(body + 16),
          octetCount: buf.readUInt32BE(body + 20),
          reports: readReportBlocks(buf, body + 24, count),
        });
        break;
      }
      case RTCP_RR: {
        if (end - body < 4 + 24 * count) fail('length', 'RR shorter than its report count');
        packets.push({ type: 'rr', ssrc: buf.readUInt32BE(body), reports: readReportBlocks(buf, body + 4, count) });
        break;
      }
      case RTCP_SDES: {
        const chunks: { ssrc: number; cname?: string }[] = [];
        let o = body;
        for (let c = 0; c < count; c++) {
          if (o + 4 > end) fail('length', 'SDES chunk runs past the packet');
          const chunk: { ssrc: number; cname?: string } = { ssrc: buf.readUInt32BE(o) };
          o += 4;
          while (o < end && buf[o] !== 0) {
            if (o + 2 > end) fail('length', 'SDES item runs past the packet');
            const itemType = buf[o]!;
            const len = buf[o + 1]!;
            if (o + 2 + len > end) fail('length', 'SDES item runs past the packet');
            if (itemType === 1) chunk.cname = buf.toString('utf8', o + 2, o + 2 + len);
            o += 2 + len;
          }
          // Skip the terminating null and the padding to the next word.
          o = Math.ceil((o + 1 - body) / 4) * 4 + body;
          chunks.push(chunk);
        }
        packets.push({ type: 'sdes', chunks });
        break;
      }
      case RTCP_BYE: {
        if (end - body < 4 * count) fail('length', 'BYE shorter than its SSRC count');
        const ssrcs: number[] = [];
        for (let i = 0; i < count; i++) ssrcs.push(buf.readUInt32BE(body + 4 * i));
        const bye: Goodbye = { type: 'bye', ssrcs };
        const r = body + 4 * count;
        if (r < end) {
          const len = buf[r]!;
          if (r + 1 + len > end) fail('length', 'BYE reason runs past the packet');
          bye.reason = buf.toString('utf8', r + 1, r + 1 + len);
        }
        packets.push(bye);
        break;
      }
      default:
        packets.push({ type: 'other', packetType });
    }
    offset += bytes;
  }
  return packets;
}
