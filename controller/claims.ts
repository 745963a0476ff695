// The controller's half of zero-touch provisioning: issues one-time claim tokens,
// checks every claim an appliance sends (signature, serial bound to its key, token),
// keeps it pending until an operator approves or rejects it, and then answers the
// device with its site, configuration and broker credentials sealed to its key. The
// broker's password file and ACL follow every decision.
import { exec } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { SyncError } from '../agent/sync/errors.ts';
import { encode, isSiteId, type HeaderFactory } from '../agent/sync/protocol.ts';
import { serialOf } from '../provisioning/identity.ts';
import {
  claimRequestSerial,
  claimSignatureValid,
  claimTopics,
  isSerial,
  parseClaimRequest,
  type ClaimGrant,
  type ClaimRequest,
  type ClaimResponse,
  type ClaimStatus,
} from '../provisioning/claim/protocol.ts';
import { seal } from '../provisioning/claim/sealed.ts';
import { mosquittoPasswordHash, writeBrokerFiles, type BrokerAuth } from './broker-auth.ts';
import { ClaimStore, tokenHash, type ClaimRow } from './claim-store.ts';

export interface ClaimServiceOptions {
  stateDir: string;
  headers: HeaderFactory;
  publish: (topic: string, payload: Buffer) => Promise<void>;
  /** The site's desired config at the controller, if one was pushed: the default claim config. */
  desired: (site: string) => Promise<{ version: number; config: Record<string, unknown> } | undefined>;
  /** Keep the broker's password file and ACL in this folder. */
  brokerFiles?: { dir: string; controllerUser: string; controllerPassword: string; reloadCommand?: string };
  /** The broker URL handed to claimed sites; absent: they keep the one they claimed through. */
  siteBrokerUrl?: string;
  logger: Logger;
}

/** One claim as `branchctl claim list` shows it. */
export interface ClaimSummary {
  serial: string;
  status: ClaimStatus;
  site: string;
  agent: string;
  hardware: { arch: string; hostname: string; macs: string[] };
  first_seen: number;
  last_seen: number;
  decided_at: number | null;
  reason: string | null;
}

export interface ClaimRequests {
  'claims.list': { args: Record<string, never>; data: ClaimSummary[] };
  'claims.token': { args: { site: string; ttl_hours?: number }; data: { token: string; site: string; expires_at: number } };
  'claims.approve': { args: { serial: string; site?: string; config?: Record<string, unknown>; replace?: boolean }; data: { serial: string; site: string; username: string } };
  'claims.reject': { args: { serial: string; reason?: string }; data: { serial: string; status: 'rejected' } };
}

/** A decision that cannot be made: no such claim, or the site is held by another box. */
export class ClaimError extends Error {
  readonly code: 'ENOCLAIM' | 'ECONFLICT';
  constructor(code: 'ENOCLAIM' | 'ECONFLICT', message: string) {
    super(message);
    this.code = code;
  }
}

const DEFAULT_TOKEN_TTL_HOURS = 24 * 7;

function summary(r: ClaimRow): ClaimSummary {
  return {
    serial: r.serial,
    status: r.status,
    site: r.site,
    agent: r.agent,
    hardware: JSON.parse(r.hardware) as ClaimSummary['hardware'],
    first_seen: r.first_seen,
    last_seen: r.last_seen,
    decided_at: r.decided_at,
    reason: r.reason,
  };
}

