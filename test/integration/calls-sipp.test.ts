// The call core's races and mid-call requests, with SIPp phones on both sides of
// the agent (the same scenarios pass through Kamailio as a proxy:
// harness-kamailio-calls.test.ts; the basic paths, forking, 486 and one 488 are in
// calls-basic.test.ts). Each callee registers as an extension from its own port,
// then answers there; the caller answers the agent's 407. What a user would notice
// is asserted: that a call survives a CANCEL that came too late, that a 200
// crossing a CANCEL does not leave a phone in a call nobody is on, that hold and
// resume are answered (and reach the other phone when the phones negotiate the
// media themselves), that UPDATE and INFO arrive intact, and that each kind of
// malformed offer gets a 488.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle, type ExtensionSpec } from '../helpers/agent.ts';
import { describeCall, registerSippPhone, runCall, type CallRunOptions, type CallRunResult } from '../helpers/sipp-calls.ts';
import { logValues, SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

const CALLER: ExtensionSpec = { number: '1001', password: 'caller-1001-secret' };
const CALLEES: ExtensionSpec[] = ['2002', '2003', '2005', '2006', '2007', '2008', '2009'].map((number) => ({
  number,
  password: `callee-${number}-secret`,
}));

/** The caller's call and every callee's (one each) went as their scenarios say. */
function assertClean(r: CallRunResult): void {
  const ok = r.caller.successful === 1 && r.caller.failed === 0 && r.callees.every((c) => c.successful === 1 && c.failed === 0);
  assert.ok(ok, describeCall(r));
}

function passwordOf(number: string): string {
  const ext = CALLEES.find((e) => e.number === number);
  if (!ext) throw new Error(`no test extension ${number}`);
  return ext.password;
}

for (const policy of ['direct', 'anchored'] as const) {
  describe(`call races and mid-call requests through the agent (${policy} media)`, () => {
    let agent: AgentHandle;
    let server: string;

    before(async () => {
      agent = await startAgent({
        extensions: [CALLER, ...CALLEES],
        extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy, bind_address: '127.0.0.1' } },
      });
      server = `127.0.0.1:${agent.udpPort}`;
    });

    after(async () => {
      await agent?.cleanup();
    });

    function call(callee: string, opts: Pick<CallRunOptions, 'callerScenario' | 'callees'> & Partial<CallRunOptions>): Promise<CallRunResult> {
      return runCall({ server, domain: agent.domain, caller: { user: CALLER.number, password: CALLER.password }, callee, timeoutMs: 20_000, ...opts });
    }

    function phone(number: string): Promise<number> {
      return registerSippPhone(server, agent.domain, { user: number, password: passwordOf(number) });
    }

    test('CANCEL crossing the callee\'s 200: the caller gets 487, the callee gets ACK and BYE', async () => {
      const r = await call('2002', {
        callerScenario: 'uac-cancel',
        callees: [{ scenario: 'uas-answer-crossing-cancel', port: await phone('2002') }],
      });
      assertClean(r);
      assert.deepEqual(logValues(r.caller, 'final'), ['487']);
    });

    test('CANCEL arriving after the 200: the call stays up until the caller hangs up', async () => {
      const r = await call('2003', {
        callerScenario: 'uac-cancel-after-answer',
        callees: [{ scenario: 'call-uas', port: await phone('2003') }],
      });
      // The callee's scenario ends only with the caller's BYE: the CANCEL did not end the call.
      assertClean(r);
    });

    test('hold, inactive and resume from the caller', async () => {
      // Direct media: the phones negotiate, so each re-INVITE must reach the callee
      // with the caller's direction. Anchored: the agent answers for the callee (it
      // holds the media) and the callee's dialog is left alone.
      const calleeScenario = policy === 'direct' ? 'uas-hold' : 'call-uas';
      const r = await call('2005', { callerScenario: 'uac-hold', callees: [{ scenario: calleeScenario, port: await phone('2005') }] });
      assertClean(r);
      assert.deepEqual(
        [...logValues(r.caller, 'answer3'), ...logValues(r.caller, 'answer4'), ...logValues(r.caller, 'answer5')],
        ['recvonly', 'inactive', 'sendrecv'],
      );
      if (policy === 'direct') {
        const callee = r.callees[0]!;
        assert.deepEqual([...logValues(callee, 'offer3'), ...logValues(callee, 'offer4'), ...logValues(callee, 'offer5')], ['sendonly', 'inactive', 'sendrecv']);
      }
    });

    test('hold from the callee', async () => {
      const callerScenario = policy === 'direct' ? 'uac-held' : 'call-uac';
      const r = await call('2009', {
        callerScenario,
        callees: [{ scenario: 'uas-holds', port: await phone('2009') }],
        // call-uac hangs up after this long: after the callee's hold.
        callerExtraArgs: ['-d', '1500'],
      });
      assertClean(r);
      assert.deepEqual(logValues(r.callees[0]!, 'hold-answer'), ['recvonly']);
      if (policy === 'direct') assert.deepEqual(logValues(r.caller, 'callee-hold-offer'), ['sendonly']);
    });

    test('UPDATE with an SDP offer mid-call is answered', async () => {
      // Direct media: by the other phone; anchored: by the agent, which holds the media.
      const calleeScenario = policy === 'direct' ? 'uas-update' : 'call-uas';
      const r = await call('2006', { callerScenario: 'uac-update', callees: [{ scenario: calleeScenario, port: await phone('2006') }] });
      assertClean(r);
    });

    test('INFO mid-call reaches the other phone with its body and type', async () => {
      const r = await call('2007', { callerScenario: 'uac-info', callees: [{ scenario: 'uas-info', port: await phone('2007') }] });
      assertClean(r);
      assert.deepEqual(logValues(r.callees[0]!, 'info-type'), ['application/dtmf-relay']);
    });

    test('malformed SDP offers get 488, and the next call goes through', async () => {
      const variants = [
        ['c=IN IP4 127.0.0.1', 'a=sendrecv'], // no m= line at all
        ['c=IN IP4 127.0.0.1', 'm=audio notaport RTP/AVP 0'], // port not a number
        ['a=tool:none', 'm=audio 40000 RTP/AVP 0'], // no c= anywhere
        ['%%%% not sdp', 'this is not SDP either'], // garbage lines, no media
      ];
      const bad = await call('2008', { callerScenario: 'uac-bad-sdp', callees: [], calls: variants.length, extraFields: variants });
      assert.equal(bad.caller.successful, variants.length, describeCall(bad));
      assert.deepEqual(logValues(bad.caller, 'final'), variants.map(() => '488'));
      const good = await call('2008', { callerScenario: 'call-uac', callees: [{ scenario: 'call-uas', port: await phone('2008') }] });
      assertClean(good);
    });
  });
}
