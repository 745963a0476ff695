// The line-card driver interface: the only thing the agent (agent/trunks, the call
// core) knows about line cards. Every driver — the simulated T1/E1/FXO card, the
// serial AT-command lines — implements `LineCard`, and one contract suite
// (test/unit/drivers-contract.test.ts) holds each of them to the rules written here.
//
// Addressing: a card has spans (a T1 or E1 trunk, one FXO port, one modem or cellular
// module); a span has channels numbered from 1. A channel is named by
// `{ span, channel }`, both 1-based. FXO ports and serial lines are spans of one
// channel, so alarms (always per span) name the port that lost its line.

import type { EventEmitter } from 'node:events';
import type { Q850Cause } from './q850.ts';

/** Which driver a `linecards[]` entry uses. */
export type DriverName = 'sim' | 'serial-at';

/** The kind of line a span is. */
export type SpanKind = 't1' | 'e1' | 'fxo' | 'voice-modem' | 'cellular';

/**
 * How the span signals: ISDN PRI (Q.931 messages on a D channel: full number,
 * name, presentation and cause codes), CAS (robbed-bit / ts16 bits with in-band
 * DTMF digits: number only, slower to dial), analog loop start, or AT commands.
 */
export type Signalling = 'pri' | 'cas' | 'loop-start' | 'at';

/** G.711 law of a span's audio frames: µ-law on T1 and North American lines, A-law on E1. */
export type FrameLaw = 'PCMU' | 'PCMA';

/** 8 kHz, 20 ms: every frame in either direction is exactly this many bytes. */
export const FRAME_BYTES = 160;
export const FRAME_MS = 20;

/**
 * - idle: free for a new call in either direction.
 * - seized: taken for an outbound call, number being sent.
 * - alerting: ringing — an inbound call offered to us, or our outbound call ringing at the far end.
 * - connected: answered; audio frames flow both ways.
 * - releasing: the call is being cleared; becomes idle by itself.
 * - out-of-service: the span is in alarm (or the device is gone); no calls possible.
 */
export type ChannelState = 'idle' | 'seized' | 'alerting' | 'connected' | 'releasing' | 'out-of-service';

export interface ChannelRef {
  span: number;
  channel: number;
}

export type Presentation = 'allowed' | 'restricted' | 'unavailable';

export interface CallerId {
  /** Digits as the network delivered them; absent when withheld or unavailable. */
  number?: string;
  name?: string;
  presentation: Presentation;
}

export interface SpanInfo {
  span: number;
  kind: SpanKind;
  signalling: Signalling;
  law: FrameLaw;
  /** Number of bearer channels (24 T1 CAS, 23 T1 PRI, 30 E1, 1 per FXO port / modem). */
  channels: number;
  /** False where the driver has no audio path (a cellular module's audio leaves on its PCM pins). */
  audio: boolean;
  /** Alarms active right now; a span with any alarm has every channel out of service. */
  alarms: AlarmKind[];
  /** The line's own number when the network sends no dialled number (FXO, modems). */
  number?: string;
}

export interface ChannelInfo extends ChannelRef {
  state: ChannelState;
  /** Direction of the call on the channel; absent while idle or out of service. */
  direction?: 'inbound' | 'outbound';
}

/**
 * - loss-of-signal: no signal on the span (red alarm; a pulled cable).
 * - loss-of-frame: signal without framing (red alarm).
 * - remote-alarm: the far end reports it lost us (yellow alarm, RAI).
 * - ais: the network sends all ones (blue alarm).
 * - no-line-voltage: an analog line with no battery (FXO port disconnected).
 * - device-lost: the driver cannot reach its device (serial port gone); it keeps reopening.
 */
export type AlarmKind = 'loss-of-signal' | 'loss-of-frame' | 'remote-alarm' | 'ais' | 'no-line-voltage' | 'device-lost';

