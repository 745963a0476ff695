// The simulated PSTN's control socket: the wire contract (docs/drivers.md
// "Control socket"). JSON lines over a Unix socket or loopback TCP. Every request
// has an `id` the answer repeats; events (after `subscribe`) have no id.
//
//   → {"id":1,"op":"call","from":"2125550147","to":"5550100","talk":5}
//   ← {"id":1,"ok":true,"result":{"answered":true,"channel":"pstn/1/30",...}}
//   ← {"id":2,"ok":false,"error":{"code":"EARGUMENT","message":"..."}}
//   ← {"event":"call.released","call":"pstn-3","cause":16,"by":"card"}

import type { AlarmKind, Presentation } from '../types.ts';

export const PROTOCOL_VERSION = 1;

export type ControlRequest =
  | { id: number; op: 'status' }
  | { id: number; op: 'subscribe' }
  | {
      id: number;
      op: 'call';
      from?: string;
      name?: string;
      presentation?: Presentation;
      to: string;
      span?: number;
      /** Raw G.711 µ-law file to play while connected, looped (transcoded on A-law spans); default a 440 Hz tone. */
      audio?: string;
      /**
       * With `talk`, the request runs the whole call — ring, wait for the answer
       * (at most `answer_timeout` s, default 30), play for `talk` s, hang up — and the
       * answer is its outcome. Without it, the answer is the call's id at once.
       */
      talk?: number;
      answer_timeout?: number;
    }
  | { id: number; op: 'answer'; call: string }
  | { id: number; op: 'hangup'; call: string; cause?: number }
  /** `audio`: a raw µ-law file (as for `call`); else a `tone` in Hz (default 440). */
  | { id: number; op: 'play'; call: string; audio?: string; tone?: number; loops?: number }
  | { id: number; op: 'stop-audio'; call: string }
  | { id: number; op: 'record'; call: string }
  /** Writes what `record` kept so far: raw G.711 in the span's law. */
  | { id: number; op: 'save-recording'; call: string; file: string }
  | { id: number; op: 'digits'; call: string; digits: string }
  | { id: number; op: 'calls' }
  | { id: number; op: 'subscriber.add'; number: string; name?: string; behaviour?: 'answer' | 'ring' | 'busy' | 'reject'; answer_after?: number; audio?: 'echo' | 'tone' | 'silence' }
  | { id: number; op: 'subscriber.remove'; number: string }
  | { id: number; op: 'cable.pull'; span: number }
  | { id: number; op: 'cable.plug'; span: number }
  | { id: number; op: 'alarm.raise'; span: number; alarm: AlarmKind }
  | { id: number; op: 'alarm.clear'; span: number; alarm: AlarmKind };

export type ControlOp = ControlRequest['op'];

export interface CallSummary {
  call: string;
  direction: 'inbound' | 'outbound';
  from?: string;
  to: string;
  state: 'setup' | 'alerting' | 'connected' | 'released';
  /** card/span/channel */
  channel?: string;
  cause?: number;
  framesSent: number;
  framesReceived: number;
  audibleFramesReceived: number;
}

/** The answer to `call` with `talk`: what `branchline sim call` prints. */
export interface CallOutcome {
  answered: boolean;
  channel: string | null;
  /** Seconds connected. */
  seconds: number;
  packets: { sent: number; received: number; audible_received: number };
  /** Q.850 cause the call ended with. */
  cause: number | null;
  /** Audio went both ways: frames sent and audible frames received. */
  audio_both_ways: boolean;
}

export interface ControlResponse {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
}

export type ControlEvent =
  | { event: 'call.alerting' | 'call.answered'; call: string }
  | { event: 'call.released'; call: string; cause: number; by: string }
  | { event: 'call.digits'; call: string; digits: string }
  /** The card placed a call into the network. */
  | { event: 'call.dialled'; call: string; from?: string; to: string; channel: string }
  | { event: 'alarm'; span: number; alarm: AlarmKind; active: boolean };
