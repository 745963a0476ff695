// The two sides of the simulated line: what the card can ask of the network (its
// signalling and audio going out), and what the network does to the card (calls
// offered, the far end's progress, audio coming in, alarms). The card and the PSTN
// only know each other through these, as a real card and exchange only share a line.
// Calls in either direction are asynchronous: the network answers after the
// signalling model's delay, never inside the card's call.

import type { AlarmKind, CallerId, ChannelRef } from '../types.ts';
import type { Q850Cause } from '../q850.ts';

/** The card's view of the network. */
export interface NetworkSide {
  /** Seize `channel` and send `number`; resolves when the number has been sent, rejects with a cause if the network refuses. */
  dial(channel: ChannelRef, number: string, callerId: CallerId | undefined): Promise<void>;
  answer(channel: ChannelRef): void;
  /** Our disconnect; the network confirms with `cleared` on the card side. */
  release(channel: ChannelRef, cause: Q850Cause): void;
  frame(channel: ChannelRef, frame: Uint8Array): void;
  digits(channel: ChannelRef, digits: string): void;
}

/** The network's view of the card. */
export interface CardSide {
  /** Whether the network may seize this channel for an inbound call now. */
  isIdle(channel: ChannelRef): boolean;
  offer(channel: ChannelRef, callerId: CallerId, dialled: string): void;
  alerting(channel: ChannelRef): void;
  answered(channel: ChannelRef): void;
  /** The far end cleared (or the network refused our call after the number was sent). */
  disconnected(channel: ChannelRef, cause: Q850Cause, by: 'remote' | 'network'): void;
  /** Clearing finished: the channel is free again. */
  cleared(channel: ChannelRef): void;
  frame(channel: ChannelRef, frame: Uint8Array): void;
  digits(channel: ChannelRef, digits: string): void;
  alarm(span: number, alarm: AlarmKind, active: boolean, detail: string): void;
}

/** A refusal from the network while dialling, carrying the Q.850 cause. */
export class NetworkRefusal extends Error {
  readonly q850: Q850Cause;

  constructor(q850: Q850Cause, message: string) {
    super(message);
    this.name = 'NetworkRefusal';
    this.q850 = q850;
  }
}
