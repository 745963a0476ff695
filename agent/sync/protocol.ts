// The wire contract between sites and the controller: every MQTT topic, its QoS and
// retain flag, and the type of every payload, in one file. docs/protocol.md explains
// the same contract for people; a change here is a change there.
//
// Everything a receiver needs travels in the JSON payload, so the protocol works on
// MQTT 3.1.1 brokers too (the embedded Aedes broker speaks only 3.1.1). On MQTT 5
// the request/response fields are mirrored in the standard properties (Response
// Topic, Correlation Data) so generic MQTT 5 tools can answer a command.

import type { CallRecord } from '../calls/call-record.ts';

export const PROTOCOL_VERSION = 1;
export const ROOT = 'branchline/v1';

/** QoS of every message in the protocol: at least once, receivers deduplicate by id. */
export const QOS = 1;

/** `up/…` streams a site sends through its outbox. */
export const STREAMS = ['records', 'events', 'telemetry', 'voicemail'] as const;
export type StreamName = (typeof STREAMS)[number];

/**
 * When the outbox is over its disk quota it deletes the oldest messages of these
 * streams, in this order. Call records and voicemail are never shed.
 */
export const SHEDDING_ORDER: readonly StreamName[] = ['telemetry', 'events'];

export function isStreamName(s: string): s is StreamName {
  return (STREAMS as readonly string[]).includes(s);
}

const SITE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export function isSiteId(s: string): boolean {
  return SITE_RE.test(s);
}

// ---------------------------------------------------------------------------------
// Topics
// ---------------------------------------------------------------------------------

export const topics = {
  /** Site → all. Retained. The site's birth/state; the Last Will sets it `offline`. */
  siteState: (site: string) => `${ROOT}/site/${site}/state`,
  /** Site → controller. Not retained. One outbox message per publish. */
  up: (site: string, stream: StreamName) => `${ROOT}/site/${site}/up/${stream}`,
  /** Controller → site. Not retained. Ids the controller has committed. */
  ack: (site: string) => `${ROOT}/site/${site}/ack`,
  /** Controller → site. Retained. The desired configuration with its version. */
  desiredConfig: (site: string) => `${ROOT}/site/${site}/config/desired`,
  /** Site → controller. Retained. The version the site applied. */
  reportedConfig: (site: string) => `${ROOT}/site/${site}/config/reported`,
  /** Anyone → site. Not retained. Commands; answered on the request's response topic. */
  siteCommand: (site: string) => `${ROOT}/site/${site}/cmd`,
  /** Controller → all. Retained. The controller's state; its Last Will sets `offline`. */
  controllerState: `${ROOT}/controller/state`,
  /** Clients (branchctl) → controller. Not retained. Requests to the controller. */
  controllerRequest: `${ROOT}/controller/req`,
  /** Where a requester with this client id receives its responses. */
  responses: (clientId: string) => `${ROOT}/client/${clientId}/res`,
  /** Site → all. Retained. The numbers the site is home for and its SIP address (peers directory). */
  directory: (site: string) => `${ROOT}/site/${site}/directory`,
  /** Site `from` → site `to`. Not retained. File transfer manifests and chunks. */
  fileData: (from: string, to: string) => `${ROOT}/site/${from}/files/${to}/data`,
  /** Site `from` → site `to`. Not retained. Transfer status (acks) and remote file-state changes. */
  fileStatus: (from: string, to: string) => `${ROOT}/site/${from}/files/${to}/status`,
} as const;

/** Subscription filters, for the controller and for tools. */
export const filters = {
  allUp: `${ROOT}/site/+/up/+`,
  allSiteStates: `${ROOT}/site/+/state`,
  allReportedConfigs: `${ROOT}/site/+/config/reported`,
  allDirectories: `${ROOT}/site/+/directory`,
  /** What a site subscribes to to receive files from any peer. */
  fileDataTo: (site: string) => `${ROOT}/site/+/files/${site}/data`,
  fileStatusTo: (site: string) => `${ROOT}/site/+/files/${site}/status`,
} as const;

