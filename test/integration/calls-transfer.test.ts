// Call transfer through the agent with SIPp phones (agent/calls/features/transfer.ts):
// the callee REFERs the caller to a third phone; the referrer hears the progress in
// NOTIFYs (100, 180, 200) and is let go; the target is invited without SDP and
// offers, the caller ends up talking to it (direct media: its phone is re-INVITEd
// with the target's offer; anchored: the agent answers and the caller notices
// nothing), and the caller's BYE reaches the target. A transfer to a phone that is
// busy leaves the call with the referrer.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle, type ExtensionSpec } from '../helpers/agent.ts';
import { describeCall, registerSippPhone, runCall, type CallRunResult } from '../helpers/sipp-calls.ts';
import { describeSipp, logValues, runSipp, SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

const EXTENSIONS: ExtensionSpec[] = ['1001', '1002', '2101', '2102', '2201', '2202', '2501', '2502'].map((number) => ({ number, password: `secret-${number}` }));
const password = (n: string): string => `secret-${n}`;

function assertClean(r: CallRunResult): void {
  const ok = r.caller.successful === 1 && r.caller.failed === 0 && r.callees.every((c) => c.successful === 1 && c.failed === 0);
  assert.ok(ok, describeCall(r));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

for (const policy of ['direct', 'anchored'] as const) {
  describe(`transfer with REFER (${policy} media)`, () => {
    let agent: AgentHandle;
    let server: string;

    before(async () => {
      agent = await startAgent({ extensions: EXTENSIONS, extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy, bind_address: '127.0.0.1' } } });
      server = `127.0.0.1:${agent.udpPort}`;
    });

    after(async () => {
      await agent?.cleanup();
    });

    const phone = (n: string): Promise<number> => registerSippPhone(server, agent.domain, { user: n, password: password(n) });

    test('the callee transfers the caller to a third phone, which the caller then talks to and hangs up on', async () => {
      const referrer = await phone('2101');
      const target = await phone('2102');
      const r = await runCall({
        server,
        domain: agent.domain,
        caller: { user: '1001', password: password('1001') },
        callee: '2101',
        // Direct media: the caller's phone gets the target's offer; anchored: the agent answers it.
        callerScenario: policy === 'direct' ? 'uac-transferred' : 'call-uac',
        callerExtraArgs: ['-d', '3000'],
        callees: [
          { scenario: 'uas-refer', port: referrer, extraArgs: ['-set', 'target', '2102', '-set', 'domain', agent.domain] },
          { scenario: 'uas-transfer-target', port: target },
        ],
        timeoutMs: 25_000,
      });
      assertClean(r);
      assert.deepEqual(logValues(r.callees[0]!, 'sipfrag'), ['100', '180', '200']);
      assert.deepEqual(logValues(r.callees[1]!, 'ack-answer'), ['yes']);
      if (policy === 'direct') assert.deepEqual(logValues(r.caller, 'reinvite-offer'), ['yes']);
      await agent.waitForLog((l) => l['event'] === 'call.transferred', 5000);
    });

    test('attended: the referrer joins its two calls with Replaces and drops out of both', async () => {
      // The referrer answers both calls on one port: 1001 calls 2501, then 1002 calls 2502.
      const referrerPort = await phone('2501');
      await registerSippPhone(server, agent.domain, { user: '2502', password: password('2502') }, referrerPort);
      const stopReferrer = new AbortController();
      const referrer = runSipp({
        scenario: 'uas-attended-transfer',
        localPort: referrerPort,
        calls: 2,
        timeoutMs: 30_000,
        abort: stopReferrer.signal,
        extraArgs: ['-set', 'consult', '2502', '-set', 'target', '1002', '-set', 'domain', agent.domain],
      });
      await sleep(300);
      const transferee = runCall({
        server,
        domain: agent.domain,
        caller: { user: '1001', password: password('1001') },
        callee: '2501',
        callerScenario: policy === 'direct' ? 'uac-transferred' : 'call-uac',
        callerExtraArgs: ['-d', '6000'],
        callees: [],
        timeoutMs: 25_000,
      });
      await sleep(500);
      const target = runCall({
        server,
        domain: agent.domain,
        caller: { user: '1002', password: password('1002') },
        callee: '2502',
        callerScenario: 'uac-consulted',
        callees: [],
        timeoutMs: 25_000,
      });
      const [b, c] = await Promise.all([transferee, target]);
      const stop = setTimeout(() => stopReferrer.abort(), 6000);
      const a = await referrer;
      clearTimeout(stop);
      const all = `referrer: ${describeSipp(a)}\ntransferee: ${describeCall(b)}\ntarget: ${describeCall(c)}`;
      assert.ok(a.successful === 2 && a.failed === 0, all);
      assert.ok(b.caller.successful === 1 && c.caller.successful === 1, all);
      assert.deepEqual(logValues(a, 'sipfrag'), ['100', '200']);
      assert.deepEqual(logValues(c.caller, 'offerless-reinvite'), ['yes']);
      if (policy === 'direct') assert.deepEqual(logValues(b.caller, 'reinvite-offer'), ['yes']);
    });
  });
}

describe('blind transfer to a phone that is busy', () => {
  let agent: AgentHandle;

  before(async () => {
    agent = await startAgent({ extensions: EXTENSIONS, extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy: 'direct', bind_address: '127.0.0.1' } } });
  });

  after(async () => {
    await agent?.cleanup();
  });

  test('the referrer gets a final NOTIFY with 486 and keeps the caller', async () => {
    const server = `127.0.0.1:${agent.udpPort}`;
    const referrer = await registerSippPhone(server, agent.domain, { user: '2201', password: password('2201') });
    const busy = await registerSippPhone(server, agent.domain, { user: '2202', password: password('2202') });
    const r = await runCall({
      server,
      domain: agent.domain,
      caller: { user: '1001', password: password('1001') },
      callee: '2201',
      callerScenario: 'call-uac',
      callerExtraArgs: ['-d', '3000'],
      callees: [
        { scenario: 'uas-refer-fails', port: referrer, extraArgs: ['-set', 'target', '2202', '-set', 'domain', agent.domain] },
        { scenario: 'b2bua-uas-busy', port: busy },
      ],
      timeoutMs: 25_000,
    });
    assertClean(r);
    assert.deepEqual(logValues(r.callees[0]!, 'sipfrag'), ['100', '486']);
  });
});

