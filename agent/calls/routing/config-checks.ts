// The dial plan's cross-references, checked when the config is loaded (load.ts adds
// these problems to the schema's): a ring group member, a forward target or a
// fallback that leads nowhere is a config error naming its key, not a call that
// fails months later.
import type { AgentConfig, FeatureCodeName } from '../../config/types.ts';
import { compileDigitPattern, DigitPatternError, type DigitPattern } from './digit-pattern.ts';

export interface DialPlanProblem {
  key: string;
  reason: string;
}

type DialPlanInput = Pick<AgentConfig, 'extensions' | 'dialplan' | 'ring_groups'>;

export function dialPlanProblems(config: DialPlanInput): DialPlanProblem[] {
  const problems: DialPlanProblem[] = [];
  const { dialplan } = config;
  const emergency = new Set(dialplan.emergency_numbers);

  const patterns: DigitPattern[] = [];
  dialplan.outbound_patterns.forEach((p, i) => {
    try {
      patterns.push(compileDigitPattern(p));
    } catch (err) {
      if (!(err instanceof DigitPatternError)) throw err;
      problems.push({ key: `dialplan.outbound_patterns[${i}]`, reason: err.message });
    }
  });

  // Codes that take a number after them must not be the start of another code, or
  // the longer code could never be dialled (and equal codes are ambiguous).
  const codes = Object.entries(dialplan.feature_codes) as Array<[FeatureCodeName, string]>;
  for (const [name, code] of codes) {
    for (const [other, otherCode] of codes) {
      if (other === name) continue;
      if (code === otherCode && name < other) problems.push({ key: `dialplan.feature_codes.${name}`, reason: `"${code}" is also ${other}` });
      else if (otherCode.length > code.length && otherCode.startsWith(code)) {
        problems.push({ key: `dialplan.feature_codes.${name}`, reason: `"${code}" is the start of ${other} "${otherCode}", which could then never be dialled` });
      }
    }
  }

  const extensionIndex = new Map(config.extensions.map((e, i) => [e.number, i]));
  const groupIndex = new Map<string, number>();
  config.ring_groups.forEach((g, i) => {
    const key = `ring_groups[${i}]`;
    const ext = extensionIndex.get(g.number);
    const earlier = groupIndex.get(g.number);
    if (ext !== undefined) problems.push({ key: `${key}.number`, reason: `"${g.number}" is already used by extensions[${ext}]` });
    else if (earlier !== undefined) problems.push({ key: `${key}.number`, reason: `"${g.number}" is already used by ring_groups[${earlier}]` });
    else groupIndex.set(g.number, i);
    if (emergency.has(g.number)) problems.push({ key: `${key}.number`, reason: `"${g.number}" is an emergency number (dialplan.emergency_numbers)` });
    g.members.forEach((m, j) => {
      if (!extensionIndex.has(m)) problems.push({ key: `${key}.members[${j}]`, reason: `"${m}" is not an extension` });
    });
  });

  /** Why `target` cannot take forwarded calls, or undefined when it can. */
  const unreachable = (target: string, self: string): string | undefined => {
    if (target === self) return `"${target}" is the number itself`;
    if (emergency.has(target)) return `"${target}" is an emergency number; calls are not forwarded to one`;
    if (extensionIndex.has(target) || groupIndex.has(target)) return undefined;
    if (patterns.some((p) => p.matches(target))) return undefined;
    return `"${target}" is not an extension, a ring group or a number matching dialplan.outbound_patterns`;
  };

  config.ring_groups.forEach((g, i) => {
    if (g.fallback === undefined) return;
    const why = unreachable(g.fallback, g.number);
    if (why) problems.push({ key: `ring_groups[${i}].fallback`, reason: why });
  });

  config.extensions.forEach((e, i) => {
    if (emergency.has(e.number)) problems.push({ key: `extensions[${i}].number`, reason: `"${e.number}" is an emergency number (dialplan.emergency_numbers)` });
    for (const reason of ['always', 'busy', 'no_answer', 'unavailable'] as const) {
      const target = e.forward?.[reason];
      if (target === undefined) continue;
      const why = unreachable(target, e.number);
      if (why) problems.push({ key: `extensions[${i}].forward.${reason}`, reason: why });
    }
  });
  return problems;
}
