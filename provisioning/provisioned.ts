// What the controller granted this appliance, kept in the state folder (mode 0600,
// written atomically) and laid over the local config file at every start: the site
// id, the broker login and the configuration the controller chose.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, configFromData, loadConfig, parseConfigText } from '../agent/config/load.ts';
import type { AgentConfig } from '../agent/config/types.ts';
import type { ClaimGrant } from './claim/protocol.ts';
import { writeSecretFile } from './secure-file.ts';

/** Under the agent's state_dir: the identity and the grant. */
export const PROVISIONING_DIR = 'provisioning';
export const PROVISIONED_FILE = 'provisioned.json';

export interface ProvisionedRecord {
  serial: string;
  site: string;
  claimed_at: string;
  /** The broker the appliance claimed through: the site's broker unless the grant named another. */
  claim_url: string;
  grant: ClaimGrant;
}

export function provisioningDir(stateDir: string): string {
  return path.join(stateDir, PROVISIONING_DIR);
}

export function readProvisioned(stateDir: string): ProvisionedRecord | null {
  const file = path.join(provisioningDir(stateDir), PROVISIONED_FILE);
  if (!existsSync(file)) return null;
  // Written atomically by `branchline provision`; damaged or hand-edited, it must stop
  // the start with its name, not with a parser's message or a TypeError later.
  let record: unknown;
  try {
    record = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(file, [{ key: '', reason: `not readable as JSON (${(err as Error).message}); restore it or run \`branchline provision\` again` }]);
  }
  const grant = isObj(record) ? record['grant'] : undefined;
  if (!isObj(record) || typeof record['site'] !== 'string' || !isObj(grant) || !isObj(grant['config']) || !isObj(grant['mqtt'])) {
    throw new ConfigError(file, [{ key: 'grant', reason: 'a provisioned record holds "site", "grant.config" and "grant.mqtt"' }]);
  }
  return record as unknown as ProvisionedRecord;
}

export function writeProvisioned(stateDir: string, record: ProvisionedRecord): string {
  const file = path.join(provisioningDir(stateDir), PROVISIONED_FILE);
  writeSecretFile(file, `${JSON.stringify(record, null, 2)}\n`);
  return file;
}

type Obj = Record<string, unknown>;
function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function merge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObj(out[k]) && isObj(v) ? merge(out[k] as Obj, v) : v;
  return out;
}

/** Keys the controller's config may not set: where this box keeps its state and how it claims. */
const LOCAL_ONLY = ['state_dir', 'provisioning'] as const;

/** The local config data with the grant laid over it. */
export function overlayGrant(local: Obj, record: ProvisionedRecord): Obj {
  const fromController: Obj = { ...record.grant.config };
  for (const k of LOCAL_ONLY) delete fromController[k];
  const merged = merge(local, fromController);
  const site = isObj(merged['site']) ? merged['site'] : {};
  merged['site'] = { ...site, id: record.site };
  const mqtt = isObj(merged['mqtt']) ? merged['mqtt'] : {};
  const g = record.grant.mqtt;
  merged['mqtt'] = { ...mqtt, url: g.url ?? record.claim_url, username: g.username, password: g.password, client_id: g.client_id };
  return merged;
}

/**
 * The agent's config: the file, and over it what the controller granted when the
 * appliance was claimed. Without a grant this is loadConfig(file).
 */
export function loadAgentConfig(file: string): AgentConfig {
  const local = loadConfig(file);
  const record = readProvisioned(local.state_dir);
  if (!record) return local;
  // The same parser as the file alone (js-yaml, YAML 1.2 core schema); loadConfig() above read it already.
  const raw = parseConfigText(readFileSync(file, 'utf8'), file) as Obj;
  try {
    return configFromData(overlayGrant(raw, record), file);
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ConfigError(`${file} with the controller's grant (${path.join(provisioningDir(local.state_dir), PROVISIONED_FILE)})`, err.problems);
    }
    throw err;
  }
}
