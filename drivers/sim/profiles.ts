// What each simulated card looks like from the line: channels per span, audio law,
// and the signalling model's timings. Timings are the real-world ones (ms) scaled by
// `timeScale`, so a test can run the same sequence twenty times faster and a demo
// feels like a real line.

import type { FrameLaw, Signalling, SpanKind } from '../types.ts';

export interface SignallingTimings {
  /** Outbound: from seize until the network is ready for digits (PRI: SETUP → CALL PROCEEDING; CAS: wink; FXO: dial tone). */
  seizeAckMs: number;
  /** Outbound: time to send one digit (0 when the whole number goes in one message). */
  perDigitMs: number;
  /** Inbound: from the network's seizure to our `incoming` (PRI: SETUP; CAS: wink + DNIS digits; FXO: first ring + caller ID). */
  offerMs: number;
  /** Either way: from a disconnect to the channel being idle again. */
  clearMs: number;
  /** After a cable is plugged back: until the span is in frame and the alarm clears. */
  resyncMs: number;
}

export interface SpanProfile {
  kind: SpanKind;
  signalling: Signalling;
  law: FrameLaw;
  channels: number;
  /** PRI sends the caller's name and presentation; CAS sends digits only. */
  deliversName: boolean;
  /** PRI and loop start (polarity reversal on our sim exchange) report ringing; CAS does not. */
  reportsAlerting: boolean;
  /** The alarm a pulled cable raises. */
  cableAlarm: 'loss-of-signal' | 'no-line-voltage';
  timings: SignallingTimings;
}

const PRI: SignallingTimings = { seizeAckMs: 30, perDigitMs: 0, offerMs: 20, clearMs: 20, resyncMs: 500 };
// E&M wink start with DTMF addressing: ~200 ms to wink, 70 ms tone + 70 ms pause per digit.
const CAS: SignallingTimings = { seizeAckMs: 200, perDigitMs: 140, offerMs: 900, clearMs: 300, resyncMs: 500 };
// Loop start: dial tone after ~300 ms off-hook; caller ID arrives between the first and second ring.
const LOOP_START: SignallingTimings = { seizeAckMs: 300, perDigitMs: 140, offerMs: 2500, clearMs: 500, resyncMs: 200 };

export function spanProfile(type: 't1' | 'e1' | 'fxo', signalling: 'pri' | 'cas'): SpanProfile {
  if (type === 'fxo') {
    return {
      kind: 'fxo',
      signalling: 'loop-start',
      law: 'PCMU',
      channels: 1,
      deliversName: true,
      reportsAlerting: true,
      cableAlarm: 'no-line-voltage',
      timings: LOOP_START,
    };
  }
  const pri = signalling === 'pri';
  return {
    kind: type,
    signalling,
    law: type === 't1' ? 'PCMU' : 'PCMA',
    // T1 PRI gives timeslot 24 to the D channel (23B+D); T1 CAS robs bits and keeps all 24.
    // E1 has 30 bearers either way: timeslot 16 carries the D channel or the CAS bits.
    channels: type === 'e1' ? 30 : pri ? 23 : 24,
    deliversName: pri,
    reportsAlerting: pri,
    cableAlarm: 'loss-of-signal',
    timings: pri ? PRI : CAS,
  };
}

export function scaled(timings: SignallingTimings, timeScale: number): SignallingTimings {
  return {
    seizeAckMs: timings.seizeAckMs * timeScale,
    perDigitMs: timings.perDigitMs * timeScale,
    offerMs: timings.offerMs * timeScale,
    clearMs: timings.clearMs * timeScale,
    resyncMs: timings.resyncMs * timeScale,
  };
}