export interface IncomingCall {
  channel: ChannelRef;
  callerId: CallerId;
  /** The number the caller dialled (DNIS/DID); the span's own number on lines without DNIS. */
  dialled: string;
}

export interface ReleaseEvent {
  channel: ChannelRef;
  cause: Q850Cause;
  /** Who cleared: we did (release()), the far end, or the line itself (alarm, device loss, timeout). */
  by: 'local' | 'remote' | 'network';
}

export interface AlarmEvent {
  span: number;
  alarm: AlarmKind;
  /** For logs: what the driver observed. */
  detail?: string;
}

/**
 * The events every driver emits. Rules (checked by the contract suite):
 * - every call ends with exactly one `release`, whoever cleared it;
 * - `state` reports every transition, just before the event that goes with it
 *   (alerting, then `incoming`; connected, then `answer`), so a listener that acts
 *   at once on `incoming` still leaves observers a consistent sequence;
 * - an alarm on a span first releases its calls (cause 38, by network), then turns
 *   its channels out of service; `alarm-cleared` returns them to idle when no alarm remains.
 */
export interface LineCardEvents {
  /** A call offered to us; answer() or release() it. */
  incoming: [IncomingCall];
  /** Our outbound call rings at the far end. */
  alerting: [{ channel: ChannelRef }];
  /** The call is connected: the far end answered our outbound call, or we answered theirs. */
  answer: [{ channel: ChannelRef }];
  release: [ReleaseEvent];
  /** Digits received from the far end during a call (DTMF, out of band or detected). */
  digits: [{ channel: ChannelRef; digits: string }];
  state: [{ channel: ChannelRef; state: ChannelState; previous: ChannelState }];
  alarm: [AlarmEvent];
  'alarm-cleared': [AlarmEvent];
}

export interface DialRequest {
  /** Digits to dial, as the line wants them (trunk policy already manipulated them). */
  number: string;
  /** What to present; lines that cannot send caller ID ignore it. */
  callerId?: CallerId;
}

export type FrameListener = (frame: Uint8Array) => void;

export interface LineCard extends EventEmitter<LineCardEvents> {
  /** `linecards[].name`. */
  readonly name: string;
  readonly driver: DriverName;

  /** Opens the device / brings spans up. Resolves when channels have their first state. */
  start(): Promise<void>;
  /** Releases every call (cause 16, by local), closes the device, stops timers. */
  stop(): Promise<void>;

  spans(): SpanInfo[];
  channels(): ChannelInfo[];
  /** Throws LineCardError ENOCHANNEL for a channel that does not exist. */
  channelState(channel: ChannelRef): ChannelState;

  /**
   * Seizes an idle channel and sends the number. Resolves once the network has
   * the whole number (the channel is then seized or already alerting); the far
   * end's progress arrives as `alerting`, `answer` or `release` events.
   * Rejects with LineCardError: ENOCHANNEL, EBUSY (not idle), EOUTOFSERVICE,
   * EARGUMENT (number not dialable), ETIMEOUT, EDEVICE, ERELEASED (cleared while
   * dialling: a busy line, an alarm; the `release` event carries the cause).
   */
  dial(channel: ChannelRef, request: DialRequest): Promise<void>;
  /** Answers a call offered with `incoming`. Rejects EBUSY unless the channel is alerting inbound. */
  answer(channel: ChannelRef): Promise<void>;
  /**
   * Clears the call on the channel (default cause 16); resolves when the channel is
   * idle again (or out of service). Idle or out of service: resolves at once.
   */
  release(channel: ChannelRef, cause?: Q850Cause): Promise<void>;
  /** Sends DTMF digits (0-9 * # A-D) on a connected channel. */
  sendDigits(channel: ChannelRef, digits: string): Promise<void>;

