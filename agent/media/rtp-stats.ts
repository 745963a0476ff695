// Receive statistics for one RTP source: sequence tracking (RFC 3550 A.1), loss
// (A.3) and interarrival jitter (A.8). Numbers only, no allocation per packet.
import type { ReportBlock } from './rtcp.ts';

const RTP_SEQ_MOD = 1 << 16;
const MAX_DROPOUT = 3000;
const MAX_MISORDER = 100;
const MIN_SEQUENTIAL = 2;

export class RtpReceiveStats {
  readonly clockRate: number;
  ssrc = 0;
  #active = false;
  #maxSeq = 0;
  #cycles = 0;
  #baseSeq = 0;
  #badSeq = RTP_SEQ_MOD + 1;
  #probation = 0;
  #received = 0;
  #expectedPrior = 0;
  #receivedPrior = 0;
  #transit = 0;
  #haveTransit = false;
  #jitter = 0;
  /** Packets that failed the A.1 checks (too far out of order, restarts during probation). */
  discarded = 0;

  constructor(clockRate: number) {
    this.clockRate = clockRate;
  }

  /** Forget the source: the next packet starts a new one (new SSRC, re-INVITE). */
  reset(): void {
    this.#active = false;
    this.#received = 0;
    this.#expectedPrior = 0;
    this.#receivedPrior = 0;
    this.#haveTransit = false;
    this.#jitter = 0;
    this.#cycles = 0;
    this.discarded = 0;
  }

  #initSeq(seq: number): void {
    this.#baseSeq = seq;
    this.#maxSeq = seq;
    this.#badSeq = RTP_SEQ_MOD + 1;
    this.#cycles = 0;
    this.#received = 0;
    this.#receivedPrior = 0;
    this.#expectedPrior = 0;
  }

  /**
   * Accounts one packet. `arrivalMs` is a monotonic time in milliseconds. Returns
   * false when A.1 says the packet does not (yet) count: the source is on
   * probation or the sequence number jumped. Callers still play such packets:
   * for a phone call a jump usually means the peer restarted its stream.
   */
  update(ssrc: number, seq: number, timestamp: number, arrivalMs: number, timed = true): boolean {
    if (!this.#active || ssrc !== this.ssrc) {
      this.reset();
      this.#active = true;
      this.ssrc = ssrc;
      this.#initSeq(seq);
      this.#maxSeq = (seq - 1) & 0xffff;
      this.#probation = MIN_SEQUENTIAL;
    }
    if (!this.#updateSeq(seq)) return false;
    // RFC 4733 event packets all carry the event's start timestamp: their
    // transit times say nothing about network jitter (`timed` false skips them).
    if (!timed) return true;
    // A.8: transit time in timestamp units; only differences matter, so the
    // arrival clock's origin is irrelevant. `| 0` keeps 32-bit wrap-around.
    const arrival = Math.round((arrivalMs * this.clockRate) / 1000);
    const transit = (arrival - timestamp) | 0;
    if (this.#haveTransit) {
      let d = (transit - this.#transit) | 0;
      if (d < 0) d = -d;
      this.#jitter += (d - this.#jitter) / 16;
    }
    this.#transit = transit;
    this.#haveTransit = true;
    return true;
  }

  #updateSeq(seq: number): boolean {
    const udelta = (seq - this.#maxSeq) & 0xffff;
    if (this.#probation > 0) {
      if (seq === ((this.#maxSeq + 1) & 0xffff)) {
        this.#probation--;
        this.#maxSeq = seq;
        if (this.#probation === 0) {
          this.#initSeq(seq);
          this.#received++;
          return true;
        }
      } else {
        this.#probation = MIN_SEQUENTIAL - 1;
        this.#maxSeq = seq;
      }
      return false;
    }
    if (udelta < MAX_DROPOUT) {
      if (seq < this.#maxSeq) this.#cycles += RTP_SEQ_MOD;
      this.#maxSeq = seq;
    } else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
      if (seq === this.#badSeq) {
        // Two sequential packets after a big jump: the source restarted.
        this.#initSeq(seq);
      } else {
        this.#badSeq = (seq + 1) & 0xffff;
        this.discarded++;
        return false;
      }
    }
    // else: duplicate or reordered within MAX_MISORDER; counted as received.
    this.#received++;
    return true;
  }

  get received(): number {
    return this.#received;
  }

  get extendedHighest(): number {
    return this.#cycles + this.#maxSeq;
  }

  get expected(): number {
    return this.#active && this.#probation === 0 ? this.extendedHighest - this.#baseSeq + 1 : 0;
  }

  /** Cumulative loss (A.3); negative when duplicates outnumber losses. */
  get lost(): number {
    return this.expected - this.#received;
  }

  /** Interarrival jitter in timestamp units. */
  get jitter(): number {
    return this.#jitter;
  }

  get jitterMs(): number {
    return (this.#jitter * 1000) / this.clockRate;
  }

  get valid(): boolean {
    return this.#active && this.#probation === 0;
  }

  /**
   * A report block for this source, and the start of the next reporting interval
   * (fraction lost is computed since the previous call, A.3).
   */
  reportBlock(lastSr: number, delaySinceLastSr: number): ReportBlock {
    const expected = this.expected;
    const expectedInterval = expected - this.#expectedPrior;
    this.#expectedPrior = expected;
    const receivedInterval = this.#received - this.#receivedPrior;
    this.#receivedPrior = this.#received;
    const lostInterval = expectedInterval - receivedInterval;
    const fractionLost =
      expectedInterval === 0 || lostInterval <= 0 ? 0 : Math.floor((lostInterval * 256) / expectedInterval);
    return {
      ssrc: this.ssrc,
      fractionLost: Math.min(255, fractionLost),
      cumulativeLost: this.lost,
      highestSequence: this.extendedHighest >>> 0,
      jitter: Math.floor(this.#jitter),
      lastSr,
      delaySinceLastSr,
    };
  }
}
