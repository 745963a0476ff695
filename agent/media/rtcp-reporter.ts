// The RTCP side of one session: when to report (RFC 3550 §6.2, randomised), what
// to put in the compound packet (SR or RR, a reception report block, SDES CNAME,
// BYE when leaving), and what the peer's reports tell us about our own stream.
// Sockets and addresses stay with the session; this only builds and reads.
import {
  buildBye,
  buildReceiverReport,
  buildSdes,
  buildSenderReport,
  ntpFromUnixMs,
  ntpMiddle32,
  type ReportBlock,
  type RtcpPacket,
} from './rtcp.ts';
import type { RtpReceiveStats } from './rtp-stats.ts';

/** What the peer last reported about the stream we send. */
export interface RemoteReport {
  /** 0..1 over the peer's last interval. */
  fractionLost: number;
  cumulativeLost: number;
  jitterMs: number;
}

export interface SenderInfo {
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
}

export class RtcpReporter {
  readonly ssrc: number;
  readonly cname: string;
  readonly intervalTicks: number;
  readonly clockRate: number;
  #countdown = 0;
  #lastSr: { middle: number; at: number } | undefined;
  #remoteReport: RemoteReport | undefined;

  constructor(ssrc: number, cname: string, intervalTicks: number, clockRate = 8000) {
    this.ssrc = ssrc;
    this.cname = cname;
    this.intervalTicks = intervalTicks;
    this.clockRate = clockRate;
  }

  get remoteReport(): RemoteReport | undefined {
    return this.#remoteReport;
  }

  /** Call once per clock tick; true when a report is due. */
  tick(): boolean {
    if (--this.#countdown > 0) return false;
    // RFC 3550 §6.3.1: each interval is drawn from [0.5, 1.5] of the mean so that
    // sessions started together do not report in lockstep.
    this.#countdown = Math.max(1, Math.round(this.intervalTicks * (0.5 + Math.random())));
    return true;
  }

  /** Starts the first interval (without reporting at once). */
  reset(): void {
    this.#countdown = 0;
    this.tick();
  }

  /** Takes what matters from a received compound packet. */
  receive(packets: RtcpPacket[], nowMs: number): void {
    for (const p of packets) {
      if (p.type === 'sr') this.#lastSr = { middle: ntpMiddle32(p.ntpSeconds, p.ntpFraction), at: nowMs };
      if (p.type !== 'sr' && p.type !== 'rr') continue;
      const mine = p.reports.find((r) => r.ssrc === this.ssrc);
      if (mine) {
        this.#remoteReport = {
          fractionLost: mine.fractionLost / 256,
          cumulativeLost: mine.cumulativeLost,
          jitterMs: (mine.jitter * 1000) / this.clockRate,
        };
      }
    }
  }

  /**
   * A compound packet: SR when we sent RTP since the last report (`sender`), RR
   * otherwise; a report block when the peer's stream is valid; SDES CNAME; BYE.
   */
  build(stats: RtpReceiveStats, sender: SenderInfo | undefined, nowMs: number, byeReason?: string): Buffer {
    const reports: ReportBlock[] = [];
    if (stats.valid) {
      const lsr = this.#lastSr;
      const dlsr = lsr ? Math.floor(((nowMs - lsr.at) / 1000) * 65536) : 0;
      reports.push(stats.reportBlock(lsr?.middle ?? 0, dlsr));
    }
    const parts: Buffer[] = [];
    if (sender) {
      const ntp = ntpFromUnixMs(Date.now());
      parts.push(buildSenderReport({ ssrc: this.ssrc, ntpSeconds: ntp.seconds, ntpFraction: ntp.fraction, ...sender, reports }));
    } else {
      parts.push(buildReceiverReport({ ssrc: this.ssrc, reports }));
    }
    parts.push(buildSdes(this.ssrc, this.cname));
    if (byeReason !== undefined) parts.push(buildBye([this.ssrc], byeReason));
    return Buffer.concat(parts);
  }
}
