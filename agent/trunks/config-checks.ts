// Cross-references of trunks[], routes[], dids[] and tenants[], checked when the
// config is loaded (load.ts adds these to the schema's problems): a route naming a
// trunk that does not exist, or a DID leading nowhere, is an error naming its key at
// start, not a call that fails later.

import { compileDigitPattern, DigitPatternError } from '../calls/routing/digit-pattern.ts';
import type { AgentConfig } from '../config/types.ts';
import { parseChannelList } from './plan.ts';

export interface TrunkConfigProblem {
  key: string;
  reason: string;
}

type TrunkInput = Pick<AgentConfig, 'linecards' | 'extensions' | 'ring_groups' | 'trunks' | 'routes' | 'dids' | 'tenants' | 'trunking'>;

export function trunkConfigProblems(config: TrunkInput): TrunkConfigProblem[] {
  const problems: TrunkConfigProblem[] = [];
  const cards = new Set(config.linecards.map((c) => c.name));
  const extensions = new Set(config.extensions.map((e) => e.number));
  const groups = new Set(config.ring_groups.map((g) => g.number));

  const trunkNames = unique(config.trunks.map((t) => t.name), 'trunks', 'name', problems);
  config.trunks.forEach((t, i) => {
    if (!cards.has(t.linecard)) problems.push({ key: `trunks[${i}].linecard`, reason: `"${t.linecard}" is not a linecards[].name` });
    if (t.channels !== undefined) {
      try {
        parseChannelList(t.channels);
      } catch (err) {
        problems.push({ key: `trunks[${i}].channels`, reason: (err as Error).message });
      }
    }
    if (t.caller_id === 'fixed' && t.caller_id_number === undefined) problems.push({ key: `trunks[${i}].caller_id_number`, reason: 'is required with caller_id fixed' });
  });
  // With no trunks[] every card is a trunk group named after it.
  const knownTrunks = config.trunks.length > 0 ? trunkNames : cards;

  const tenantNames = unique(config.tenants.map((t) => t.name), 'tenants', 'name', problems);
  const owner = new Map<string, string>();
  config.tenants.forEach((t, i) => {
    t.extensions.forEach((ext, j) => {
      try {
        compileDigitPattern(ext);
      } catch (err) {
        if (!(err instanceof DigitPatternError)) throw err;
        problems.push({ key: `tenants[${i}].extensions[${j}]`, reason: err.message });
        return;
      }
      const first = owner.get(ext);
      if (first !== undefined && first !== t.name) problems.push({ key: `tenants[${i}].extensions[${j}]`, reason: `"${ext}" already belongs to tenant ${first}` });
      else owner.set(ext, t.name);
    });
  });

  config.routes.forEach((r, i) => {
    try {
      compileDigitPattern(r.pattern);
    } catch (err) {
      if (!(err instanceof DigitPatternError)) throw err;
      problems.push({ key: `routes[${i}].pattern`, reason: err.message });
    }
    r.trunks.forEach((name, j) => {
      if (!knownTrunks.has(name)) problems.push({ key: `routes[${i}].trunks[${j}]`, reason: `"${name}" is not a trunk group (trunks[].name${config.trunks.length > 0 ? '' : ', or a linecards[].name while trunks is empty'})` });
    });
    r.tenants?.forEach((name, j) => {
      if (!tenantNames.has(name) && name !== 'default') problems.push({ key: `routes[${i}].tenants[${j}]`, reason: `"${name}" is not a tenants[].name` });
    });
    if (r.e164 && config.trunking.country_code === undefined) problems.push({ key: `routes[${i}].e164`, reason: 'needs trunking.country_code' });
  });

  unique(config.dids.map((d) => d.number), 'dids', 'number', problems);
  config.dids.forEach((d, i) => {
    const targets = (['extension', 'group', 'voicemail', 'app'] as const).filter((k) => d[k] !== undefined);
    if (targets.length !== 1) {
      problems.push({ key: `dids[${i}]`, reason: `needs exactly one of extension, group, voicemail, app (has ${targets.length === 0 ? 'none' : targets.join(', ')})` });
    }
    if (d.extension !== undefined && !extensions.has(d.extension)) problems.push({ key: `dids[${i}].extension`, reason: `"${d.extension}" is not an extensions[].number` });
    if (d.voicemail !== undefined && !extensions.has(d.voicemail)) problems.push({ key: `dids[${i}].voicemail`, reason: `"${d.voicemail}" is not an extensions[].number` });
    if (d.group !== undefined && !groups.has(d.group)) problems.push({ key: `dids[${i}].group`, reason: `"${d.group}" is not a ring_groups[].number` });
    if (d.tenant !== undefined && !tenantNames.has(d.tenant) && d.tenant !== 'default') problems.push({ key: `dids[${i}].tenant`, reason: `"${d.tenant}" is not a tenants[].name` });
  });
  return problems;
}

function unique(values: string[], list: string, key: string, problems: TrunkConfigProblem[]): Set<string> {
  const seen = new Map<string, number>();
  values.forEach((v, i) => {
    const first = seen.get(v);
    if (first !== undefined) problems.push({ key: `${list}[${i}].${key}`, reason: `"${v}" is already used by ${list}[${first}]` });
    else seen.set(v, i);
  });
  return new Set(seen.keys());
}
