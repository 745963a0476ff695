// The registrar as phones see it: SIPp scenarios (the ones proven against Kamailio in
// harness-kamailio.test.ts) against the real agent, and the bindings read back with
// `branchline status --json`, as an operator would.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { agentStatus, bindingsOf, startAgent, type AgentHandle, type ExtensionSpec } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { authorization, challengesOf, registerRequest, registerWithAuth, UdpPeer } from '../helpers/sip-client.ts';
import {
  assertAllSucceeded,
  logValues,
  runSipp,
  SIPP_AGENT_CONFIG,
  writeUsersFile,
  type RunSippOptions,
  type SippResult,
} from '../helpers/sipp.ts';

const EXTENSIONS: ExtensionSpec[] = ['1001', '1002', '1003', '1004', '1005', '1006', '1007'].map((number) => ({
  number,
  name: `Phone ${number}`,
  password: `secret${number}`,
}));

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function statusCode(message: string | undefined): number | undefined {
  const m = /^SIP\/2\.0 ([0-9]{3})/.exec(message ?? '');
  return m ? Number(m[1]) : undefined;
}

describe('registrar with SIPp (MD5 challenges, min_expires 2)', () => {
  let agent: AgentHandle;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-register-sipp-'));
    // min_expires 2: a binding asked for 3 s expires while the test watches.
    agent = await startAgent({ extensions: EXTENSIONS, registrar: { min_expires: 2 }, extraConfig: SIPP_AGENT_CONFIG });
  });

  after(async () => {
    await agent?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function usersFile(name: string, users: Array<{ user: string; password: string }>): Promise<string> {
    return writeUsersFile(path.join(dir, `${name}.csv`), users);
  }

  function sipp(scenario: string, opts: Partial<RunSippOptions> & { usersFile: string }): Promise<SippResult> {
    return runSipp({
      scenario,
      remote: `127.0.0.1:${agent.udpPort}`,
      calls: 1,
      authUri: agent.domain,
      timeoutMs: 15_000,
      ...opts,
      set: { domain: agent.domain, ...opts.set },
    });
  }

  test('REGISTER with digest auth: 200 lists the binding, status shows it', async () => {
    const port = await freeUdpTcpPort();
    const users = await usersFile('1001', [{ user: '1001', password: 'secret1001' }]);
    const r = await sipp('register-auth', { usersFile: users, localPort: port, set: { expires: 600 } });
    assertAllSucceeded(r, 1);
    assert.match(logValues(r, 'contact')[0] ?? '', new RegExp(`sip:1001@127\\.0\\.0\\.1:${port}.*expires=(600|599)`, 'i'));

    const [binding, ...more] = bindingsOf(await agentStatus(agent.configPath), '1001');
    assert.equal(more.length, 0, 'one binding');
    assert.ok(binding);
    assert.match(binding.contact, new RegExp(`^sip:1001@127\\.0\\.0\\.1:${port}`));
    assert.ok(binding.expires_in > 590 && binding.expires_in <= 600, `expires_in ${binding.expires_in}`);
    assert.equal(binding.user_agent, 'SIPp-Branchline');
    assert.equal(binding.transport, 'udp');
    assert.equal(binding.source, `udp:127.0.0.1:${port}`);
  });

  test('a wrong password gets 403 Forbidden and no binding', async () => {
    const users = await usersFile('1002-wrong', [{ user: '1002', password: 'not-secret1002' }]);
    assertAllSucceeded(await sipp('register-wrong-password', { usersFile: users, set: { expires: 600 } }), 1);
    assert.deepEqual(bindingsOf(await agentStatus(agent.configPath), '1002'), []);
  });

  test('Expires: 0 removes the binding', async () => {
    const port = await freeUdpTcpPort();
    const users = await usersFile('1003', [{ user: '1003', password: 'secret1003' }]);
    assertAllSucceeded(await sipp('register-auth', { usersFile: users, localPort: port, set: { expires: 600 } }), 1);
    assert.equal(bindingsOf(await agentStatus(agent.configPath), '1003').length, 1);

    assertAllSucceeded(await sipp('unregister', { usersFile: users, localPort: port }), 1);
    assert.deepEqual(bindingsOf(await agentStatus(agent.configPath), '1003'), []);
  });

  test('an interval below min_expires gets 423 with Min-Expires, and no binding', async () => {
    const users = await usersFile('1004', [{ user: '1004', password: 'secret1004' }]);
    const r = await sipp('register-short-expires', { usersFile: users, set: { expires: 1 } });
    assertAllSucceeded(r, 1);
    assert.deepEqual(logValues(r, 'min_expires'), ['2']);
    assert.deepEqual(bindingsOf(await agentStatus(agent.configPath), '1004'), []);
  });

  test('a binding that is not refreshed disappears when it expires', async () => {
    const users = await usersFile('1005', [{ user: '1005', password: 'secret1005' }]);
    assertAllSucceeded(await sipp('register-auth', { usersFile: users, set: { expires: 3 } }), 1);
    const registeredAt = Date.now();
    assert.equal(bindingsOf(await agentStatus(agent.configPath), '1005').length, 1, 'present at first');

    let left = 1;
    while (Date.now() - registeredAt < 10_000) {
      await sleep(500);
      left = bindingsOf(await agentStatus(agent.configPath), '1005').length;
      if (left === 0) break;
    }
    assert.equal(left, 0, 'gone within 10 s of a 3 s registration');
    assert.ok(Date.now() - registeredAt >= 2500, 'not before it was due');
  });

  test('Contact: * with Expires: 0 removes every binding of the extension', async () => {
    const users = await usersFile('1006', [{ user: '1006', password: 'secret1006' }]);
    const first = await freeUdpTcpPort();
    const second = await freeUdpTcpPort();
    assertAllSucceeded(await sipp('register-auth', { usersFile: users, localPort: first, set: { expires: 600 } }), 1);
    assertAllSucceeded(await sipp('register-auth', { usersFile: users, localPort: second, set: { expires: 600 } }), 1);
    assert.equal(bindingsOf(await agentStatus(agent.configPath), '1006').length, 2, 'two phones, two bindings');

    assertAllSucceeded(await sipp('register-unregister-all', { usersFile: users, localPort: first }), 1);
    assert.deepEqual(bindingsOf(await agentStatus(agent.configPath), '1006'), []);
  });

  test('REGISTER over TCP', async () => {
    const port = await freeUdpTcpPort();
    const users = await usersFile('1007', [{ user: '1007', password: 'secret1007' }]);
    const r = await sipp('register-auth', { usersFile: users, transport: 'tcp', remote: `127.0.0.1:${agent.tcpPort}`, localPort: port, set: { expires: 600 } });
    assertAllSucceeded(r, 1);
    const [binding] = bindingsOf(await agentStatus(agent.configPath), '1007');
    assert.ok(binding, 'binding present');
    assert.equal(binding.transport, 'tcp');
    assert.match(binding.contact, /transport=tcp/i);
  });
});

