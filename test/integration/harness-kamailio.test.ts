// Proves the SIPp harness and scenarios against a real registrar, Kamailio 5.6: each
// scenario passes where it should and fails where it should, so that a failure
// against Branchline points at Branchline, not at the harness.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startBaresip } from '../helpers/baresip.ts';
import { kamailioPassword, startKamailio, type KamailioHandle } from '../helpers/kamailio.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import {
  assertAllFailed,
  assertAllSucceeded,
  logValues,
  runSipp,
  writeUsersFile,
  type RunSippOptions,
} from '../helpers/sipp.ts';

const DOMAIN = 'branchline.test';
const USERS = ['2001', '2002', '2003'];

describe('SIPp harness against Kamailio as registrar', () => {
  let kamailio: KamailioHandle;
  let dir: string;
  let goodUsers: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-harness-'));
    kamailio = await startKamailio({ workers: 1, domain: DOMAIN, minExpires: 60 });
    goodUsers = await writeUsersFile(
      path.join(dir, 'users.csv'),
      USERS.map((user) => ({ user, password: kamailioPassword(user) })),
    );
  });

  after(async () => {
    await kamailio?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function sipp(scenario: string, extra: Partial<RunSippOptions>): Promise<Awaited<ReturnType<typeof runSipp>>> {
    return runSipp({
      scenario,
      remote: `127.0.0.1:${kamailio.port}`,
      usersFile: goodUsers,
      calls: USERS.length,
      rate: 50,
      authUri: DOMAIN,
      timeoutMs: 15_000,
      ...extra,
    });
  }

  test('register-auth: every user is challenged, then registered with the Contact on SIPp\'s port', async () => {
    const port = await freeUdpTcpPort();
    const r = await sipp('register-auth', { localPort: port, set: { domain: DOMAIN, expires: 1800 } });
    assertAllSucceeded(r, USERS.length);
    const contacts = logValues(r, 'contact');
    assert.equal(contacts.length, USERS.length);
    USERS.forEach((user, i) => {
      assert.match(contacts[i] ?? '', new RegExp(`<sip:${user}@127\\.0\\.0\\.1:${port};transport=UDP>;expires=1800`));
    });

    const gone = await sipp('unregister', { localPort: port, set: { domain: DOMAIN } });
    assertAllSucceeded(gone, USERS.length);
  });

  test('unregister fails while another binding of the user remains; Contact: * removes them all', async () => {
    const first = await freeUdpTcpPort();
    const second = await freeUdpTcpPort();
    assertAllSucceeded(await sipp('register-auth', { localPort: first, set: { domain: DOMAIN, expires: 1800 } }), USERS.length);
    assertAllSucceeded(await sipp('register-auth', { localPort: second, set: { domain: DOMAIN, expires: 1800 } }), USERS.length);

    const partial = await sipp('unregister', { localPort: first, set: { domain: DOMAIN } });
    assertAllFailed(partial, USERS.length);
    assert.ok((partial.failures['FailedRegexpShouldntMatch'] ?? 0) === USERS.length, partial.errors);
    assert.match(partial.errors, new RegExp(`127\\.0\\.0\\.1:${second}`), 'the 200 lists the binding that remains');

    assertAllSucceeded(await sipp('register-unregister-all', { localPort: first, set: { domain: DOMAIN } }), USERS.length);
    // Nothing left: removing the second port's binding now finds an empty list too.
    assertAllSucceeded(await sipp('unregister', { localPort: second, set: { domain: DOMAIN } }), USERS.length);
  });

  test('register-short-expires: 423 with the registrar\'s Min-Expires', async () => {
    const r = await sipp('register-short-expires', { set: { domain: DOMAIN, expires: 5 } });
    assertAllSucceeded(r, USERS.length);
    assert.deepEqual(logValues(r, 'min_expires'), USERS.map(() => '60'));
  });

  test('register-short-expires fails against a registrar that accepts the interval', async () => {
    const r = await sipp('register-short-expires', { set: { domain: DOMAIN, expires: 600 } });
    assertAllFailed(r, USERS.length);
    assert.match(r.errors, /while expecting '423'.*received 'SIP\/2\.0 200 OK/s);
    assertAllSucceeded(await sipp('unregister', { localPort: r.localPort, set: { domain: DOMAIN } }), USERS.length);
  });

  test('register-wrong-password: 403 Forbidden; with the right password the same scenario fails', async () => {
    const wrong = await writeUsersFile(path.join(dir, 'wrong.csv'), [{ user: '2001', password: 'not-the-password' }]);
    assertAllSucceeded(await sipp('register-wrong-password', { usersFile: wrong, calls: 1, set: { domain: DOMAIN, expires: 600 } }), 1);

    const right = await sipp('register-wrong-password', { calls: 1, set: { domain: DOMAIN, expires: 600 } });
    assertAllFailed(right, 1);
    assertAllSucceeded(await sipp('unregister', { calls: 1, localPort: right.localPort, set: { domain: DOMAIN } }), 1);
  });

  test('register-auth over TCP', async () => {
    const port = await freeUdpTcpPort();
    const r = await sipp('register-auth', { transport: 'tcp', localPort: port, set: { domain: DOMAIN, expires: 900 } });
    assertAllSucceeded(r, USERS.length);
    assert.match(logValues(r, 'contact')[0] ?? '', new RegExp(`:${port};transport=TCP>;expires=900`));
    assertAllSucceeded(await sipp('unregister', { transport: 'tcp', localPort: port, set: { domain: DOMAIN } }), USERS.length);
  });

  test('response times: -trace_rtt gives one entry per rtd marker and call', async () => {
    const r = await sipp('register-auth', { set: { domain: DOMAIN, expires: 600 }, traceRtt: true });
    assertAllSucceeded(r, USERS.length);
    assert.equal(r.responseTimes.filter((t) => t.rtd === 1).length, USERS.length);
    assert.equal(r.responseTimes.filter((t) => t.rtd === 2).length, USERS.length);
    assert.ok(r.responseTimes.every((t) => t.ms >= 0 && t.ms < 1000));
    assertAllSucceeded(await sipp('unregister', { localPort: r.localPort, set: { domain: DOMAIN } }), USERS.length);
  });

  test('baresip registers with the password the script derives, and is refused with another', async () => {
    const phone = await startBaresip({ account: { user: '2004', password: kamailioPassword('2004'), registrar: `127.0.0.1:${kamailio.port}`, domain: DOMAIN, regint: 600 } });
    try {
      const ok = await phone.waitForEvent((e) => e['type'] === 'REGISTER_OK' || e['type'] === 'REGISTER_FAIL', 5000);
      assert.equal(ok['type'], 'REGISTER_OK', JSON.stringify(ok));
      assert.match((await phone.command('reginfo')).data, /sip:2004@branchline\.test.*OK/);
    } finally {
      await phone.cleanup();
    }
    const wrong = await startBaresip({ account: { user: '2005', password: 'wrong', registrar: `127.0.0.1:${kamailio.port}`, domain: DOMAIN, regint: 600 } });
    try {
      const failed = await wrong.waitForEvent((e) => e['type'] === 'REGISTER_FAIL', 5000);
      assert.match(String(failed['param']), /^403\b/);
    } finally {
      await wrong.cleanup();
    }
  });
});
