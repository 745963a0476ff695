// The claim exchange between a new appliance and the controller: topics, payloads,
// signing and parsing in one file. docs/protocol.md (section "Claims") says the same
// for people. It reuses the site protocol's root, header and version.
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { PROTOCOL_VERSION, ProtocolError, ROOT, type Header } from '../../agent/sync/protocol.ts';
import type { Sealed } from './sealed.ts';

const SERIAL_RE = /^BL-[0-9A-F]{12}$/;
export function isSerial(s: string): boolean {
  return SERIAL_RE.test(s);
}

export const claimTopics = {
  /** Device → controller, not retained. The device's MQTT client id is its serial (the ACL relies on it). */
  request: (serial: string) => `${ROOT}/claim/${serial}/req`,
  /** Controller → device, not retained. */
  response: (serial: string) => `${ROOT}/claim/${serial}/res`,
  allRequests: `${ROOT}/claim/+/req`,
} as const;

/** The serial of a claim request topic; undefined for any other topic. */
export function claimRequestSerial(topic: string): string | undefined {
  const m = /^branchline\/v1\/claim\/([^/]+)\/req$/.exec(topic);
  return m?.[1] !== undefined && isSerial(m[1]) ? m[1] : undefined;
}

export interface ClaimRequest extends Header {
  stream: 'claim';
  serial: string;
  /** The one-time claim token the installer's controller issued (`branchctl claim token`). */
  token: string;
  /** ed25519 public key, PEM: the serial is derived from it. */
  sign_key: string;
  /** X25519 public key, PEM: the grant is sealed to it. */
  box_key: string;
  agent: string;
  hardware: { arch: string; hostname: string; macs: string[] };
  /** ed25519 signature (base64) over claimSigningBytes(): proves the key is held. */
  signature: string;
}

export type ClaimStatus = 'pending' | 'approved' | 'rejected';

export interface ClaimResponse extends Header {
  stream: 'claim';
  serial: string;
  request_id: string;
  status: ClaimStatus;
  /** Why a claim is pending or was rejected, for the device's log. */
  reason?: string;
  /** Approved only: a ClaimGrant, sealed to the device's box key. */
  grant?: Sealed;
}

/** What an approved device receives (inside `grant`). */
export interface ClaimGrant {
  site: string;
  /** Agent configuration the controller chose for the site (merged over the local file). */
  config: Record<string, unknown>;
  mqtt: { url?: string; username: string; password: string; client_id: string };
  /** The desired config version `config` corresponds to (0: none pushed yet). */
  config_version: number;
}

/** The bytes a claim signature covers: everything that must not be replayed or swapped. */
export function claimSigningBytes(r: Pick<ClaimRequest, 'v' | 'id' | 'ts' | 'serial' | 'token' | 'sign_key' | 'box_key'>): Buffer {
  return Buffer.from(JSON.stringify(['branchline-claim', r.v, r.id, r.ts, r.serial, r.token, r.sign_key, r.box_key]));
}

export function signClaim(r: Omit<ClaimRequest, 'signature'>, signPrivatePem: string): ClaimRequest {
  const signature = sign(null, claimSigningBytes(r), createPrivateKey(signPrivatePem)).toString('base64');
  return { ...r, signature };
}

/** True when the signature is good and made by `sign_key`. */
export function claimSignatureValid(r: ClaimRequest): boolean {
  try {
    return verify(null, claimSigningBytes(r), createPublicKey(r.sign_key), Buffer.from(r.signature, 'base64'));
  } catch {
    return false;
  }
}

type Obj = Record<string, unknown>;

function decode(payload: Buffer): Obj {
  let o: unknown;
  try {
    o = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('EBADJSON', `payload is not JSON: ${(err as Error).message}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ProtocolError('EBADMESSAGE', 'payload is not a JSON object');
  const obj = o as Obj;
  if (obj['v'] !== PROTOCOL_VERSION) throw new ProtocolError('EBADMESSAGE', `unsupported protocol version ${JSON.stringify(obj['v'])}`);
  return obj;
}

function strings(o: Obj, what: string, keys: readonly string[]): void {
  for (const k of keys) if (typeof o[k] !== 'string') throw new ProtocolError('EBADMESSAGE', `${what}: "${k}" must be a string`);
}

export function parseClaimRequest(payload: Buffer): ClaimRequest {
  const o = decode(payload);
  strings(o, 'claim request', ['id', 'boot', 'serial', 'token', 'sign_key', 'box_key', 'agent', 'signature']);
  if (typeof o['ts'] !== 'number' || typeof o['seq'] !== 'number') throw new ProtocolError('EBADMESSAGE', 'claim request: "ts" and "seq" must be numbers');
  const hw = o['hardware'] as Obj | undefined;
  if (typeof hw !== 'object' || hw === null || typeof hw['arch'] !== 'string' || typeof hw['hostname'] !== 'string' || !Array.isArray(hw['macs'])) {
    throw new ProtocolError('EBADMESSAGE', 'claim request: "hardware" must hold arch, hostname and macs');
  }
  if (!isSerial(String(o['serial']))) throw new ProtocolError('EBADMESSAGE', 'claim request: "serial" is not a Branchline serial');
  return o as unknown as ClaimRequest;
}

export function parseClaimResponse(payload: Buffer): ClaimResponse {
  const o = decode(payload);
  strings(o, 'claim response', ['id', 'serial', 'request_id']);
  if (!['pending', 'approved', 'rejected'].includes(String(o['status']))) throw new ProtocolError('EBADMESSAGE', 'claim response: bad "status"');
  if (o['status'] === 'approved' && (typeof o['grant'] !== 'object' || o['grant'] === null)) throw new ProtocolError('EBADMESSAGE', 'claim response: approved without a grant');
  return o as unknown as ClaimResponse;
}

export function parseClaimGrant(text: string): ClaimGrant {
  const o = JSON.parse(text) as Obj;
  const mqtt = o['mqtt'] as Obj | undefined;
  if (typeof o['site'] !== 'string' || typeof o['config'] !== 'object' || o['config'] === null || typeof mqtt !== 'object' || mqtt === null) {
    throw new ProtocolError('EBADMESSAGE', 'claim grant: site, config and mqtt are required');
  }
  strings(mqtt, 'claim grant mqtt', ['username', 'password', 'client_id']);
  return { site: o['site'], config: o['config'] as Record<string, unknown>, mqtt: mqtt as unknown as ClaimGrant['mqtt'], config_version: typeof o['config_version'] === 'number' ? o['config_version'] : 0 };
}
