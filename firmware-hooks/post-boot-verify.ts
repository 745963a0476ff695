// post-boot verify: after the switch, is the new slot really serving? Run by the new
// slot's own binary once the agent has started from it. Each check says what it saw;
// the first failing ones make the one-line reason for the rollback.
import type { AgentConfig } from '../agent/config/types.ts';
import type { ExpectedBinding } from '../image/slots/state.ts';
import { sendOptions } from './probes/sip-options.ts';
import { missingBindings, storeSchema } from './probes/store.ts';
import { failed, ok, type HookOutcome, type HookResult } from './types.ts';

export interface VerifyInput {
  config: AgentConfig;
  expectBindings: readonly ExpectedBinding[];
  /** How long the agent may take to answer and the phones to come back. */
  deadlineMs: number;
}

export type CheckName = 'sip' | 'store' | 'registrations' | 'broker';

export interface CheckResult {
  check: CheckName;
  pass: boolean;
  /** Not applicable in this build (no broker yet): neither pass nor fail matters. */
  skipped?: boolean;
  detail: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function checkSip(input: VerifyInput, deadline: number): Promise<CheckResult> {
  const { host, port } = input.config.sip.udp;
  const answer = await sendOptions({ host, port, timeoutMs: Math.max(500, deadline - Date.now()) });
  if (answer.status === 200) return { check: 'sip', pass: true, detail: `OPTIONS to udp ${host}:${port} answered 200 in ${answer.ms} ms` };
  if (answer.status === null) return { check: 'sip', pass: false, detail: `SIP is not answering: ${answer.reason}` };
  return { check: 'sip', pass: false, detail: `OPTIONS to udp ${host}:${port} answered ${answer.status} ${answer.reason}, expected 200` };
}

async function checkStore(input: VerifyInput): Promise<CheckResult> {
  const schema = await storeSchema(input.config.state_dir);
  if (schema.found === null) return { check: 'store', pass: false, detail: `no store in ${input.config.state_dir}` };
  if (schema.found < schema.expected) return { check: 'store', pass: false, detail: `store schema is ${schema.found}, this build needs ${schema.expected}: not migrated` };
  return { check: 'store', pass: true, detail: `store schema ${schema.found} (this build: ${schema.expected})` };
}

async function checkRegistrations(input: VerifyInput, deadline: number): Promise<CheckResult> {
  // Phones re-register on their own timers; a binding restored from the store counts
  // as long as it has not expired. Poll until all are back or time runs out.
  for (;;) {
    const missing = await missingBindings(input.config.state_dir, input.expectBindings);
    if (missing.length === 0) {
      return { check: 'registrations', pass: true, detail: `${input.expectBindings.length} registration(s) from before the switch are live` };
    }
    if (Date.now() >= deadline) {
      const names = missing.slice(0, 3).map((b) => b.extension).join(', ');
      return { check: 'registrations', pass: false, detail: `${missing.length} phone(s) not registered again (${names}${missing.length > 3 ? ', …' : ''})` };
    }
    await sleep(Math.min(500, Math.max(1, deadline - Date.now())));
  }
}

function checkBroker(): CheckResult {
  // This build has no MQTT link: there is no broker to reach, and running without one
  // is the survivable case by design. The check becomes real with the sync subsystem.
  return { check: 'broker', pass: true, skipped: true, detail: 'no MQTT link in this build' };
}

export async function postBootVerify(input: VerifyInput): Promise<HookResult<CheckResult[]>> {
  const deadline = Date.now() + input.deadlineMs;
  // SIP first: once it answers, the agent has finished starting (it migrates the store
  // before it listens), so the store and registration checks read a settled state.
  const sip = await checkSip(input, deadline);
  const checks: CheckResult[] = [sip];
  if (sip.pass) {
    checks.push(await checkStore(input));
    checks.push(await checkRegistrations(input, deadline));
  }
  checks.push(checkBroker());
  const failures = checks.filter((c) => !c.pass);
  const data = { checks };
  let outcome: HookOutcome;
  if (failures.length > 0) outcome = failed(failures.map((c) => c.detail).join('; '), data);
  else outcome = ok(checks.filter((c) => !c.skipped).map((c) => c.detail).join('; '), data);
  return { outcome, value: checks };
}
