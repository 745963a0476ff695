import type { AgentConfig } from '../../agent/config/types.ts';
import { readStatus, type StatusReport } from '../../agent/status.ts';

/**
 * Where pre-reboot learns how many calls are up. The contract with the agent is a
 * field of its status report, `active_calls` (what `branchline status --json` prints).
 * Today the agent has no call core and the field is absent, which reads as zero; when
 * calls arrive, the agent fills the field and pre-reboot honours it unchanged.
 */
export interface ActiveCallsSource {
  /** Names the source in the journal. */
  readonly description: string;
  activeCalls(): Promise<number>;
}

export class StatusActiveCalls implements ActiveCallsSource {
  readonly description: string;
  readonly #config: AgentConfig;

  constructor(config: AgentConfig) {
    this.#config = config;
    this.description = `agent status of site ${config.site.id}`;
  }

  async activeCalls(): Promise<number> {
    const report: StatusReport & { active_calls?: unknown } = await readStatus(this.#config);
    if (!report.running) return 0;
    const n = report.active_calls;
    return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : 0;
  }
}

/** No agent config given: nothing to ask, nothing to wait for. */
export const noAgentCalls: ActiveCallsSource = {
  description: 'no agent config given',
  activeCalls: async () => 0,
};