describe('registrar challenges with SHA-256 first (default config)', () => {
  let agent: AgentHandle;

  before(async () => {
    agent = await startAgent({ extensions: EXTENSIONS.slice(0, 3) });
  });

  after(async () => {
    await agent?.cleanup();
  });

  test('the 401 offers SHA-256 then MD5, both qop="auth" in the site\'s realm', async () => {
    const peer = await UdpPeer.open();
    try {
      const res = await peer.exchange(registerRequest({ user: '1001', domain: agent.domain, localPort: peer.port }), agent.udpPort);
      assert.equal(statusCode(res), 401);
      const offered = challengesOf(res ?? '');
      assert.deepEqual(offered.map((c) => c.algorithm.toUpperCase()), ['SHA-256', 'MD5']);
      for (const c of offered) {
        assert.equal(c.realm, agent.domain);
        assert.match(c.qop ?? '', /\bauth\b/);
        assert.ok(c.nonce.length >= 16, 'a nonce with some entropy');
      }
    } finally {
      peer.close();
    }
  });

  test('a phone answering with SHA-256 registers; a wrong SHA-256 answer gets 403', async () => {
    const peer = await UdpPeer.open();
    try {
      const ok = await registerWithAuth(peer, agent.udpPort, { user: '1001', password: 'secret1001', domain: agent.domain, algorithm: 'SHA-256', expires: 600, userAgent: 'sha-phone' });
      assert.equal(statusCode(ok), 200, ok?.split('\r\n')[0]);
      const [binding] = bindingsOf(await agentStatus(agent.configPath), '1001');
      assert.ok(binding);
      assert.equal(binding.user_agent, 'sha-phone');
      assert.equal(binding.source, `udp:127.0.0.1:${peer.port}`);

      const wrong = await registerWithAuth(peer, agent.udpPort, { user: '1002', password: 'secret1001', domain: agent.domain, algorithm: 'SHA-256' });
      assert.equal(statusCode(wrong), 403);
      assert.deepEqual(bindingsOf(await agentStatus(agent.configPath), '1002'), []);
    } finally {
      peer.close();
    }
  });

  test('a retransmitted REGISTER: without credentials it is challenged again (nothing kept), with them it gets the same 200 (no second write)', async () => {
    const peer = await UdpPeer.open();
    try {
      const base = { user: '1003', domain: agent.domain, localPort: peer.port, callId: 'retx-1003', expires: 600 };
      // The same datagram twice: the challenge is sent without transaction state,
      // so the copy reaches the registrar again and gets a challenge of its own.
      const unauthenticated = registerRequest({ ...base, cseq: 1 });
      const first = await peer.exchange(unauthenticated, agent.udpPort);
      const again = await peer.exchange(unauthenticated, agent.udpPort);
      assert.equal(statusCode(first), 401);
      assert.equal(statusCode(again), 401);
      const [challenge] = challengesOf(again ?? '');
      assert.ok(challenge);
      assert.notEqual(challenge.nonce, challengesOf(first ?? '')[0]?.nonce, 'a fresh challenge, not a stored copy');

      const auth = authorization({ challenge, username: '1003', password: 'secret1003', method: 'REGISTER', uri: `sip:${agent.domain}` });
      const authenticated = registerRequest({ ...base, cseq: 2, auth });
      const ok = await peer.exchange(authenticated, agent.udpPort);
      assert.equal(statusCode(ok), 200, ok?.split('\r\n')[0]);
      const [stored] = bindingsOf(await agentStatus(agent.configPath), '1003');
      assert.ok(stored);
      // Past the next second of the Date header: a 200 made again would differ. And
      // the registrar would take the same nonce-count as a replay and challenge it.
      await sleep(1100);
      const okAgain = await peer.exchange(authenticated, agent.udpPort);
      assert.equal(okAgain, ok, 'the identical 200, from the completed transaction');
      const after = bindingsOf(await agentStatus(agent.configPath), '1003');
      assert.equal(after.length, 1);
      assert.equal(after[0]?.contact, stored.contact);
      assert.ok((after[0]?.expires_in ?? Infinity) < stored.expires_in, 'still counting down: the binding was not written again');
    } finally {
      peer.close();
    }
  });

  test('MD5 is still accepted from an older phone', async () => {
    const peer = await UdpPeer.open();
    try {
      const ok = await registerWithAuth(peer, agent.udpPort, { user: '1002', password: 'secret1002', domain: agent.domain, algorithm: 'MD5', expires: 600 });
      assert.equal(statusCode(ok), 200, ok?.split('\r\n')[0]);
      assert.equal(bindingsOf(await agentStatus(agent.configPath), '1002').length, 1);
    } finally {
      peer.close();
    }
  });
});

