// pre-reboot: the last moment before the switch. Waits until no call is up so that an
// update never drops a call; at the deadline it postpones (the slot stays installed,
// the switch does not happen, running the update again resumes here). Then it notes
// the registrations the agent holds, for post-boot verify to find again.
import type { ExpectedBinding } from '../image/slots/state.ts';
import type { ActiveCallsSource } from './probes/active-calls.ts';
import { snapshotBindings } from './probes/store.ts';
import { ok, type HookResult } from './types.ts';

export interface PreRebootInput {
  calls: ActiveCallsSource;
  /** Longest wait for calls to end. */
  deadlineMs: number;
  /** How often to ask again. */
  pollMs?: number;
  /** The agent's state folder, for the registrations snapshot; null when no agent is known. */
  stateDir: string | null;
}

export interface PreRebootValue {
  waitedMs: number;
  expectBindings: ExpectedBinding[];
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function preReboot(input: PreRebootInput): Promise<HookResult<PreRebootValue>> {
  const poll = input.pollMs ?? 1000;
  const started = performance.now();
  let calls = await input.calls.activeCalls();
  let peak = calls;
  while (calls > 0) {
    const waited = performance.now() - started;
    if (waited >= input.deadlineMs) {
      return {
        outcome: {
          status: 'postponed',
          detail: `${calls} call(s) still active after ${secs(waited)} (deadline ${secs(input.deadlineMs)}); not switching — run the update again to retry`,
          data: { active_calls: calls, waited_ms: Math.round(waited), source: input.calls.description },
        },
        value: { waitedMs: waited, expectBindings: [] },
      };
    }
    await sleep(Math.min(poll, Math.max(1, input.deadlineMs - waited)));
    calls = await input.calls.activeCalls();
    peak = Math.max(peak, calls);
  }
  const waitedMs = performance.now() - started;
  const expectBindings = input.stateDir ? await snapshotBindings(input.stateDir) : [];
  const detail = peak > 0 ? `waited ${secs(waitedMs)} for ${peak} call(s) to end` : 'no active call';
  return {
    outcome: ok(`${detail}; ${expectBindings.length} registration(s) to find again after the switch`, {
      waited_ms: Math.round(waitedMs),
      peak_calls: peak,
      source: input.calls.description,
      registrations: expectBindings.length,
    }),
    value: { waitedMs, expectBindings },
  };
}
