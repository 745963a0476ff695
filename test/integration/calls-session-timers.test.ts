// Session timers (RFC 4028) and reliable provisionals (RFC 3262) on the caller's
// leg, with SIPp phones through the agent (agent/calls/features). What a phone
// would notice: a too-short interval is refused with 422 and our Min-SE; an agreed
// interval comes back in the 200 with Require: timer; an UPDATE refresh is answered
// with the interval again (by the agent: the other phone never sees it); a phone
// that stops refreshing is hung up with "Session expired" once the interval runs
// out (60 s for the shortest interval: that test runs beside the others); a caller
// that requires 100rel gets a reliable 180 it can PRACK, and the 200 waits for the
// PRACK of a reliable 183 that carried SDP.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle, type ExtensionSpec } from '../helpers/agent.ts';
import { describeCall, registerSippPhone, runCall, type CallRunOptions, type CallRunResult } from '../helpers/sipp-calls.ts';
import { logValues, SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

const EXTENSIONS: ExtensionSpec[] = ['1001', '2401', '2402', '2403', '2404', '2405'].map((number) => ({ number, password: `secret-${number}` }));
const password = (n: string): string => `secret-${n}`;

function assertClean(r: CallRunResult): void {
  const ok = r.caller.successful === 1 && r.caller.failed === 0 && r.callees.every((c) => c.successful === 1 && c.failed === 0);
  assert.ok(ok, describeCall(r));
}

// Concurrent: the expiry test waits a minute of real time while the others run.
describe('session timers and reliable provisionals (RFC 4028, RFC 3262)', { concurrency: true }, () => {
  let agent: AgentHandle;
  let server: string;

  before(async () => {
    agent = await startAgent({ extensions: EXTENSIONS, extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy: 'direct', bind_address: '127.0.0.1' } } });
    server = `127.0.0.1:${agent.udpPort}`;
  });

  after(async () => {
    await agent?.cleanup();
  });

  async function call(callee: string, opts: Pick<CallRunOptions, 'callerScenario'> & Partial<CallRunOptions> & { calleeScenario?: string; calleeArgs?: string[] }): Promise<CallRunResult> {
    const callees = opts.calleeScenario === undefined
      ? []
      : [{ scenario: opts.calleeScenario, port: await registerSippPhone(server, agent.domain, { user: callee, password: password(callee) }), ...(opts.calleeArgs ? { extraArgs: opts.calleeArgs } : {}) }];
    return runCall({ server, domain: agent.domain, caller: { user: '1001', password: password('1001') }, callee, callees, timeoutMs: 30_000, ...opts });
  }

  test('an interval under Min-SE is refused with 422 and Min-SE: 90', async () => {
    const r = await call('2401', { callerScenario: 'uac-session-too-brief' });
    assert.equal(r.caller.successful, 1, describeCall(r));
    assert.deepEqual(logValues(r.caller, 'final'), ['422']);
    assert.deepEqual(logValues(r.caller, 'min-se'), ['90']);
  });

  test('the agreed interval is in the 200 with Require: timer, and an UPDATE refresh is answered by the agent', async () => {
    // call-uas fails on any request but BYE: the refresh must not reach the callee.
    const r = await call('2402', { callerScenario: 'uac-session-timer', calleeScenario: 'call-uas' });
    assertClean(r);
    assert.deepEqual(logValues(r.caller, 'refresh-session-expires'), ['120;refresher=uac']);
  });

  test('a caller that stops refreshing is hung up, both legs, with "Session expired"', { timeout: 120_000 }, async () => {
    const r = await call('2403', { callerScenario: 'uac-session-expiry', calleeScenario: 'call-uas', timeoutMs: 100_000, calleeGraceMs: 10_000 });
    assertClean(r);
    assert.deepEqual(logValues(r.caller, 'bye-reason'), ['expired']);
  });

  test('a caller requiring 100rel gets a reliable 180 with RSeq, and its PRACK is answered', async () => {
    // The callee rings a second before answering, so that the PRACK comes first.
    const r = await call('2404', { callerScenario: 'uac-100rel', calleeScenario: 'call-uas', calleeArgs: ['-d', '1000'] });
    assertClean(r);
    assert.deepEqual(logValues(r.caller, 'reliable-180'), ['yes']);
    assert.deepEqual(logValues(r.caller, 'prack'), ['200']);
  });

  test('the 200 waits for the PRACK of a reliable 183 with SDP, though the callee answered at once', async () => {
    const r = await call('2405', { callerScenario: 'uac-100rel-early-media', calleeScenario: 'uas-early-media-answer' });
    assertClean(r);
    assert.deepEqual(logValues(r.caller, 'reliable-183'), ['yes']);
    assert.deepEqual(logValues(r.caller, 'prack'), ['200']);
  });
});
