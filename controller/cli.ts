// branchctl: runs the reference controller and asks it questions over MQTT.
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import YAML from 'yaml';
import { createLogger } from '../agent/log/logger.ts';
import { stopOnSignals } from '../agent/runtime/stop-on-signals.ts';
import type { LogLevel } from '../agent/config/types.ts';
import type { TlsFiles } from '../agent/sync/link.ts';
import type { RecordRow, SiteSummary } from '../agent/sync/protocol.ts';
import type { ClaimRequests, ClaimSummary } from './claims.ts';
import { ControllerClient } from './client.ts';
import { Controller } from './service.ts';

const usage = `usage: branchctl <command> [options]

commands:
  serve   --broker URL --state DIR [--id NAME] [--share GROUP] [--database postgres://…]
                                   run the controller (logs JSON lines on stdout)
  sites   --broker URL [--json]    every site: state, config version, records ingested
  records --broker URL --site ID [--limit N] [--json]
                                   the call records ingested from a site
  push-config --broker URL --site ID --file FILE [--base-version N] [--json]
                                   publish a new desired config (JSON or YAML object)
  command --broker URL --site ID --name NAME [--args JSON] [--json]
                                   send a command to a site (ping, status, telemetry.now)
  claim token --broker URL --site ID [--ttl HOURS] [--json]
                                   issue a one-time claim token for a new appliance
  claim list --broker URL [--json] appliances that asked to be claimed, and their state
  claim approve SERIAL --broker URL [--site ID] [--file CONFIG] [--replace] [--json]
                                   give the appliance its site, config and broker login
  claim reject SERIAL --broker URL [--reason TEXT] [--json]
                                   refuse (or revoke) an appliance

serve also takes --broker-files DIR [--broker-reload CMD] [--site-broker URL]:
  keep Mosquitto's password file and ACL in DIR (docs/provisioning.md)

options for every command:
  --mqtt-version 4|5   MQTT protocol (default 5; the agent's embedded broker needs 4)
  --ca FILE --cert FILE --key FILE [--insecure]   TLS for mqtts:// brokers
  --username NAME --password SECRET
  --timeout SECONDS    how long to wait for an answer (default 10)
`;

interface Values {
  broker?: string | undefined;
  state?: string | undefined;
  id?: string | undefined;
  share?: string | undefined;
  database?: string | undefined;
  site?: string | undefined;
  file?: string | undefined;
  name?: string | undefined;
  args?: string | undefined;
  limit?: string | undefined;
  'base-version'?: string | undefined;
  'mqtt-version'?: string | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  insecure?: boolean | undefined;
  username?: string | undefined;
  password?: string | undefined;
  timeout?: string | undefined;
  'log-level'?: string | undefined;
  json?: boolean | undefined;
  ttl?: string | undefined;
  reason?: string | undefined;
  replace?: boolean | undefined;
  'broker-files'?: string | undefined;
  'broker-reload'?: string | undefined;
  'site-broker'?: string | undefined;
}

class UsageError extends Error {
  readonly code = 'EUSAGE';
}

function need(values: Values, key: 'broker' | 'state' | 'site' | 'file' | 'name'): string {
  const v = values[key];
  if (!v) throw new UsageError(`missing --${key}`);
  return v;
}