  /**
   * Frames received from the far end of a connected channel: 160 bytes of the
   * span's law every 20 ms. The listener keeps its subscription across calls;
   * the returned function removes it. A frame is only valid during the call
   * (drivers may reuse its buffer after the listener returns).
   */
  onFrame(channel: ChannelRef, listener: FrameListener): () => void;
  /**
   * Sends one 160-byte frame to the far end. The writer paces at 20 ms. Returns
   * false (and drops the frame) when the channel is not connected or the span has
   * no audio path; throws LineCardError EARGUMENT for a frame of the wrong size.
   */
  writeFrame(channel: ChannelRef, frame: Uint8Array): boolean;
}

export type LineCardErrorCode =
  | 'ENOCHANNEL'
  | 'EBUSY'
  | 'EOUTOFSERVICE'
  | 'ENOTCONNECTED'
  | 'EARGUMENT'
  | 'ETIMEOUT'
  | 'EDEVICE'
  | 'ENOTSTARTED'
  | 'ECONFIG'
  /** The call ended while the number was being sent; the `release` event says why. */
  | 'ERELEASED';

/** Every driver failure, told apart by `code`. */
export class LineCardError extends Error {
  readonly code: LineCardErrorCode;
  readonly card: string;

  constructor(code: LineCardErrorCode, card: string, message: string, options?: { cause?: unknown }) {
    super(`${card}: ${message}`, options);
    this.name = 'LineCardError';
    this.code = code;
    this.card = card;
  }
}

/** "span/channel", for logs and keys. */
export function channelKey(channel: ChannelRef): string {
  return `${channel.span}/${channel.channel}`;
}

/** Digits a DTMF line can send. */
export const DTMF_DIGITS = /^[0-9*#A-D]+$/;

// ---- configuration (`linecards[]`; agent/config/schema.ts validates, these types describe) ----

export interface SimLineCardConfig {
  driver: 'sim';
  name: string;
  type: 't1' | 'e1' | 'fxo';
  /** T1/E1: number of spans on the card (default 1). */
  spans?: number;
  /** T1/E1: `pri` (default) or `cas`. FXO is always loop start. */
  signalling?: 'pri' | 'cas';
  /** FXO: number of ports (default 4). */
  ports?: number;
  /** FXO: each port's own number, in port order (the dialled number of its inbound calls). */
  numbers?: string[];
  /** Control socket of the simulated PSTN: host:port on loopback or a Unix socket path. */
  control?: string;
  /** Real signalling times × this (default 1): FXO calls take 2.5 s to offer, CAS 1.2 s to dial. */
  time_scale?: number;
  /** Subscribers the simulated PSTN starts with. */
  subscribers?: SimSubscriberConfig[];
}

export interface SimSubscriberConfig {
  number: string;
  name?: string;
  /** What happens when the card calls this number (default `answer`). */
  behaviour?: 'answer' | 'ring' | 'busy' | 'reject';
  /** Rings this long before answering (seconds, default 0.5). */
  answer_after?: number;
  /** Audio the subscriber hears back: `echo` (default) or `tone` (a 1 kHz tone) or `silence`. */
  audio?: 'echo' | 'tone' | 'silence';
}

export interface SerialAtLineCardConfig {
  driver: 'serial-at';
  name: string;
  /** `voice-modem`: an analog FXO line through a voice modem; `cellular`: a GSM/LTE module. */
  kind: 'voice-modem' | 'cellular';
  /** Serial device path, e.g. /dev/ttyACM0. */
  device: string;
  baud?: number;
  /** The line's own number (the dialled number of inbound calls). */
  number?: string;
  /** Seconds to wait for a command's final reply (default 5; dialling waits `dial_timeout`). */
  command_timeout?: number;
  /** Seconds to wait for an outbound call to connect (default 60). */
  dial_timeout?: number;
  /** Longest pause between reopen attempts after the device is lost (seconds, default 30). */
  reopen_max?: number;
}

export type LineCardConfig = SimLineCardConfig | SerialAtLineCardConfig;
