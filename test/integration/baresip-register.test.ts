// A real desk phone (baresip 1.0) registering to the agent: the binding appears with
// the phone's user agent, is refreshed in place, and goes away when the phone shuts
// down. baresip cannot answer SHA-256 challenges, so this agent challenges with MD5.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { agentStatus, bindingsOf, startAgent, type AgentHandle } from '../helpers/agent.ts';
import { startBaresip, type BaresipHandle } from '../helpers/baresip.ts';
import { SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('baresip as a desk phone', () => {
  let agent: AgentHandle;
  const phones: BaresipHandle[] = [];

  before(async () => {
    agent = await startAgent({
      extensions: [
        { number: '1001', name: 'Alice', password: 'secret1001' },
        { number: '1002', name: 'Bob', password: 'secret1002' },
      ],
      // A 4 s registration interval lets the test watch a refresh.
      registrar: { min_expires: 2 },
      extraConfig: SIPP_AGENT_CONFIG,
    });
  });

  after(async () => {
    for (const p of phones) await p.cleanup();
    await agent?.cleanup();
  });

  test('registers, refreshes the same binding, and unregisters when shut down', async () => {
    const phone = await startBaresip({
      account: { user: '1001', password: 'secret1001', registrar: `127.0.0.1:${agent.udpPort}`, domain: agent.domain, regint: 4 },
    });
    phones.push(phone);
    await phone.waitForEvent((e) => e['type'] === 'REGISTER_OK', 5000);

    const [binding, ...others] = bindingsOf(await agentStatus(agent.configPath), '1001');
    assert.ok(binding, 'binding present after REGISTER_OK');
    assert.equal(others.length, 0);
    assert.match(binding.user_agent ?? '', /^baresip v1\.0\.0/);
    assert.match(binding.contact, new RegExp(`^sip:1001[^@]*@127\\.0\\.0\\.1:${phone.sipPort}`));
    assert.equal(binding.transport, 'udp');
    assert.ok(binding.expires_in > 0 && binding.expires_in <= 4, `expires_in ${binding.expires_in}`);

    // baresip refreshes at ~90 % of the interval: wait for the second 200 OK.
    const refreshedBy = Date.now() + 6000;
    while (phone.events().filter((e) => e['type'] === 'REGISTER_OK').length < 2) {
      assert.ok(Date.now() < refreshedBy, 'baresip refreshed its registration within 6 s');
      await sleep(100);
    }
    const refreshed = bindingsOf(await agentStatus(agent.configPath), '1001');
    assert.equal(refreshed.length, 1, 'refreshed in place, not duplicated');
    assert.equal(refreshed[0]?.contact, binding.contact);
    // The refresh came at ~3.6 s of a 4 s binding: 1.5 s later only the refresh keeps it.
    await sleep(1500);
    assert.equal(bindingsOf(await agentStatus(agent.configPath), '1001').length, 1, 'alive past its first expiry');

    const stopped = await phone.stop();
    assert.equal(stopped.killed, false, 'baresip stopped on SIGTERM');
    assert.deepEqual(bindingsOf(await agentStatus(agent.configPath), '1001'), [], 'unregistered on shutdown');
  });

  test('a phone with the wrong password is refused and gets no binding', async () => {
    const phone = await startBaresip({
      account: { user: '1002', password: 'wrong-password', registrar: `127.0.0.1:${agent.udpPort}`, domain: agent.domain, regint: 60 },
    });
    phones.push(phone);
    const failed = await phone.waitForEvent((e) => e['type'] === 'REGISTER_FAIL', 5000);
    assert.match(String(failed['param']), /^403\b/);
    assert.deepEqual(bindingsOf(await agentStatus(agent.configPath), '1002'), []);
  });
});
