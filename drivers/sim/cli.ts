// `branchline sim call`: places a call from the simulated PSTN into a running agent
// (through the control socket of its sim card), plays audio while connected, hangs
// up, and prints the outcome as one JSON line. Exit 0 only when the call was answered
// and audio went both ways; 1 when it was not; 2 for a usage error or a config
// without a reachable sim card.

import path from 'node:path';
import type { LineCardConfig } from '../types.ts';
import { SimControlClient } from './control-client.ts';
import type { CallOutcome } from './control-protocol.ts';

export const simUsage = `  sim call --config FILE --from NUMBER --to DID [--audio RAW_ULAW_FILE] [--talk SECONDS] [--card NAME]
                                 call into the agent from its simulated PSTN; prints the outcome as JSON
`;

export interface SimCallOptions {
  from?: string | undefined;
  to?: string | undefined;
  audio?: string | undefined;
  talk?: string | undefined;
  card?: string | undefined;
}

export interface SimIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const SIM_EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export async function runSimCommand(sub: string | undefined, linecards: readonly LineCardConfig[], options: SimCallOptions, io: SimIo): Promise<number> {
  if (sub !== 'call') {
    io.err(`unknown sim command ${JSON.stringify(sub ?? '')}\n${simUsage}`);
    return SIM_EXIT.usage;
  }
  if (!options.to || !/^\+?[0-9*#]{1,32}$/.test(options.to)) {
    io.err('sim call: --to DID is required (digits)\n');
    return SIM_EXIT.usage;
  }
  if (!options.from || !/^\+?[0-9]{1,32}$/.test(options.from)) {
    io.err('sim call: --from NUMBER is required (digits)\n');
    return SIM_EXIT.usage;
  }
  const talk = options.talk === undefined ? 5 : Number(options.talk);
  if (!Number.isFinite(talk) || talk <= 0 || talk > 3600) {
    io.err(`sim call: --talk expects seconds (0-3600), got ${JSON.stringify(options.talk)}\n`);
    return SIM_EXIT.usage;
  }
  const sims = linecards.filter((c) => c.driver === 'sim' && (options.card === undefined || c.name === options.card));
  const card = sims.find((c) => c.driver === 'sim' && c.control !== undefined);
  if (!card || card.driver !== 'sim' || card.control === undefined) {
    io.err(
      sims.length === 0
        ? `sim call: the config has no sim line card${options.card ? ` named ${options.card}` : ''}\n`
        : `sim call: sim card ${sims[0]!.name} has no control socket (set linecards[].control)\n`,
    );
    return SIM_EXIT.usage;
  }
  let client: SimControlClient;
  try {
    client = await SimControlClient.connect(card.control);
  } catch (err) {
    io.err(`sim call: cannot reach the simulated PSTN of ${card.name} at ${card.control}: ${(err as Error).message} (is the agent running?)\n`);
    return SIM_EXIT.usage;
  }
  try {
    const outcome = await client.request<CallOutcome>({
      op: 'call',
      from: options.from,
      to: options.to,
      talk,
      // The agent reads the file: give it a path that does not depend on our working directory.
      ...(options.audio !== undefined ? { audio: path.resolve(options.audio) } : {}),
    });
    io.out(`${JSON.stringify(outcome)}\n`);
    return outcome.answered && outcome.audio_both_ways ? SIM_EXIT.ok : SIM_EXIT.failed;
  } catch (err) {
    io.err(`sim call: ${(err as Error).message}\n`);
    return SIM_EXIT.failed;
  } finally {
    client.close();
  }
}