export type ParsedTopic =
  | { kind: 'up'; site: string; stream: StreamName }
  | { kind: 'siteState'; site: string }
  | { kind: 'reportedConfig'; site: string }
  | { kind: 'desiredConfig'; site: string }
  | { kind: 'ack'; site: string }
  | { kind: 'siteCommand'; site: string }
  | { kind: 'controllerState' }
  | { kind: 'controllerRequest' }
  | { kind: 'responses'; clientId: string }
  | { kind: 'directory'; site: string }
  | { kind: 'fileData'; from: string; to: string }
  | { kind: 'fileStatus'; from: string; to: string };

/** Reverses `topics`; undefined for a topic outside the protocol. */
export function parseTopic(topic: string): ParsedTopic | undefined {
  if (!topic.startsWith(`${ROOT}/`)) return undefined;
  const parts = topic.slice(ROOT.length + 1).split('/');
  const [a, b, c, d] = parts;
  if (a === 'site' && b !== undefined && isSiteId(b)) {
    if (parts.length === 4 && c === 'up' && d !== undefined && isStreamName(d)) return { kind: 'up', site: b, stream: d };
    if (parts.length === 3 && c === 'state') return { kind: 'siteState', site: b };
    if (parts.length === 3 && c === 'ack') return { kind: 'ack', site: b };
    if (parts.length === 3 && c === 'cmd') return { kind: 'siteCommand', site: b };
    if (parts.length === 4 && c === 'config' && d === 'reported') return { kind: 'reportedConfig', site: b };
    if (parts.length === 4 && c === 'config' && d === 'desired') return { kind: 'desiredConfig', site: b };
    if (parts.length === 3 && c === 'directory') return { kind: 'directory', site: b };
    if (parts.length === 5 && c === 'files' && d !== undefined && isSiteId(d)) {
      if (parts[4] === 'data') return { kind: 'fileData', from: b, to: d };
      if (parts[4] === 'status') return { kind: 'fileStatus', from: b, to: d };
    }
    return undefined;
  }
  if (a === 'controller' && parts.length === 2 && b === 'state') return { kind: 'controllerState' };
  if (a === 'controller' && parts.length === 2 && b === 'req') return { kind: 'controllerRequest' };
  if (a === 'client' && parts.length === 3 && b !== undefined && c === 'res') return { kind: 'responses', clientId: b };
  return undefined;
}

// ---------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------

/**
 * Carried by every message. `id` is unique (receivers deduplicate by it); `stream`
 * names the channel (an `up` stream, or `state`, `ack`, `config`, `cmd`, `res`);
 * `seq` orders the messages of one sender's stream (outbox streams: persistent and
 * contiguous per site and stream; other channels: per boot); `boot` identifies the
 * sender's process run; `ts` is the sender's clock in ms since the epoch.
 */
export interface Header {
  v: typeof PROTOCOL_VERSION;
  id: string;
  stream: string;
  seq: number;
  boot: string;
  ts: number;
}

/** An `up/{stream}` message: one outbox row. */
export interface UpMessage<T = unknown> extends Header {
  stream: StreamName;
  site: string;
  /** What the data is, e.g. `registration.added`, `telemetry`, `call.record`. */
  type: string;
  data: T;
}

export type SiteStateName = 'online' | 'survivable' | 'offline';
export type HealthMode = 'normal' | 'survivable';

/** Retained on `site/{site}/state`. The Last Will is the same shape with `offline`. */
export interface SiteState extends Header {
  stream: 'state';
  site: string;
  state: SiteStateName;
  /** The agent's software version. */
  agent: string;
  /** The configuration version the site has applied (0: none). */
  config_version: number;
  /** ms since the epoch when this state began. */
  since: number;
}

export interface ControllerState extends Header {
  stream: 'state';
  controller: string;
  state: 'online' | 'offline';
  since: number;
}

/** Controller → site on `site/{site}/ack`: these ids are committed; delete them. */
export interface Ack extends Header {
  stream: 'ack';
  site: string;
  ids: string[];
}

/** Retained on `site/{site}/config/desired`. Applied only if newer than the applied one. */
export interface DesiredConfig extends Header {
  stream: 'config';
  site: string;
  version: number;
  config: Record<string, unknown>;
}

