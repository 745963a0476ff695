// The typed config the agent is given after load.ts validated the file and filled
// defaults from schema.ts. Keys keep the file's snake_case so that an error message,
// the docs and the code all name the same key.

import type { LineCardConfig } from '../../drivers/types.ts';

export type { LineCardConfig };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export type AuthAlgorithm = 'SHA-256' | 'MD5';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface ExtensionConfig {
  number: string;
  name?: string;
  password: string;
  /** Overrides sip.auth.algorithms for this extension's phone. */
  auth_algorithms?: AuthAlgorithm[];
  /** Present: the extension has a mailbox (agent/voicemail). */
  voicemail?: MailboxConfig;
  /** Overrides media.policy for calls to and from this phone. */
  media_policy?: MediaPolicyName;
  /** agent/calls/routing (docs/dialplan.md). Seconds; default dialplan.ring_timeout. */
  ring_timeout?: number;
  /** Filled with false by the schema; optional so hand-built configs need not say it. */
  dnd?: boolean;
  /** Filled with true by the schema. */
  call_waiting?: boolean;
  forward?: ForwardConfig;
}

/** Call forwarding targets (numbers) per reason; no_answer_timeout in seconds. */
export interface ForwardConfig {
  always?: string;
  busy?: string;
  no_answer?: string;
  unavailable?: string;
  no_answer_timeout?: number;
}

export type FeatureCodeName =
  | 'dnd_on'
  | 'dnd_off'
  | 'forward_always_on'
  | 'forward_always_off'
  | 'forward_busy_on'
  | 'forward_busy_off'
  | 'forward_no_answer_on'
  | 'forward_no_answer_off'
  | 'voicemail_own'
  | 'voicemail_any'
  | 'echo_test';

/** agent/calls/routing: site-wide dial plan settings. */
export interface DialPlanConfig {
  /** Seconds. */
  ring_timeout: number;
  emergency_numbers: string[];
  /** Digit patterns (X, Z, N, [..], ., !) of numbers routed out through the trunks. */
  outbound_patterns: string[];
  max_forward_hops: number;
  feature_codes: Record<FeatureCodeName, string>;
}

export interface RingGroupConfig {
  number: string;
  name?: string;
  strategy: 'simultaneous' | 'sequential';
  /** Extension numbers, in ring order. */
  members: string[];
  /** Seconds; default dialplan.ring_timeout. */
  ring_timeout?: number;
  fallback?: string;
}

export type MediaPolicyName = 'direct' | 'anchored';

/** agent/media (docs/media.md); mapped onto the engine's MediaConfig in agent.ts. */
export interface MediaSettings {
  bind_address: string;
  advertise_address?: string;
  port_range: { min: number; max: number };
  codecs: Array<'PCMU' | 'PCMA'>;
  country: 'US' | 'UK' | 'DE' | 'FR';
  latching: boolean;
  /** Seconds; 0 = never. */
  media_timeout: number;
  policy: MediaPolicyName;
}

/** agent/calls (docs/calls.md). */
export interface CallSettings {
  max_concurrent: number;
  /** Seconds. */
  retry_after: number;
  /** Seconds (RFC 4028, agent/calls/features/session-timer.ts). */
  session_expires: number;
  /** Seconds, at least 90. */
  min_se: number;
}

/** An extension's mailbox (agent/voicemail, docs/voicemail.md). */
export interface MailboxConfig {
  pin: string;
  max_messages: number;
  max_message_seconds: number;
  min_message_seconds: number;
  silence_seconds: number;
}

/** agent/voicemail: site-wide settings. */
export interface VoicemailConfig {
  format: 'ulaw' | 'pcm16';
  /** Absolute path when given (resolved against the config file). */
  prompts_dir?: string;
  pin_attempts: number;
  /** failures before a mailbox locks; duration in seconds. */
  lockout: { failures: number; duration: number };
  /** Expiries in seconds. */
  mwi: { unsolicited: boolean; min_expires: number; max_expires: number };
}