describe('bindings survive a restart', () => {
  let stateDir: string;
  let dir: string;
  const agents: AgentHandle[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-restart-'));
    stateDir = path.join(dir, 'state');
  });

  after(async () => {
    for (const a of agents) await a.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('SIGTERM, start again on the same state_dir: the binding is there, counting down; a re-REGISTER refreshes it', async () => {
    const first = await startAgent({ extensions: EXTENSIONS.slice(0, 1), stateDir, extraConfig: SIPP_AGENT_CONFIG });
    agents.push(first);
    const users = await writeUsersFile(path.join(dir, 'users.csv'), [{ user: '1001', password: 'secret1001' }]);
    const phonePort = await freeUdpTcpPort();
    const register = (a: AgentHandle, expires: number): Promise<SippResult> =>
      runSipp({ scenario: 'register-auth', remote: `127.0.0.1:${a.udpPort}`, usersFile: users, calls: 1, localPort: phonePort,
        authUri: a.domain, set: { domain: a.domain, expires }, timeoutMs: 15_000 });

    assertAllSucceeded(await register(first, 600), 1);
    const [beforeStop] = bindingsOf(await agentStatus(first.configPath), '1001');
    assert.ok(beforeStop);
    assert.equal(await first.stop(), 0, 'SIGTERM is a clean stop');

    await sleep(1100);
    const second = await startAgent({ extensions: EXTENSIONS.slice(0, 1), stateDir, udpPort: first.udpPort, tcpPort: first.tcpPort, extraConfig: SIPP_AGENT_CONFIG });
    agents.push(second);
    const [afterStart] = bindingsOf(await agentStatus(second.configPath), '1001');
    assert.ok(afterStart, 'binding still there after the restart');
    assert.equal(afterStart.contact, beforeStop.contact);
    assert.ok(afterStart.expires_in < beforeStop.expires_in && afterStart.expires_in > 590, `expires_in ${beforeStop.expires_in} -> ${afterStart.expires_in}`);

    // The same phone refreshes its registration with the restarted agent.
    assertAllSucceeded(await register(second, 1200), 1);
    const refreshed = bindingsOf(await agentStatus(second.configPath), '1001');
    assert.equal(refreshed.length, 1, 'refreshed, not duplicated');
    assert.ok((refreshed[0]?.expires_in ?? 0) > 1190, `refreshed expires_in ${refreshed[0]?.expires_in}`);
  });
});