/** Retained on `site/{site}/config/reported`. */
export interface ReportedConfig extends Header {
  stream: 'config';
  site: string;
  /** The version in force at the site. */
  version: number;
  /** What happened to the last desired config the site saw. */
  status: 'applied' | 'ignored' | 'rejected';
  /** The desired version that status refers to. */
  desired_version: number;
  error?: ErrorBody;
}

export interface ErrorBody {
  code: string;
  message: string;
}

/** A command to a site or a request to the controller. Idempotent by `id`. */
export interface Request<A = unknown> extends Header {
  stream: 'cmd';
  name: string;
  args: A;
  response_topic: string;
  correlation: string;
}

/** The answer, published (not retained) on the request's response topic. */
export interface Response<D = unknown> extends Header {
  stream: 'res';
  request_id: string;
  correlation: string;
  status: 'ok' | 'error';
  data?: D;
  error?: ErrorBody;
}

// ---- What up streams carry -----------------------------------------------------

/** `up/telemetry`, type `telemetry`: one sample of the machine (agent/health/telemetry.ts) and of the agent. */
export interface TelemetryData {
  mode: HealthMode;
  uptime_s: number;
  system: {
    cpu: { load_pct: number | null; cores: number | null };
    memory: { total: number; used: number; available: number } | null;
    disks: Array<{ mount: string; fs: string; size: number; used: number; use_pct: number }>;
    /** °C; null where the machine exposes no sensor. */
    temperatures: { main: number | null; max: number | null; cores: number[] };
    interfaces: Array<{ name: string; ip4: string; ip6: string; mac: string; state: string; speed_mbps: number | null; rx_bytes: number | null; tx_bytes: number | null }>;
  };
  agent: {
    registrations: number;
    active_calls: number;
    channels: { total: number; in_use: number };
    outbox: Record<string, { count: number; bytes: number }>;
    wan: { link: 'up' | 'down'; controller: 'online' | 'offline' | 'unknown'; probes: 'ok' | 'failed' | 'unknown' };
  };
}

/**
 * `type` of each `up` message and its `data`. `events` carries the agent's bus
 * events under their bus names (agent/events/bus.ts types their data). Call
 * records (`records`, type `call.record`) and voicemail arrive with their features.
 */
export interface UpTypes {
  telemetry: { stream: 'telemetry'; data: TelemetryData };
  /** One finished call (agent/store/call-records.ts); the message id is the call's id. */
  'call.record': { stream: 'records'; data: CallRecord };
  'registration.added': { stream: 'events'; data: { extension: string; contact: string; expiresAt: number; source: string; userAgent?: string } };
  'registration.removed': { stream: 'events'; data: { extension: string; contact: string; reason: 'unregistered' | 'expired' | 'replaced' } };
  'security.lockout': { stream: 'events'; data: { source: string; failures: number; until: number; extension?: string } };
  'security.scanner': { stream: 'events'; data: { source: string; userAgent: string } };
}

// ---- Peers directory (agent/sync/peers.ts) -------------------------------------

/** An extension a site is home for; `did` is its number on the PSTN, for the fallback. */
export interface DirectoryExtension {
  number: string;
  name?: string;
  did?: string;
}

/** A PSTN number a site is home for, and the extension it rings there. */
export interface DirectoryDid {
  number: string;
  extension?: string;
}

/**
 * Retained on `site/{site}/directory`. `version` grows with every change of the
 * content; a receiver keeps the highest it has seen. An empty retained payload
 * removes the site from every peer's directory.
 */
export interface PeerDirectory extends Header {
  stream: 'directory';
  site: string;
  version: number;
  /** Where peers send inter-site calls: `host:port`, with the SIP domain and transport. */
  sip: { address: string; domain: string; transport: 'udp' | 'tcp' };
  extensions: DirectoryExtension[];
  dids: DirectoryDid[];
}

// ---- File transfer between sites (agent/sync/files/) --------------------------

/** Common to every file-transfer message: which transfer, from which site to which. */
interface FileHeader extends Header {
  stream: 'files';
  /** The transfer's id: the id the file is indexed by at the receiver (a voicemail message id). */
  transfer: string;
  from: string;
  to: string;
}

