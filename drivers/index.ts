// What the agent imports from drivers/: the interface, and the factory that makes a
// LineCard from a `linecards[]` entry. Nothing outside drivers/ names a driver class.

import { SerialAtCard } from './serial-at/serial-at-card.ts';
import { SimCard } from './sim/sim-card.ts';
import { LineCardError, type LineCard, type LineCardConfig, type SerialAtLineCardConfig, type SimLineCardConfig } from './types.ts';

export * from './types.ts';
export { Q850, causeText, isQ850Cause, type Q850Cause } from './q850.ts';

export interface CreateLineCardOptions {
  /** Sim cards: real signalling times × this when the config does not say (`time_scale`). */
  timeScale?: number;
}

const SIM_ONLY = ['type', 'spans', 'signalling', 'ports', 'numbers', 'control', 'subscribers', 'time_scale'] as const;
const SERIAL_ONLY = ['kind', 'device', 'baud', 'number', 'command_timeout', 'dial_timeout', 'reopen_max'] as const;

/**
 * Problems the schema cannot express: keys of the other driver, settings that do not
 * apply to a card type, duplicate names. Each as `linecards[i].key: reason`.
 */
export function lineCardProblems(configs: readonly LineCardConfig[]): string[] {
  const problems: string[] = [];
  const names = new Map<string, number>();
  configs.forEach((config, i) => {
    const at = `linecards[${i}]`;
    const raw = config as unknown as Record<string, unknown>;
    const first = names.get(config.name);
    if (first !== undefined) problems.push(`${at}.name: "${config.name}" is already used by linecards[${first}]`);
    else names.set(config.name, i);
    const foreign = config.driver === 'sim' ? SERIAL_ONLY : SIM_ONLY;
    for (const key of foreign) {
      if (raw[key] !== undefined) problems.push(`${at}.${key}: applies to ${config.driver === 'sim' ? 'serial-at' : 'sim'} cards, not ${config.driver}`);
    }
    if (config.driver === 'sim') {
      if (config.type === 'fxo' && (config.spans !== undefined || config.signalling !== undefined)) {
        problems.push(`${at}: spans and signalling apply to t1/e1 cards; an fxo card has ports`);
      }
      if (config.type !== 'fxo' && (config.ports !== undefined || config.numbers !== undefined)) {
        problems.push(`${at}: ports and numbers apply to fxo cards; a ${config.type} card has spans`);
      }
      if (config.numbers && config.numbers.length > (config.ports ?? 4)) {
        problems.push(`${at}.numbers: ${config.numbers.length} numbers for ${config.ports ?? 4} ports`);
      }
    }
  });
  return problems;
}

/** One card from its config entry (not started). Throws LineCardError ECONFIG for a bad entry. */
export function createLineCard(config: LineCardConfig, options: CreateLineCardOptions = {}): LineCard {
  const problems = lineCardProblems([config]);
  if (problems.length > 0) throw new LineCardError('ECONFIG', config.name, problems.join('; '));
  switch (config.driver) {
    case 'sim':
      return createSimCard(config, options);
    case 'serial-at':
      return createSerialAtCard(config);
    default: {
      const driver: never = config;
      throw new LineCardError('ECONFIG', String((driver as { name?: unknown }).name), `unknown driver ${JSON.stringify((driver as { driver?: unknown }).driver)}`);
    }
  }
}

/** Every card of a config, checked together (duplicate names) before any is made. */
export function createLineCards(configs: readonly LineCardConfig[], options: CreateLineCardOptions = {}): LineCard[] {
  const problems = lineCardProblems(configs);
  if (problems.length > 0) throw new LineCardError('ECONFIG', 'linecards', problems.join('; '));
  return configs.map((c) => createLineCard(c, options));
}

function createSimCard(config: SimLineCardConfig, options: CreateLineCardOptions): SimCard {
  return new SimCard({
    name: config.name,
    type: config.type,
    ...(config.spans !== undefined ? { spans: config.spans } : {}),
    ...(config.signalling !== undefined ? { signalling: config.signalling } : {}),
    ...(config.ports !== undefined ? { ports: config.ports } : {}),
    ...(config.numbers !== undefined ? { numbers: config.numbers } : {}),
    ...(config.control !== undefined ? { control: config.control } : {}),
    ...((config.time_scale ?? options.timeScale) !== undefined ? { timeScale: config.time_scale ?? options.timeScale } : {}),
    subscribers: (config.subscribers ?? []).map((s) => ({
      number: s.number,
      ...(s.name !== undefined ? { name: s.name } : {}),
      ...(s.behaviour !== undefined ? { behaviour: s.behaviour } : {}),
      ...(s.answer_after !== undefined ? { answerAfterMs: s.answer_after * 1000 } : {}),
      ...(s.audio !== undefined ? { audio: s.audio } : {}),
    })),
  });
}

function createSerialAtCard(config: SerialAtLineCardConfig): SerialAtCard {
  return new SerialAtCard({
    name: config.name,
    kind: config.kind,
    device: config.device,
    ...(config.baud !== undefined ? { baud: config.baud } : {}),
    ...(config.number !== undefined ? { number: config.number } : {}),
    ...(config.command_timeout !== undefined ? { commandTimeoutMs: config.command_timeout * 1000 } : {}),
    ...(config.dial_timeout !== undefined ? { dialTimeoutMs: config.dial_timeout * 1000 } : {}),
    ...(config.reopen_max !== undefined ? { reopenMaxMs: config.reopen_max * 1000 } : {}),
  });
}
