// The typed shape of SIP messages inside the agent. The `sip` package's parser
// produces this shape; our parse wrapper (parse.ts) checks it and copies it into
// null-prototype objects so that a header parameter named `__proto__` or
// `constructor` is just a parameter.

export type Params = Record<string, string | null>;

export interface SipUri {
  scheme: string;
  user?: string;
  password?: string;
  host: string;
  port?: number;
  params: Params;
  headers: Record<string, string>;
}

/** A name-addr or addr-spec header value (To, From, Contact, Route, Path...). */
export interface NameAddr {
  name?: string;
  /** The URI as text; parse it with parseUri when its parts are needed. */
  uri: string;
  params: Params;
}

export interface Via {
  version: string;
  protocol: string;
  host: string;
  port?: number;
  params: Params;
}

export interface CSeq {
  seq: number;
  method: string;
}

/** One Authorization / WWW-Authenticate value: scheme plus its parameters (quotes kept). */
export interface AuthValue {
  scheme: string;
  params: Record<string, string>;
}

export interface SipHeaders {
  via: Via[];
  to: NameAddr;
  from: NameAddr;
  'call-id': string;
  cseq: CSeq;
  'content-length'?: number;
  contact?: NameAddr[] | '*';
  route?: NameAddr[];
  'record-route'?: NameAddr[];
  path?: NameAddr[];
  authorization?: AuthValue[];
  'proxy-authorization'?: AuthValue[];
  'www-authenticate'?: AuthValue[];
  'proxy-authenticate'?: AuthValue[];
  /** Every other header, by lower-case long name, comma-joined when repeated. */
  [name: string]: unknown;
}

export interface SipRequest {
  kind: 'request';
  method: string;
  uri: string;
  version: string;
  headers: SipHeaders;
  /** Body as a latin1 ("binary") string so byte counts equal string lengths. */
  content: string;
}

export interface SipResponse {
  kind: 'response';
  status: number;
  reason: string;
  version: string;
  headers: SipHeaders;
  content: string;
}

export type SipMessage = SipRequest | SipResponse;

export type TransportName = 'udp' | 'tcp';

/** Where a message came from or goes to. */
export interface Endpoint {
  transport: TransportName;
  address: string;
  port: number;
  /** For TCP: the connection a message arrived on, so responses reuse it. */
  connectionId?: number;
}
