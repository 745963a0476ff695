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
import { logValues, SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

const EXTENSIONS: ExtensionSpec[] = ['1001', '2101', '2102', '2201', '2202'].map((number) => ({ number, password: `secret-${number}` }));
const password = (n: string): string => `secret-${n}`;

function assertClean(r: CallRunResult): void {
  const ok = r.caller.successful === 1 && r.caller.failed === 0 && r.callees.every((c) => c.successful === 1 && c.failed === 0);
  assert.ok(ok, describeCall(r));
}

for (const policy of ['direct', 'anchored'] as const) {
  describe(`blind transfer with REFER (${policy} media)`, () => {
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