export class ClaimService {
  readonly #o: ClaimServiceOptions;
  #store: ClaimStore | undefined;
  /** Decisions and first claims one at a time: no two approvals race for a site. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(options: ClaimServiceOptions) {
    this.#o = options;
  }

  get store(): ClaimStore {
    if (!this.#store) throw new Error('claims not started');
    return this.#store;
  }

  async start(): Promise<void> {
    this.#store = await ClaimStore.open(this.#o.stateDir);
    await this.#writeBrokerFiles();
  }

  async stop(): Promise<void> {
    await this.#chain.catch(() => undefined);
    await this.#store?.close();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  /** Handles a message on a claim request topic; false if the topic is not one. */
  onMessage(topic: string, payload: Buffer): boolean {
    const serial = claimRequestSerial(topic);
    if (serial === undefined) return false;
    void this.#serial(() => this.#onClaim(serial, payload)).catch((err: unknown) =>
      this.#o.logger.warn({ event: 'controller.claim_failed', serial, err: (err as Error).message }, 'could not handle a claim'),
    );
    return true;
  }

  async #respond(req: Pick<ClaimRequest, 'id' | 'serial'>, status: ClaimStatus, extra: { reason?: string; grant?: string | null } = {}): Promise<void> {
    const res: ClaimResponse = { ...this.#o.headers.next('claim'), serial: req.serial, request_id: req.id, status };
    if (extra.reason) res.reason = extra.reason;
    if (extra.grant) res.grant = JSON.parse(extra.grant) as ClaimResponse['grant'];
    await this.#o.publish(claimTopics.response(req.serial), encode(res));
  }

  async #onClaim(topicSerial: string, payload: Buffer): Promise<void> {
    const log = this.#o.logger;
    const req = parseClaimRequest(payload);
    // Refusals that say nothing about any stored claim: the sender cannot prove the serial.
    if (req.serial !== topicSerial) throw new Error(`claim for ${req.serial} sent on the topic of ${topicSerial}`);
    if (serialOf(req.sign_key) !== req.serial || !claimSignatureValid(req)) {
      log.warn({ event: 'controller.claim_refused', serial: req.serial, reason: 'bad signature' }, 'claim refused: the signature or key does not match the serial');
      await this.#respond(req, 'rejected', { reason: 'the claim is not signed by the key of its serial' });
      return;
    }
    const store = this.store;
    const hash = tokenHash(req.token);
    const hardware = JSON.stringify(req.hardware);
    const existing = await store.claim(req.serial);
    if (existing) {
      if (existing.sign_key !== req.sign_key || existing.token_hash !== hash) {
        await this.#respond(req, 'rejected', { reason: 'this serial already claimed with another key or token' });
        return;
      }
      await store.seen(req.serial, req.agent, hardware);
      await this.#respond(req, existing.status, { ...(existing.reason ? { reason: existing.reason } : {}), grant: existing.grant_sealed });
      return;
    }
    const token = await store.token(hash);
    const refusal =
      !token ? 'unknown claim token' : token.expires_at < Date.now() ? 'the claim token has expired' : token.used_by !== null ? 'the claim token was already used by another appliance' : null;
    if (refusal || !token) {
      log.warn({ event: 'controller.claim_refused', serial: req.serial, reason: refusal }, `claim refused: ${refusal}`);
      await this.#respond(req, 'rejected', { reason: refusal ?? 'unknown claim token' });
      return;
    }
    const now = Date.now();
    await store.addClaim({ serial: req.serial, site: token.site, token_hash: hash, sign_key: req.sign_key, box_key: req.box_key, agent: req.agent, hardware, first_seen: now, last_seen: now });
    log.info({ event: 'controller.claim_pending', serial: req.serial, site: token.site, hostname: req.hardware.hostname }, `appliance ${req.serial} asks to be site ${token.site}`);
    await this.#respond(req, 'pending', { reason: 'waiting for an operator to approve the claim' });
  }

  // ---- operator requests (branchctl claim …) ---------------------------------------

  async handle(name: string, args: Record<string, unknown>): Promise<unknown> {
    const str = (key: string, required: boolean): string | undefined => {
      const v = args[key];
      if (v === undefined && !required) return undefined;
      if (typeof v !== 'string' || v === '') throw new SyncError('EBADARGS', `${name}: "${key}" must be a non-empty string`);
      return v;
    };
    switch (name as keyof ClaimRequests) {
      case 'claims.list':
        return (await this.store.claims()).map(summary);
      case 'claims.token': {
        const site = str('site', true) as string;
        const ttl = args['ttl_hours'] === undefined ? DEFAULT_TOKEN_TTL_HOURS : Number(args['ttl_hours']);
        if (!Number.isFinite(ttl) || ttl <= 0) throw new SyncError('EBADARGS', 'claims.token: "ttl_hours" must be a positive number');
        return this.issueToken(site, ttl);
      }
      case 'claims.approve': {
        const config = args['config'];
        if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) throw new SyncError('EBADARGS', 'claims.approve: "config" must be an object');
        const site = str('site', false);
        return this.approve(str('serial', true) as string, {
          ...(site !== undefined ? { site } : {}),
          ...(config !== undefined ? { config: config as Record<string, unknown> } : {}),
          replace: args['replace'] === true,
        });
      }
      case 'claims.reject':
        return this.reject(str('serial', true) as string, str('reason', false) ?? 'rejected by an operator');
      default:
        return undefined;
    }
  }

  static isRequest(name: string): boolean {
    return name === 'claims.list' || name === 'claims.token' || name === 'claims.approve' || name === 'claims.reject';
  }

  issueToken(site: string, ttlHours = DEFAULT_TOKEN_TTL_HOURS): Promise<{ token: string; site: string; expires_at: number }> {
    if (!isSiteId(site)) throw new SyncError('EBADARGS', `"${site}" is not a valid site id`);
    return this.#serial(async () => {
      const token = randomBytes(18).toString('base64url');
      const expiresAt = Date.now() + ttlHours * 3600_000;
      await this.store.addToken(tokenHash(token), site, expiresAt);
      this.#o.logger.info({ event: 'controller.claim_token', site, expiresAt }, `claim token issued for site ${site}`);
      return { token, site, expires_at: expiresAt };
    });
  }

  approve(serial: string, opts: { site?: string; config?: Record<string, unknown>; replace?: boolean } = {}): Promise<{ serial: string; site: string; username: string }> {
    if (!isSerial(serial)) throw new SyncError('EBADARGS', `"${serial}" is not a serial (BL-XXXXXXXXXXXX)`);
    return this.#serial(async () => {
      const store = this.store;
      const claim = await store.claim(serial);
      if (!claim) throw new ClaimError('ENOCLAIM', `no claim from ${serial}`);
      const site = opts.site ?? claim.site;
      if (!isSiteId(site)) throw new SyncError('EBADARGS', `"${site}" is not a valid site id`);
      if (claim.status === 'approved' && claim.site === site) return { serial, site, username: site };
      const holder = (await store.siteCredentials()).find((c) => c.site === site);
      if (holder && holder.serial !== serial && !opts.replace) {
        throw new ClaimError('ECONFLICT', `site ${site} is already held by appliance ${holder.serial}; approve with replace to swap the box`);
      }
      const desired = opts.config ? undefined : await this.#o.desired(site);
      const password = randomBytes(24).toString('base64url');
      const grant: ClaimGrant = {
        site,
        config: opts.config ?? desired?.config ?? {},
        config_version: desired?.version ?? 0,
        mqtt: { ...(this.#o.siteBrokerUrl ? { url: this.#o.siteBrokerUrl } : {}), username: site, password, client_id: `branchline-site-${site}` },
      };
      const sealed = JSON.stringify(seal(claim.box_key, JSON.stringify(grant)));
      await store.approve(serial, site, sealed, mosquittoPasswordHash(password));
      if (holder && holder.serial !== serial) await store.reject(holder.serial, `replaced by ${serial}`).catch(() => undefined);
      await this.#writeBrokerFiles();
      this.#o.logger.info({ event: 'controller.claim_approved', serial, site }, `appliance ${serial} approved as site ${site}`);
      await this.#respond({ id: '', serial }, 'approved', { grant: sealed }).catch(() => undefined);
      return { serial, site, username: site };
    });
  }

  reject(serial: string, reason: string): Promise<{ serial: string; status: 'rejected' }> {
    if (!isSerial(serial)) throw new SyncError('EBADARGS', `"${serial}" is not a serial (BL-XXXXXXXXXXXX)`);
    return this.#serial(async () => {
      const claim = await this.store.claim(serial);
      if (!claim) throw new ClaimError('ENOCLAIM', `no claim from ${serial}`);
      await this.store.reject(serial, reason);
      await this.#writeBrokerFiles();
      this.#o.logger.info({ event: 'controller.claim_rejected', serial, reason }, `appliance ${serial} rejected`);
      await this.#respond({ id: '', serial }, 'rejected', { reason }).catch(() => undefined);
      return { serial, status: 'rejected' as const };
    });
  }

  async #writeBrokerFiles(): Promise<void> {
    const files = this.#o.brokerFiles;
    if (!files) return;
    const auth: BrokerAuth = {
      controller: { username: files.controllerUser, passwordHash: mosquittoPasswordHash(files.controllerPassword) },
      sites: (await this.store.siteCredentials()).map((c) => ({ username: c.site, passwordHash: c.password_hash })),
    };
    writeBrokerFiles(files.dir, auth);
    if (files.reloadCommand) await runReload(files.reloadCommand, this.#o.logger);
  }
}

function runReload(command: string, logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    exec(command, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) logger.error({ event: 'controller.broker_reload_failed', command, stderr: stderr.trim(), err: err.message }, 'broker reload command failed');
      else logger.info({ event: 'controller.broker_reloaded', command }, 'broker password file and ACL rewritten and reloaded');
      resolve();
    });
  });
}
