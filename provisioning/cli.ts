// `branchline provision --config FILE [--timeout SECONDS]`: the first-boot step. Makes
// the device identity if there is none, claims the appliance from the controller with
// the configured token, waits for an operator's decision and stores the grant. Run
// again on a provisioned box it says so and exits 0, so it can run before every start.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from '../agent/config/load.ts';
import { createLogger } from '../agent/log/logger.ts';
import { claimAppliance, ClaimFailure } from './claim/client.ts';
import { loadOrCreateIdentity } from './identity.ts';
import { provisioningDir, readProvisioned, writeProvisioned } from './provisioned.ts';

export const provisionUsage = `  provision --config FILE [--timeout SECONDS]
                                 first boot: claim this appliance from the controller
`;

export const PROVISION_EXIT = { ok: 0, rejected: 1, usage: 2, timeout: 75, config: 78 } as const;

function agentVersion(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export async function runProvision(values: { config?: string | undefined; timeout?: string | undefined }, err: (t: string) => void = (t) => process.stderr.write(t)): Promise<number> {
  if (!values.config) {
    err(`missing --config FILE\n\n${provisionUsage}`);
    return PROVISION_EXIT.usage;
  }
  const timeoutS = values.timeout === undefined ? 0 : Number(values.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS < 0) {
    err(`--timeout must be a number of seconds (0: wait for ever), got "${values.timeout}"\n`);
    return PROVISION_EXIT.usage;
  }
  let config;
  try {
    config = loadConfig(values.config);
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`${e.message}\n`);
      return PROVISION_EXIT.config;
    }
    throw e;
  }
  const done = readProvisioned(config.state_dir);
  if (done) {
    err(`already provisioned: appliance ${done.serial} is site ${done.site} (since ${done.claimed_at})\n`);
    return PROVISION_EXIT.ok;
  }
  const claim = config.provisioning.claim;
  if (!claim) {
    err(`${values.config}: provisioning.claim is not set: nothing to claim with (docs/provisioning.md)\n`);
    return PROVISION_EXIT.config;
  }
  const logger = createLogger(config.log.level).child({ subsystem: 'provision' });
  const { identity, created } = loadOrCreateIdentity(provisioningDir(config.state_dir));
  logger.info(
    { event: created ? 'provision.identity_created' : 'provision.identity_loaded', serial: identity.serial, dir: provisioningDir(config.state_dir) },
    `appliance ${identity.serial}: claiming through ${claim.url}; approve it with \`branchctl claim approve ${identity.serial}\``,
  );
  try {
    const grant = await claimAppliance({
      identity,
      url: claim.url,
      token: claim.token,
      ...(claim.username !== undefined ? { username: claim.username } : {}),
      ...(claim.password !== undefined ? { password: claim.password } : {}),
      ...(claim.ca ? { tls: { ca: claim.ca, rejectUnauthorized: true } } : {}),
      protocolVersion: claim.protocol_version,
      agentVersion: agentVersion(),
      retryMs: claim.retry * 1000,
      timeoutMs: timeoutS * 1000,
      logger,
    });
    const file = writeProvisioned(config.state_dir, { serial: identity.serial, site: grant.site, claimed_at: new Date().toISOString(), claim_url: claim.url, grant });
    // The grant holds the broker password: name the file, never print its content.
    logger.info({ event: 'provision.claimed', serial: identity.serial, site: grant.site, file: path.relative(config.state_dir, file) }, `appliance ${identity.serial} is site ${grant.site}`);
    err(`provisioned: appliance ${identity.serial} is site ${grant.site}\n`);
    return PROVISION_EXIT.ok;
  } catch (e) {
    if (e instanceof ClaimFailure) {
      err(`${e.message}\n`);
      return e.code === 'ECLAIM_TIMEOUT' ? PROVISION_EXIT.timeout : PROVISION_EXIT.rejected;
    }
    throw e;
  }
}