export interface AgentConfig {
  site: { id: string; name?: string };
  /** Absolute path, resolved against the config file's folder. */
  state_dir: string;
  log: { level: LogLevel };
  sip: {
    domain: string;
    udp: ListenAddress;
    tcp: ListenAddress;
    max_message_bytes: number;
    tcp_max_connections: number;
    tcp_idle_timeout: number;
    /** RFC 3261 T1, T2, T4 in milliseconds. */
    timers: { t1: number; t2: number; t4: number };
    registrar: {
      min_expires: number;
      max_expires: number;
      default_expires: number;
      max_contacts: number;
      /** Load shedding: when to answer new REGISTERs 503 (agent/registrar/load-shedder.ts). */
      overload: { max_utilization: number; max_event_loop_lag_ms: number; max_pending_writes: number; retry_after: number };
    };
    auth: { algorithms: AuthAlgorithm[]; nonce_lifetime: number };
    security: {
      rate_limit: { requests_per_second: number; burst: number };
      lockout: { failures: number; window: number; duration: number };
      scanner_user_agents: string[];
      trusted_networks: string[];
    };
  };
  extensions: ExtensionConfig[];
  media: MediaSettings;
  calls: CallSettings;
  /** agent/sync: the MQTT link. Filled with defaults when the file has no `mqtt` key. */
  mqtt: MqttConfig;
  sync: SyncConfig;
  health: HealthConfig;
  /** agent/sync/peers.ts, agent/sync/files/ (docs/sync.md). */
  peers: PeersConfig;
  /** provisioning/: the zero-touch claim and phone auto-provisioning. */
  provisioning: ProvisioningConfig;
  /** Updates ordered by the controller (image/, firmware-hooks/). */
  firmware: FirmwareConfig;
  /** drivers/ (docs/drivers.md); empty when the file has none. */
  linecards: LineCardConfig[];
  voicemail: VoicemailConfig;
  dialplan: DialPlanConfig;
  ring_groups: RingGroupConfig[];
  /** agent/trunks (docs/trunks.md): numbering plan and channel-sharing settings. */
  trunking: TrunkingConfig;
  /** Empty: each line card is one trunk group named after it. */
  trunks: TrunkConfig[];
  /** Empty: every outside number may use every trunk group, in config order. */
  routes: OutboundRouteConfig[];
  dids: DidConfig[];
  tenants: TenantConfig[];
}

export interface MqttConfig {
  /** Absent: the agent runs its embedded broker (`embedded`) and connects to it. */
  url?: string;
  client_id?: string;
  username?: string;
  password?: string;
  /** PEM file paths for mqtts. */
  ca?: string;
  cert?: string;
  key?: string;
  reject_unauthorized: boolean;
  protocol_version: 4 | 5;
  keepalive: number;
  reconnect_period: number;
  connect_timeout: number;
  /** `listen` is host:port text (parse with parseListen). */
  embedded: { listen: string; drain_timeout: number };
}

export interface SyncConfig {
  window: number;
  ack_timeout: number;
  max_bytes: number;
}

export interface PeersConfig {
  /** host:port text; absent: sip.udp. */
  sip_address?: string;
  transport: 'udp' | 'tcp';
  /** For a number homed at an unreachable peer, in order (docs/sync.md#calls-between-sites). */
  fallback: Array<'pstn' | 'voicemail'>;
  /** Seconds an INVITE to a peer may stay unanswered before the peer counts as unreachable. */
  no_response_timeout: number;
  /** CIDRs inter-site INVITEs must come from; empty: any address a peer published. */
  trusted_networks: string[];
  files: { chunk_size: number; window: number; status_timeout: number; max_bytes: number };
}

export interface HealthConfig {
  telemetry_period: number;
  enter_after: number;
  return_after: number;
  probe_interval: number;
  probe_timeout: number;
  /** host:port texts; absent means the broker of mqtt.url. */
  probes?: string[];
}

export interface ClaimConfig {
  url: string;
  token: string;
  username?: string;
  password?: string;
  ca?: string;
  protocol_version: 4 | 5;
  /** Seconds. */
  retry: number;
}

export type PhoneVendor = 'yealink' | 'polycom' | 'grandstream';

export interface PhoneDevice {
  mac: string;
  vendor: PhoneVendor;
  extension: string;
  name?: string;
}

export interface PhonesConfig {
  /** host:port text (parse with parseListen). */
  http?: string;
  https?: { listen: string; cert: string; key: string };
  sip_server?: string;
  voicemail_number: string;
  ntp_server: string;
  time_zone: string;
  devices: PhoneDevice[];
}

export interface ProvisioningConfig {
  claim?: ClaimConfig;
  phones: PhonesConfig;
}

export interface FirmwareConfig {
  slots?: string;
  restart_after_update: boolean;
  /** Seconds. */
  call_deadline: number;
  download_timeout: number;
  report_interval: number;
}

// ---- agent/trunks (docs/trunks.md) ----

export interface TrunkingConfig {
  country_code?: string;
  area_code?: string;
  international_prefix: string;
  national_prefix: string;
  local_digits: number;
  /** Seconds. */
  max_queue_wait: number;
  retry_after: number;
  progress_timeout: number;
  usage_flush: number;
}

export interface TrunkConfig {
  name: string;
  linecard: string;
  spans?: number[];
  /** Channel list such as "1-15,17", applied to each span. */
  channels?: string;
  direction: 'inbound' | 'outbound' | 'both';
  caller_id: 'pass' | 'fixed' | 'tenant';
  caller_id_number?: string;
}

export interface OutboundRouteConfig {
  name?: string;
  pattern: string;
  trunks: string[];
  strip: number;
  prefix: string;
  e164: boolean;
  tenants?: string[];
}

/** Exactly one of extension, group, voicemail, app (checked at load). */
export interface DidConfig {
  number: string;
  extension?: string;
  group?: string;
  voicemail?: string;
  app?: string;
  tenant?: string;
}

export interface TenantConfig {
  name: string;
  extensions: string[];
  max_channels?: number;
  calls_per_minute?: number;
  burst: number;
  max_queued: number;
  caller_id?: string;
}