/** Sender → receiver on `site/{from}/files/{to}/data`: what is coming. Sent again to resume. */
export interface FileManifest extends FileHeader {
  kind: 'manifest';
  /** What the file is, e.g. `voicemail`; the receiver's hook decides what to do with it. */
  type: string;
  meta: Record<string, unknown>;
  size: number;
  /** Hex SHA-256 of the whole file. */
  sha256: string;
  chunk_size: number;
  /** Hex SHA-256 of each chunk, in order; its length is the number of chunks. */
  chunks: string[];
}

/** Sender → receiver on `site/{from}/files/{to}/data`: one chunk, base64. */
export interface FileChunk extends FileHeader {
  kind: 'chunk';
  index: number;
  data: string;
}

/**
 * Receiver → sender on `site/{to}/files/{from}/status`. `have`: chunks received
 * in order and written; the sender resumes from there. `complete`: the file was
 * verified, stored and indexed (once). `rejected`: it never will be (error says why).
 */
export interface FileStatus extends FileHeader {
  kind: 'status';
  state: 'receiving' | 'complete' | 'rejected';
  have: number;
  error?: ErrorBody;
}

export type RemoteFileState = 'heard' | 'unheard' | 'deleted';

/**
 * Home site → origin site on `site/{home}/files/{origin}/status`: the file the origin
 * forwarded changed state at home (a voicemail was heard or deleted). Sent until
 * acknowledged; `change` identifies this change for the ack.
 */
export interface FileStateChange extends FileHeader {
  kind: 'state';
  change: string;
  state: RemoteFileState;
  at: number;
}

/** Origin → home on `site/{origin}/files/{home}/data`: the state change was applied. */
export interface FileStateAck extends FileHeader {
  kind: 'state_ack';
  change: string;
}

/** What travels on a `files/{to}/data` topic. */
export type FileDataMessage = FileManifest | FileChunk | FileStateAck;
/** What travels on a `files/{to}/status` topic. */
export type FileStatusMessage = FileStatus | FileStateChange;

// ---- What requests carry -------------------------------------------------------

/** `branchctl sites`: one row per site the controller knows. */
export interface SiteSummary {
  site: string;
  state: SiteStateName;
  /** The configuration version the site reported as applied. */
  config_version: number;
  /** The latest version the controller published for the site (0: none). */
  desired_version: number;
  /** Call records (stream `records`) the controller has committed from the site. */
  records: number;
  agent: string | null;
  boot: string | null;
  /** ms since the epoch. */
  last_seen: number | null;
  state_since: number | null;
}

/** `branchctl records`: one committed `records` message. */
export interface RecordRow {
  id: string;
  site: string;
  seq: number;
  boot: string;
  ts: number;
  type: string;
  data: unknown;
  received_at: number;
}

/** Requests the controller answers on `controller/req`. */
export interface ControllerRequests {
  'sites.list': { args: Record<string, never>; data: SiteSummary[] };
  'records.list': { args: { site: string; limit?: number; after_seq?: number }; data: RecordRow[] };
  'config.push': {
    args: { site: string; config: Record<string, unknown>; base_version?: number };
    data: { site: string; version: number };
  };
  'site.command': { args: { site: string; name: string; args?: unknown; timeout_ms?: number }; data: unknown };
}
export type ControllerRequestName = keyof ControllerRequests;

/** Commands every site answers on `site/{site}/cmd`. */
export interface SiteCommands {
  ping: { args: Record<string, never>; data: { site: string; boot: string; uptime_s: number } };
  status: {
    args: Record<string, never>;
    data: {
      site: string;
      boot: string;
      state: SiteStateName;
      mode: HealthMode;
      config_version: number;
      outbox: Record<string, { count: number; bytes: number }>;
    };
  };
  'telemetry.now': { args: Record<string, never>; data: { queued: boolean } };
  /** Which site is home for a number, from the site's cached peers directory. */
  'peers.lookup': { args: { number: string }; data: PeerHome | null };
  /** Every site in the cached directory with its version and presence. */
  'peers.list': { args: Record<string, never>; data: PeerSummary[] };
  /** Files this site is forwarding and receiving. */
  'files.list': { args: Record<string, never>; data: { outgoing: OutgoingFileSummary[]; incoming: IncomingFileSummary[] } };
}
export type SiteCommandName = keyof SiteCommands;

