// The appliance's half of zero-touch provisioning: connects to the controller's broker
// with its serial as client id, sends a signed claim carrying its one-time token, and
// sends it again every `retryMs` until an operator decides. An approval carries the
// grant sealed to this box's key; a rejection ends the claim with the reason.
import os from 'node:os';
import type { Logger } from 'pino';
import { MqttLink, type TlsFiles } from '../../agent/sync/link.ts';
import { encode, HeaderFactory } from '../../agent/sync/protocol.ts';
import type { DeviceIdentity } from '../identity.ts';
import { claimTopics, parseClaimGrant, parseClaimResponse, signClaim, type ClaimGrant, type ClaimRequest } from './protocol.ts';
import { open } from './sealed.ts';

export interface ClaimOptions {
  identity: DeviceIdentity;
  url: string;
  token: string;
  username?: string;
  password?: string;
  tls?: TlsFiles;
  protocolVersion?: 4 | 5;
  agentVersion: string;
  /** How often the claim is sent again while pending (and while the broker is away). */
  retryMs: number;
  /** Give up after this long (0: wait for ever, as the first-boot service does). */
  timeoutMs: number;
  logger: Logger;
}

export class ClaimFailure extends Error {
  readonly code: 'ECLAIM_REJECTED' | 'ECLAIM_TIMEOUT';
  constructor(code: 'ECLAIM_REJECTED' | 'ECLAIM_TIMEOUT', message: string) {
    super(message);
    this.code = code;
  }
}

function macAddresses(): string[] {
  const macs = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.mac !== '00:00:00:00:00:00') macs.add(a.mac);
  }
  return [...macs].sort();
}

/** Claims the appliance; resolves with the grant once an operator approved it. */
export function claimAppliance(o: ClaimOptions): Promise<ClaimGrant> {
  const { identity, logger } = o;
  const headers = new HeaderFactory(crypto.randomUUID());
  const link = new MqttLink({
    url: o.url,
    clientId: identity.serial,
    protocolVersion: o.protocolVersion ?? 5,
    keepalive: 30,
    reconnectPeriodMs: Math.min(o.retryMs, 5000),
    connectTimeoutMs: 10_000,
    ...(o.username !== undefined ? { username: o.username } : {}),
    ...(o.password !== undefined ? { password: o.password } : {}),
    ...(o.tls ? { tls: o.tls } : {}),
    logger,
  });
  const request = (): ClaimRequest =>
    signClaim(
      {
        ...headers.next('claim'),
        serial: identity.serial,
        token: o.token,
        sign_key: identity.sign_public,
        box_key: identity.box_public,
        agent: o.agentVersion,
        hardware: { arch: process.arch, hostname: os.hostname(), macs: macAddresses() },
      },
      identity.sign_private,
    );

  return new Promise<ClaimGrant>((resolve, reject) => {
    let settled = false;
    let lastStatus = '';
    const send = (): void => {
      if (!link.connected) return;
      link.publish(claimTopics.request(identity.serial), encode(request())).catch((err: unknown) =>
        logger.debug({ event: 'provision.claim_send_failed', err: (err as Error).message }, 'claim not sent; retrying'),
      );
    };
    const finish = (err: Error | undefined, grant?: ClaimGrant): void => {
      if (settled) return;
      settled = true;
      clearInterval(retry);
      if (deadline) clearTimeout(deadline);
      void link.stop({ graceful: true }).then(() => (err ? reject(err) : resolve(grant as ClaimGrant)));
    };
    const retry = setInterval(send, o.retryMs);
    const deadline =
      o.timeoutMs > 0 ? setTimeout(() => finish(new ClaimFailure('ECLAIM_TIMEOUT', `no decision on the claim of ${identity.serial} within ${Math.round(o.timeoutMs / 1000)} s (last: ${lastStatus || 'no answer'})`)), o.timeoutMs) : undefined;

    link.onMessage((topic, payload) => {
      if (topic !== claimTopics.response(identity.serial)) return;
      try {
        const res = parseClaimResponse(payload);
        if (res.serial !== identity.serial) return;
        if (res.status !== lastStatus) logger.info({ event: 'provision.claim_status', serial: identity.serial, status: res.status, reason: res.reason }, `claim ${res.status}${res.reason ? `: ${res.reason}` : ''}`);
        lastStatus = res.status;
        if (res.status === 'rejected') finish(new ClaimFailure('ECLAIM_REJECTED', `the controller rejected the claim of ${identity.serial}: ${res.reason ?? 'no reason given'}`));
        else if (res.status === 'approved' && res.grant) finish(undefined, parseClaimGrant(open(identity.box_private, res.grant)));
      } catch (err) {
        logger.warn({ event: 'provision.bad_response', err: (err as Error).message }, 'ignored a claim response that could not be read');
      }
    });
    link.onUp(send);
    void link.subscribe([claimTopics.response(identity.serial)]);
    link.start();
  });
}
