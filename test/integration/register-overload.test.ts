// Load shedding as phones see it: SIPp offers more REGISTERs than the agent is allowed
// to take (sip.registrar.overload.max_utilization set low, so the test does not depend
// on how fast this machine is), and the agent answers new ones 503 with Retry-After,
// keeps completing the registrations it has challenged, does not crash, and serves
// normally again once the flood stops.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle, type ExtensionSpec } from '../helpers/agent.ts';
import { headerValuesOf, registerRequest, registerWithAuth, UdpPeer } from '../helpers/sip-client.ts';
import { runSipp, SIPP_AGENT_CONFIG, unexpectedResponses, writeUsersFile } from '../helpers/sipp.ts';

const USERS = 500;
const EXTENSIONS: ExtensionSpec[] = Array.from({ length: USERS }, (_, i) => ({ number: String(3000 + i), password: `pw-${3000 + i}` }));

function statusCode(message: string | undefined): number | undefined {
  const m = /^SIP\/2\.0 ([0-9]{3})/.exec(message ?? '');
  return m ? Number(m[1]) : undefined;
}

describe('registrar under more load than it may take', () => {
  let agent: AgentHandle;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-overload-'));
    agent = await startAgent({
      extensions: EXTENSIONS,
      extraConfig: {
        ...SIPP_AGENT_CONFIG,
        sip: {
          ...SIPP_AGENT_CONFIG.sip,
          // One load generator on one address: not a flood for the per-source limiter.
          security: { trusted_networks: ['127.0.0.0/8'] },
          // Busy 30 % of the time counts as overloaded: any machine gets there.
          registrar: { overload: { max_utilization: 0.3, retry_after: 10 } },
        },
      },
    });
  });

  after(async () => {
    await agent?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  test('new REGISTERs get 503 with Retry-After, challenged ones complete, and service resumes', async () => {
    const usersFile = await writeUsersFile(
      path.join(dir, 'users.csv'),
      EXTENSIONS.map((e) => ({ user: e.number, password: e.password })),
    );
    // A phone that keeps trying to register while the flood runs: what it is told.
    const probe = await UdpPeer.open();
    const probeAnswers: string[] = [];
    let probing = true;
    const probeLoop = (async () => {
      for (let n = 0; probing; n++) {
        const answer = await probe.exchange(registerRequest({ user: '3000', domain: agent.domain, localPort: probe.port, callId: `probe-${n}`, cseq: 1 }), agent.udpPort, 1000);
        if (answer !== undefined) probeAnswers.push(answer);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    let sipp;
    try {
      sipp = await runSipp({
        scenario: 'register-auth',
        remote: `127.0.0.1:${agent.udpPort}`,
        usersFile,
        calls: 8000,
        rate: 2000,
        limit: 4000,
        authUri: agent.domain,
        set: { domain: agent.domain, expires: 3600 },
        timeoutMs: 60_000,
      });
    } finally {
      probing = false;
      await probeLoop;
      probe.close();
    }

    const unexpected = unexpectedResponses(sipp);
    const shed = Object.entries(unexpected).filter(([k]) => k.endsWith('got 503')).reduce((a, [, n]) => a + n, 0);
    assert.ok(shed > 0, `SIPp saw no 503: ${JSON.stringify(unexpected)} ${JSON.stringify(sipp.failures)}`);
    assert.ok(sipp.successful > 0, 'registrations were still completed during the flood');
    for (const key of Object.keys(unexpected)) assert.match(key, /got (503|401|200)$/, `unexpected answer ${key}`);
    assert.ok(agent.running(), 'the agent survived');

    const probe503 = probeAnswers.filter((a) => statusCode(a) === 503);
    assert.ok(probe503.length > 0, `the probing phone was never told 503 (answers: ${probeAnswers.map(statusCode).join(',')})`);
    for (const answer of probe503) {
      const [retryAfter] = headerValuesOf(answer, 'Retry-After');
      assert.ok(retryAfter !== undefined && Number(retryAfter) >= 10 && Number(retryAfter) < 20, `Retry-After ${retryAfter}`);
    }

    const started = await agent.waitForLog((l) => l['event'] === 'registrar.overload_started', 1000);
    assert.equal(started['level'], 40, 'logged as a warning');
    assert.equal(started['shedding'], 'shed-new');
    const ended = await agent.waitForLog((l) => l['event'] === 'registrar.overload_ended', 15_000);
    assert.ok(Number(ended['shed']) > 0);

    // The flood is over: a phone registers normally again.
    const peer = await UdpPeer.open();
    try {
      const ok = await registerWithAuth(peer, agent.udpPort, { user: '3001', password: 'pw-3001', domain: agent.domain, expires: 600 });
      assert.equal(statusCode(ok), 200, ok?.split('\r\n')[0]);
    } finally {
      peer.close();
    }
  });
});
