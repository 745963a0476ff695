import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ErrorObject } from 'ajv';
import { CORE_SCHEMA, load as parseYaml, YAMLException } from 'js-yaml';
import { dialPlanProblems } from '../calls/routing/config-checks.ts';
import { trunkConfigProblems } from '../trunks/config-checks.ts';
import { peerNetworkProblems } from '../calls/peer-trust.ts';
import { configValidator } from './validator.ts';
import type { AgentConfig, ListenAddress } from './types.ts';

/** One problem with the config file: the dotted key and why it is wrong. */
export interface ConfigProblem {
  key: string;
  reason: string;
}

export class ConfigError extends Error {
  readonly code = 'ECONFIG';
  readonly file: string;
  readonly problems: ConfigProblem[];
  constructor(file: string, problems: ConfigProblem[]) {
    super(`${file}: ${problems.length} config error(s)\n` + problems.map((p) => `  ${p.key || '(top level)'}: ${p.reason}`).join('\n'));
    this.file = file;
    this.problems = problems;
  }
}

// Compiled ahead of time (agent/config/validator.ts).
const validate = configValidator();

function keyOf(error: ErrorObject): string {
  // instancePath is a JSON pointer (/sip/registrar/min_expires, /extensions/0/number).
  const parts = error.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  let key = '';
  for (const part of parts) key += /^[0-9]+$/.test(part) ? `[${part}]` : key ? `.${part}` : part;
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'required') return key ? `${key}.${String(params['missingProperty'])}` : String(params['missingProperty']);
  if (error.keyword === 'additionalProperties') {
    const extra = String(params['additionalProperty']);
    return key ? `${key}.${extra}` : extra;
  }
  return key;
}

function reasonOf(error: ErrorObject, data: unknown): string {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not a known key';
    case 'enum':
      return `must be one of ${(params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern': {
      const got = valueAt(data, error.instancePath);
      return `${JSON.stringify(got)} is not valid (${patternHint(error.instancePath)})`;
    }
    default:
      return error.message ?? 'is invalid';
  }
}

function patternHint(instancePath: string): string {
  if (/\/(udp|tcp)$/.test(instancePath)) return 'expected host:port';
  if (instancePath.endsWith('/number')) return 'expected 2 to 15 digits';
  if (instancePath === '/site/id') return 'expected letters, digits, - and _';
  if (instancePath.includes('trusted_networks')) return 'expected an address or address/prefix';
  return 'wrong format';
}

function valueAt(data: unknown, pointer: string): unknown {
  let node: unknown = data;
  for (const part of pointer.split('/').slice(1)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]+)$/.exec(text);
  if (!m) throw new Error(`not host:port: ${text}`);
  return { host: (m[1] ?? m[2]) as string, port: Number(m[3]) };
}

/** Cross-field rules a JSON schema cannot say well. */
function semanticProblems(raw: Record<string, unknown>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const sip = raw['sip'] as Record<string, unknown>;
  for (const key of ['udp', 'tcp'] as const) {
    const port = parseListen(String(sip[key])).port;
    if (port < 1 || port > 65535) problems.push({ key: `sip.${key}`, reason: `port ${port} is outside 1-65535` });
  }
  const reg = sip['registrar'] as Record<string, number>;
  const min = reg['min_expires'] as number;
  const max = reg['max_expires'] as number;
  const def = reg['default_expires'] as number;
  if (min > max) problems.push({ key: 'sip.registrar.min_expires', reason: `${min} is greater than max_expires ${max}` });
  if (def < min || def > max) problems.push({ key: 'sip.registrar.default_expires', reason: `${def} is outside min_expires..max_expires (${min}..${max})` });
  const seen = new Map<string, number>();
  (raw['extensions'] as Array<{ number: string }>).forEach((ext, i) => {
    const first = seen.get(ext.number);
    if (first !== undefined) problems.push({ key: `extensions[${i}].number`, reason: `"${ext.number}" is already used by extensions[${first}]` });
    else seen.set(ext.number, i);
  });
  // Ring group members, forward targets, feature codes, outbound patterns.
  problems.push(...dialPlanProblems(raw as unknown as AgentConfig));
  problems.push(...trunkConfigProblems(raw as unknown as AgentConfig));
  problems.push(...peerNetworkProblems(raw as unknown as AgentConfig));
  return problems;
}

/** Validates raw config data; throws ConfigError listing every problem at once. */
export function configFromData(data: unknown, file: string): AgentConfig {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(file, [{ key: '', reason: 'the file must hold a YAML mapping' }]);
  }
  if (!validate(data)) {
    const problems = (validate.errors ?? []).map((e) => ({ key: keyOf(e), reason: reasonOf(e, data) }));
    throw new ConfigError(file, dedupe(problems));
  }
  const raw = data as unknown as Record<string, unknown>;
  const problems = semanticProblems(raw);
  if (problems.length > 0) throw new ConfigError(file, problems);
  const sip = raw['sip'] as Record<string, unknown>;
  const config = structuredClone(raw) as unknown as AgentConfig;
  config.sip.udp = parseListen(String(sip['udp']));
  config.sip.tcp = parseListen(String(sip['tcp']));
  const base = path.dirname(path.resolve(file));
  config.state_dir = path.resolve(base, String(raw['state_dir']));
  // Every path in the file is relative to the file, wherever the agent was started from.
  for (const key of ['ca', 'cert', 'key'] as const) {
    const value = config.mqtt[key];
    if (value !== undefined) config.mqtt[key] = path.resolve(base, value);
  }
  if (config.voicemail.prompts_dir !== undefined) config.voicemail.prompts_dir = path.resolve(base, config.voicemail.prompts_dir);
  return config;
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.key}\0${p.reason}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function loadConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ key: '', reason: `cannot read the file: ${(err as Error).message}` }]);
  }
  return configFromData(parseConfigText(text, file), file);
}

/**
 * YAML text to plain data. js-yaml rather than the `yaml` package: a site's config
 * holds one entry per extension, and for 10,000 of them `yaml` (which builds a
 * document model first) took ~360 ms and ~100 MB of RSS that the heap kept, js-yaml
 * ~60 ms (docs/decisions/0010-registrar-memory-start-and-load-shedding.md). YAML 1.2 core schema:
 * no dates or merge keys, duplicate keys are an error.
 */
export function parseConfigText(text: string, file: string): unknown {
  try {
    return parseYaml(text, { schema: CORE_SCHEMA, filename: file });
  } catch (err) {
    if (!(err instanceof YAMLException)) throw err;
    const at = err.mark ? ` (line ${err.mark.line + 1}, column ${err.mark.column + 1})` : '';
    throw new ConfigError(file, [{ key: '', reason: `YAML syntax: ${err.reason}${at}` }]);
  }
}
