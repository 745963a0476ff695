// Proves the SIPp call scenarios against a real server first: Kamailio 5.6 as a
// registrar and stateful proxy that challenges INVITEs (bench/kamailio/proxy.cfg).
// A proxy is transparent to the dialogs, so every scenario whose outcome does not
// depend on a B2BUA's own decisions must pass through it; then a failure of the same
// scenario against Branchline (calls-sipp.test.ts) points at Branchline.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_ROOT } from '../helpers/agent.ts';
import { kamailioPassword, startKamailio, type KamailioHandle } from '../helpers/kamailio.ts';
import { describeCall, registerSippPhone, runCall, type CallRunOptions, type CallRunResult } from '../helpers/sipp-calls.ts';
import { logValues } from '../helpers/sipp.ts';

const DOMAIN = 'branchline.test';
const CALLER = { user: '1001', password: kamailioPassword('1001') };

function assertClean(r: CallRunResult): void {
  const ok = r.caller.successful === 1 && r.caller.failed === 0 && r.callees.every((c) => c.successful === 1 && c.failed === 0);
  assert.ok(ok, describeCall(r));
}

describe('SIPp call scenarios through Kamailio as a stateful proxy', () => {
  let kamailio: KamailioHandle;
  let server: string;

  before(async () => {
    kamailio = await startKamailio({ template: path.join(REPO_ROOT, 'bench', 'kamailio', 'proxy.cfg'), domain: DOMAIN, defines: ['AUTH_INVITE'] });
    server = `127.0.0.1:${kamailio.port}`;
  });

  after(async () => {
    await kamailio?.stop();
  });

  async function call(callee: string, opts: Pick<CallRunOptions, 'callerScenario' | 'callees'> & Partial<CallRunOptions>): Promise<CallRunResult> {
    return runCall({ server, domain: DOMAIN, caller: CALLER, callee, timeoutMs: 20_000, ...opts });
  }

  async function phone(user: string): Promise<number> {
    return registerSippPhone(server, DOMAIN, { user, password: kamailioPassword(user) });
  }

  test('forking: two phones of one user ring, one answers, the other is cancelled', async () => {
    const [answering, losing] = [await phone('2001'), await phone('2001')];
    const r = await call('2001', {
      callerScenario: 'call-uac',
      callees: [
        { scenario: 'call-uas', port: answering, extraArgs: ['-d', '300'] },
        { scenario: 'uas-cancelled', port: losing },
      ],
      callerExtraArgs: ['-d', '200'],
    });
    assertClean(r);
  });

  test('the caller cancels while it rings: 487', async () => {
    const r = await call('2002', { callerScenario: 'uac-cancel', callees: [{ scenario: 'uas-cancelled', port: await phone('2002') }] });
    assertClean(r);
    assert.deepEqual(logValues(r.caller, 'final'), ['487']);
  });

  test('a CANCEL that crosses the 200 leaves the call up', async () => {
    const r = await call('2003', { callerScenario: 'uac-cancel-after-answer', callees: [{ scenario: 'call-uas', port: await phone('2003') }] });
    assertClean(r);
  });

  test('hold, inactive and resume from the caller with re-INVITEs', async () => {
    const r = await call('2005', { callerScenario: 'uac-hold', callees: [{ scenario: 'uas-hold', port: await phone('2005') }] });
    assertClean(r);
    assert.deepEqual(logValues(r.callees[0]!, 'offer3'), ['sendonly']);
  });

  test('hold from the callee', async () => {
    const r = await call('2008', { callerScenario: 'uac-held', callees: [{ scenario: 'uas-holds', port: await phone('2008') }] });
    assertClean(r);
    assert.deepEqual(logValues(r.caller, 'callee-hold-offer'), ['sendonly']);
  });

  test('UPDATE with an SDP offer inside the call', async () => {
    const r = await call('2006', { callerScenario: 'uac-update', callees: [{ scenario: 'uas-update', port: await phone('2006') }] });
    assertClean(r);
  });

  test('INFO with a DTMF body inside the call', async () => {
    const r = await call('2007', { callerScenario: 'uac-info', callees: [{ scenario: 'uas-info', port: await phone('2007') }] });
    assertClean(r);
    assert.deepEqual(logValues(r.callees[0]!, 'info-type'), ['application/dtmf-relay']);
  });
});