function intOption(values: Values, key: 'limit' | 'base-version'): number | undefined {
  const v = values[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${key} must be a whole number`);
  return n;
}

function connection(values: Values) {
  const mqttVersion = values['mqtt-version'] === undefined ? 5 : Number(values['mqtt-version']);
  if (mqttVersion !== 4 && mqttVersion !== 5) throw new UsageError('--mqtt-version must be 4 or 5');
  const tls: TlsFiles | undefined =
    values.ca || values.cert || values.key || values.insecure
      ? {
          ...(values.ca ? { ca: values.ca } : {}),
          ...(values.cert ? { cert: values.cert } : {}),
          ...(values.key ? { key: values.key } : {}),
          rejectUnauthorized: !values.insecure,
        }
      : undefined;
  return {
    broker: need(values, 'broker'),
    protocolVersion: mqttVersion as 4 | 5,
    ...(tls ? { tls } : {}),
    ...(values.username !== undefined ? { username: values.username } : {}),
    ...(values.password !== undefined ? { password: values.password } : {}),
  };
}

function timeoutMs(values: Values): number {
  const s = values.timeout === undefined ? 10 : Number(values.timeout);
  if (!Number.isFinite(s) || s <= 0) throw new UsageError('--timeout must be a positive number of seconds');
  return s * 1000;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

function when(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString();
}

async function serve(values: Values): Promise<void> {
  const stateDir = path.resolve(need(values, 'state'));
  mkdirSync(stateDir, { recursive: true });
  const level = (values['log-level'] ?? 'info') as LogLevel;
  const logger = createLogger(level);
  const controller = new Controller({
    ...connection(values),
    stateDir,
    ...(values.id ? { id: values.id } : {}),
    ...(values.share ? { shareGroup: values.share } : {}),
    ...(values.database ? { databaseUrl: values.database } : {}),
    ...(values['broker-files'] ? { brokerFiles: { dir: path.resolve(values['broker-files']), ...(values['broker-reload'] ? { reloadCommand: values['broker-reload'] } : {}) } } : {}),
    ...(values['site-broker'] ? { siteBrokerUrl: values['site-broker'] } : {}),
    logger,
  });
  stopOnSignals('controller', logger, () => controller.stop());
  await controller.start(timeoutMs(values) * 3);
}

async function withClient<T>(values: Values, fn: (client: ControllerClient) => Promise<T>): Promise<T> {
  const client = new ControllerClient({ ...connection(values), connectTimeoutMs: timeoutMs(values), logger: pino({ level: 'silent' }) });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

function print(values: Values, data: unknown, human: () => string): void {
  process.stdout.write(values.json ? `${JSON.stringify(data)}\n` : `${human()}\n`);
}

async function claimCommand(v: Values, args: string[]): Promise<void> {
  const [sub, serial] = args;
  const t = timeoutMs(v);
  const needSerial = (): string => {
    if (!serial) throw new UsageError(`usage: branchctl claim ${sub ?? ''} SERIAL`);
    return serial;
  };
  switch (sub) {
    case 'token': {
      const ttl = v.ttl === undefined ? undefined : Number(v.ttl);
      if (ttl !== undefined && (!Number.isFinite(ttl) || ttl <= 0)) throw new UsageError('--ttl must be a positive number of hours');
      const r = (await withClient(v, (c) => c.call('claims.token', { site: need(v, 'site'), ...(ttl !== undefined ? { ttl_hours: ttl } : {}) }, t))) as ClaimRequests['claims.token']['data'];
      print(v, r, () => `${r.token}\n(claim token for site ${r.site}, valid until ${when(r.expires_at)}; put it in the appliance's provisioning.claim.token)`);
      return;
    }
    case 'list': {
      const rows = (await withClient(v, (c) => c.call('claims.list', {}, t))) as ClaimSummary[];
      print(v, rows, () =>
        rows.length === 0
          ? 'no claims yet'
          : table([['SERIAL', 'STATUS', 'SITE', 'HOSTNAME', 'AGENT', 'LAST SEEN'], ...rows.map((r) => [r.serial, r.status, r.site, r.hardware.hostname, r.agent, when(r.last_seen)])]),
      );
      return;
    }
    case 'approve': {
      let config: Record<string, unknown> | undefined;
      if (v.file !== undefined) {
        const parsed: unknown = YAML.parse(readFileSync(v.file, 'utf8'));
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`${v.file} must hold an object`);
        config = parsed as Record<string, unknown>;
      }
      const r = (await withClient(v, (c) =>
        c.call('claims.approve', { serial: needSerial(), ...(v.site ? { site: v.site } : {}), ...(config ? { config } : {}), ...(v.replace ? { replace: true } : {}) }, t),
      )) as ClaimRequests['claims.approve']['data'];
      print(v, r, () => `appliance ${r.serial} approved as site ${r.site} (broker user ${r.username})`);
      return;
    }
    case 'reject': {
      const r = (await withClient(v, (c) => c.call('claims.reject', { serial: needSerial(), ...(v.reason ? { reason: v.reason } : {}) }, t))) as ClaimRequests['claims.reject']['data'];
      print(v, r, () => `appliance ${r.serial} rejected`);
      return;
    }
    default:
      throw new UsageError('usage: branchctl claim token|list|approve|reject …');
  }
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      broker: { type: 'string', short: 'b' },
      state: { type: 'string' },
      id: { type: 'string' },
      share: { type: 'string' },
      database: { type: 'string' },
      site: { type: 'string', short: 's' },
      file: { type: 'string', short: 'f' },
      name: { type: 'string', short: 'n' },
      args: { type: 'string' },
      limit: { type: 'string' },
      'base-version': { type: 'string' },
      'mqtt-version': { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      insecure: { type: 'boolean' },
      username: { type: 'string' },
      password: { type: 'string' },
      timeout: { type: 'string' },
      'log-level': { type: 'string' },
      json: { type: 'boolean' },
      ttl: { type: 'string' },
      reason: { type: 'string' },
      replace: { type: 'boolean' },
      'broker-files': { type: 'string' },
      'broker-reload': { type: 'string' },
      'site-broker': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const v = values as Values;
  switch (positionals[0]) {
    case 'serve':
      return serve(v);
    case 'sites': {
      const sites = await withClient(v, (c) => c.request('sites.list', {}, timeoutMs(v)));
      print(v, sites, () =>
        sites.length === 0
          ? 'no sites yet'
          : table([
              ['SITE', 'STATE', 'CONFIG', 'DESIRED', 'RECORDS', 'LAST SEEN'],
              ...sites.map((s: SiteSummary) => [s.site, s.state, String(s.config_version), String(s.desired_version), String(s.records), when(s.last_seen)]),
            ]),
      );
      return;
    }
    case 'records': {
      const site = need(v, 'site');
      const limit = intOption(v, 'limit');
      const rows = await withClient(v, (c) => c.request('records.list', { site, ...(limit !== undefined ? { limit } : {}) }, timeoutMs(v)));
      print(v, rows, () =>
        rows.length === 0
          ? `no records from ${site}`
          : table([['SEQ', 'ID', 'TYPE', 'TIME'], ...rows.map((r: RecordRow) => [String(r.seq), r.id, r.type, when(r.ts)])]),
      );
      return;
    }
    case 'push-config': {
      const site = need(v, 'site');
      const file = need(v, 'file');
      const config: unknown = YAML.parse(readFileSync(file, 'utf8'));
      if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new UsageError(`${file} must hold an object`);
      const base = intOption(v, 'base-version');
      const result = await withClient(v, (c) =>
        c.request('config.push', { site, config: config as Record<string, unknown>, ...(base !== undefined ? { base_version: base } : {}) }, timeoutMs(v)),
      );
      print(v, result, () => `site ${result.site}: desired config version ${result.version} published`);
      return;
    }
    case 'command': {
      const site = need(v, 'site');
      const name = need(v, 'name');
      let args: unknown = {};
      if (v.args !== undefined) {
        try {
          args = JSON.parse(v.args);
        } catch {
          throw new UsageError('--args must be JSON');
        }
      }
      const t = timeoutMs(v);
      const data = await withClient(v, (c) => c.request('site.command', { site, name, args, timeout_ms: t }, t + 2000));
      print(v, data, () => JSON.stringify(data, null, 2));
      return;
    }
    case 'claim':
      return claimCommand(v, positionals.slice(1));
    default:
      process.stdout.write(usage);
      if (!values.help && positionals[0] !== 'help') process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const code = (err as { code?: string }).code;
  process.stderr.write(`branchctl: ${(err as Error).message}${code && code !== 'EUSAGE' ? ` (${code})` : ''}\n`);
  if (err instanceof UsageError) process.stderr.write(`\n${usage}`);
  process.exit(err instanceof UsageError ? 2 : 1);
});
