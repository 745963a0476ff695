// The call record (CDR) the call core writes when a call ends, durably, through
// agent/store/call-records.ts. Times are Unix epoch milliseconds.

export type CallDisposition =
  | 'answered'
  | 'busy'
  | 'no-answer'
  | 'unavailable'
  | 'cancelled' // the caller hung up before answer
  | 'rejected'
  | 'failed' // an error on our side or a peer's 5xx/6xx not covered above
  | 'voicemail';

export type CallMode = 'bridged' | 'application';

export interface CallLegRecord {
  /** 'a' for the caller's leg, then 'b1', 'b2'... in the order legs were created. */
  leg: string;
  direction: 'inbound' | 'outbound';
  kind: 'sip' | 'channel' | 'application';
  /** The extension, number or channel id the leg reached. */
  party: string;
  callId?: string;
  startedAt: number;
  answeredAt?: number;
  endedAt: number;
  /** The final SIP status this leg got or gave (200 when answered). */
  status?: number;
  /** Who ended it: 'caller', 'callee', 'system' (timeout, error), 'cancel'. */
  endedBy?: 'caller' | 'callee' | 'system' | 'cancel';
}

export interface CallRecord {
  /** Unique per call, also the id of its events and of its outbox message. */
  id: string;
  siteId: string;
  caller: string;
  callerName?: string;
  dialed: string;
  /** The party that answered, when one did. */
  answeredBy?: string;
  startedAt: number;
  answeredAt?: number;
  endedAt: number;
  disposition: CallDisposition;
  /** Status and reason of the final response when the call was not answered. */
  finalStatus?: number;
  reason?: string;
  emergency: boolean;
  /** Milliseconds spent in each mode (the metering the patents describe). */
  modeDurations: Record<CallMode, number>;
  mediaPolicy: 'direct' | 'anchored';
  legs: CallLegRecord[];
}