export type PeerPresence = SiteStateName | 'unknown';

/** The answer of `homeOf(number)`: where to send a call for it. */
export interface PeerHome {
  siteId: string;
  /** `host:port` of the site's agent for inter-site SIP. */
  sipAddress: string;
  domain: string;
  transport: 'udp' | 'tcp';
  /** The site's last known presence; `reachable` = our link is up and it is `online` or `survivable`. */
  presence: PeerPresence;
  reachable: boolean;
  /** The number is an extension (with its DID if the site published one) or a DID (with the extension it rings). */
  kind: 'extension' | 'did';
  extension?: string;
  did?: string;
}

export interface PeerSummary {
  site: string;
  version: number;
  sip_address: string;
  extensions: number;
  dids: number;
  presence: PeerPresence;
  presence_since: number | null;
  received_at: number;
}

export interface OutgoingFileSummary {
  transfer: string;
  to: string;
  type: string;
  size: number;
  state: 'queued' | 'sending' | 'delivered' | 'failed';
  acked_chunks: number;
  chunks: number;
  error: string | null;
}

export interface IncomingFileSummary {
  transfer: string;
  from: string;
  type: string;
  size: number;
  state: 'receiving' | 'indexed' | 'rejected';
  have: number;
  chunks: number;
}

// ---------------------------------------------------------------------------------
// Parsing: payloads are checked at the edge; a bad message never reaches a handler.
// ---------------------------------------------------------------------------------

export class ProtocolError extends Error {
  readonly code: 'EBADJSON' | 'EBADMESSAGE';
  constructor(code: 'EBADJSON' | 'EBADMESSAGE', message: string) {
    super(message);
    this.code = code;
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decode(payload: Buffer | string): Obj {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('EBADJSON', `payload is not JSON: ${(err as Error).message}`);
  }
  if (!isObj(parsed)) throw new ProtocolError('EBADMESSAGE', 'payload is not a JSON object');
  return parsed;
}

function need(o: Obj, key: string, type: 'string' | 'number' | 'object', what: string): void {
  const v = o[key];
  const ok = type === 'object' ? isObj(v) : typeof v === type && (type !== 'number' || Number.isFinite(v));
  if (!ok) throw new ProtocolError('EBADMESSAGE', `${what}: "${key}" must be a ${type}`);
}

function header(o: Obj, what: string): void {
  if (o['v'] !== PROTOCOL_VERSION) throw new ProtocolError('EBADMESSAGE', `${what}: unsupported protocol version ${JSON.stringify(o['v'])}`);
  need(o, 'id', 'string', what);
  need(o, 'stream', 'string', what);
  need(o, 'seq', 'number', what);
  need(o, 'boot', 'string', what);
  need(o, 'ts', 'number', what);
}

export function parseUp(payload: Buffer | string): UpMessage {
  const o = decode(payload);
  header(o, 'up message');
  if (!isStreamName(String(o['stream']))) throw new ProtocolError('EBADMESSAGE', `up message: unknown stream ${JSON.stringify(o['stream'])}`);
  need(o, 'site', 'string', 'up message');
  need(o, 'type', 'string', 'up message');
  if (!('data' in o)) throw new ProtocolError('EBADMESSAGE', 'up message: "data" is missing');
  return o as unknown as UpMessage;
}

export function parseSiteState(payload: Buffer | string): SiteState {
  const o = decode(payload);
  header(o, 'site state');
  need(o, 'site', 'string', 'site state');
  if (!['online', 'survivable', 'offline'].includes(String(o['state']))) throw new ProtocolError('EBADMESSAGE', 'site state: bad "state"');
  need(o, 'config_version', 'number', 'site state');
  return o as unknown as SiteState;
}

export function parseControllerState(payload: Buffer | string): ControllerState {
  const o = decode(payload);
  header(o, 'controller state');
  need(o, 'controller', 'string', 'controller state');
  if (o['state'] !== 'online' && o['state'] !== 'offline') throw new ProtocolError('EBADMESSAGE', 'controller state: bad "state"');
  return o as unknown as ControllerState;
}

export function parseAck(payload: Buffer | string): Ack {
  const o = decode(payload);
  header(o, 'ack');
  const ids = o['ids'];
  if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string')) throw new ProtocolError('EBADMESSAGE', 'ack: "ids" must be a list of strings');
  return o as unknown as Ack;
}

export function parseDesiredConfig(payload: Buffer | string): DesiredConfig {
  const o = decode(payload);
  header(o, 'desired config');
  need(o, 'site', 'string', 'desired config');
  need(o, 'version', 'number', 'desired config');
  need(o, 'config', 'object', 'desired config');
  if (!Number.isInteger(o['version']) || (o['version'] as number) < 1) throw new ProtocolError('EBADMESSAGE', 'desired config: "version" must be an integer ≥ 1');
  return o as unknown as DesiredConfig;
}

export function parseReportedConfig(payload: Buffer | string): ReportedConfig {
  const o = decode(payload);
  header(o, 'reported config');
  need(o, 'site', 'string', 'reported config');
  need(o, 'version', 'number', 'reported config');
  need(o, 'desired_version', 'number', 'reported config');
  if (!['applied', 'ignored', 'rejected'].includes(String(o['status']))) throw new ProtocolError('EBADMESSAGE', 'reported config: bad "status"');
  return o as unknown as ReportedConfig;
}

/**
 * A request. On MQTT 5 the Response Topic and Correlation Data properties win over
 * the payload's fields (a generic MQTT 5 client may set only those).
 */
export function parseRequest(payload: Buffer | string, props?: { responseTopic?: string; correlationData?: Buffer }): Request {
  const o = decode(payload);
  header(o, 'request');
  need(o, 'name', 'string', 'request');
  if (props?.responseTopic) o['response_topic'] = props.responseTopic;
  if (props?.correlationData) o['correlation'] = props.correlationData.toString('utf8');
  need(o, 'response_topic', 'string', 'request');
  if (typeof o['correlation'] !== 'string') o['correlation'] = String(o['id']);
  if (!('args' in o) || o['args'] === null) o['args'] = {};
  return o as unknown as Request;
}

const HEX64 = /^[0-9a-f]{64}$/;
const NUMBER_RE = /^\+?[0-9*#]{1,32}$/;

export function parseDirectory(payload: Buffer | string): PeerDirectory {
  const o = decode(payload);
  header(o, 'directory');
  need(o, 'site', 'string', 'directory');
  need(o, 'version', 'number', 'directory');
  need(o, 'sip', 'object', 'directory');
  if (!Number.isInteger(o['version']) || (o['version'] as number) < 1) throw new ProtocolError('EBADMESSAGE', 'directory: "version" must be an integer ≥ 1');
  const sip = o['sip'] as Obj;
  need(sip, 'address', 'string', 'directory sip');
  need(sip, 'domain', 'string', 'directory sip');
  if (sip['transport'] !== 'udp' && sip['transport'] !== 'tcp') throw new ProtocolError('EBADMESSAGE', 'directory sip: "transport" must be udp or tcp');
  for (const key of ['extensions', 'dids'] as const) {
    const list = o[key];
    if (!Array.isArray(list)) throw new ProtocolError('EBADMESSAGE', `directory: "${key}" must be a list`);
    for (const e of list) {
      if (!isObj(e) || typeof e['number'] !== 'string' || !NUMBER_RE.test(e['number'])) throw new ProtocolError('EBADMESSAGE', `directory: an entry of "${key}" has no valid "number"`);
    }
  }
  return o as unknown as PeerDirectory;
}

function fileHeader(o: Obj, what: string): void {
  header(o, what);
  need(o, 'transfer', 'string', what);
  need(o, 'from', 'string', what);
  need(o, 'to', 'string', what);
  if (o['stream'] !== 'files') throw new ProtocolError('EBADMESSAGE', `${what}: "stream" must be "files"`);
}

export function parseFileData(payload: Buffer | string): FileDataMessage {
  const o = decode(payload);
  fileHeader(o, 'file data');
  switch (o['kind']) {
    case 'manifest': {
      need(o, 'type', 'string', 'file manifest');
      need(o, 'meta', 'object', 'file manifest');
      need(o, 'size', 'number', 'file manifest');
      need(o, 'chunk_size', 'number', 'file manifest');
      const chunks = o['chunks'];
      if (typeof o['sha256'] !== 'string' || !HEX64.test(o['sha256'])) throw new ProtocolError('EBADMESSAGE', 'file manifest: "sha256" must be 64 hex digits');
      if (!Array.isArray(chunks) || !chunks.every((c) => typeof c === 'string' && HEX64.test(c))) throw new ProtocolError('EBADMESSAGE', 'file manifest: "chunks" must be a list of SHA-256 hex digests');
      const size = o['size'] as number;
      const chunkSize = o['chunk_size'] as number;
      if (!Number.isInteger(size) || size < 0 || !Number.isInteger(chunkSize) || chunkSize < 1) throw new ProtocolError('EBADMESSAGE', 'file manifest: "size" and "chunk_size" must be whole numbers');
      if (chunks.length !== Math.ceil(size / chunkSize)) throw new ProtocolError('EBADMESSAGE', `file manifest: ${chunks.length} chunk digests for ${size} bytes in chunks of ${chunkSize}`);
      return o as unknown as FileManifest;
    }
    case 'chunk':
      need(o, 'index', 'number', 'file chunk');
      need(o, 'data', 'string', 'file chunk');
      if (!Number.isInteger(o['index']) || (o['index'] as number) < 0) throw new ProtocolError('EBADMESSAGE', 'file chunk: "index" must be a whole number');
      return o as unknown as FileChunk;
    case 'state_ack':
      need(o, 'change', 'string', 'file state ack');
      return o as unknown as FileStateAck;
    default:
      throw new ProtocolError('EBADMESSAGE', `file data: unknown kind ${JSON.stringify(o['kind'])}`);
  }
}

export function parseFileStatus(payload: Buffer | string): FileStatusMessage {
  const o = decode(payload);
  fileHeader(o, 'file status');
  switch (o['kind']) {
    case 'status':
      if (!['receiving', 'complete', 'rejected'].includes(String(o['state']))) throw new ProtocolError('EBADMESSAGE', 'file status: bad "state"');
      need(o, 'have', 'number', 'file status');
      return o as unknown as FileStatus;
    case 'state':
      need(o, 'change', 'string', 'file state');
      need(o, 'at', 'number', 'file state');
      if (!['heard', 'unheard', 'deleted'].includes(String(o['state']))) throw new ProtocolError('EBADMESSAGE', 'file state: bad "state"');
      return o as unknown as FileStateChange;
    default:
      throw new ProtocolError('EBADMESSAGE', `file status: unknown kind ${JSON.stringify(o['kind'])}`);
  }
}

export function parseResponse(payload: Buffer | string): Response {
  const o = decode(payload);
  header(o, 'response');
  need(o, 'request_id', 'string', 'response');
  need(o, 'correlation', 'string', 'response');
  if (o['status'] !== 'ok' && o['status'] !== 'error') throw new ProtocolError('EBADMESSAGE', 'response: bad "status"');
  return o as unknown as Response;
}

// ---------------------------------------------------------------------------------
// Building: one sender's header counters.
// ---------------------------------------------------------------------------------

/**
 * Stamps headers for one sender (a site or controller process run): a fresh id, the
 * boot id, a per-channel sequence and the time. Outbox messages get their
 * persistent `seq` from the outbox instead.
 */
export class HeaderFactory {
  readonly boot: string;
  readonly #seq = new Map<string, number>();
  readonly #newId: () => string;

  constructor(boot: string, newId: () => string = () => crypto.randomUUID()) {
    this.boot = boot;
    this.#newId = newId;
  }

  next<S extends string>(stream: S): Header & { stream: S } {
    const seq = (this.#seq.get(stream) ?? 0) + 1;
    this.#seq.set(stream, seq);
    return { v: PROTOCOL_VERSION, id: this.#newId(), stream, seq, boot: this.boot, ts: Date.now() };
  }
}

export function encode(message: object): Buffer {
  return Buffer.from(JSON.stringify(message));
}
