// The agent facing hostile traffic: scanners, password guessing, floods, oversized
// messages. Each case checks what an attacker sees on the wire and what the operator
// sees in the log, and that a legitimate phone is still served afterwards.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle } from '../helpers/agent.ts';
import { statusOf } from '../helpers/raw-sip.ts';
import { authorization, challengesOf, optionsRequest, registerRequest, registerWithAuth, UdpPeer } from '../helpers/sip-client.ts';

const domain = 'branchline.test';

describe('defence', () => {
  let agent: AgentHandle;

  before(async () => {
    agent = await startAgent({
      domain,
      extensions: [
        { number: '1001', password: 'right-password' },
        { number: '1002', password: 'other-password' },
      ],
      extraConfig: {
        sip: {
          max_message_bytes: 4096,
          security: { rate_limit: { requests_per_second: 5, burst: 10 }, lockout: { failures: 3, window: 60, duration: 600 } },
        },
      },
    });
  });

  after(async () => {
    await agent?.cleanup();
  });

  test('a scanner user agent gets no answer; a phone from the same address does', async () => {
    const peer = await UdpPeer.open('127.0.0.10');
    try {
      const scanned = await peer.exchange(optionsRequest({ domain, localPort: peer.port, userAgent: 'friendly-scanner' }), agent.udpPort, 700);
      assert.equal(scanned, undefined);
      const normal = await peer.exchange(optionsRequest({ domain, localPort: peer.port }), agent.udpPort);
      assert.equal(statusOf(normal ?? ''), 200);
      await agent.waitForLog((l) => l['event'] === 'security.scanner' && l['source'] === '127.0.0.10', 2000);
    } finally {
      peer.close();
    }
  });

  test('repeated wrong passwords lock the source out with an actionable log line', async () => {
    const attacker = await UdpPeer.open('127.0.0.11');
    const phone = await UdpPeer.open('127.0.0.12');
    try {
      for (let i = 0; i < 3; i++) {
        const res = await registerWithAuth(attacker, agent.udpPort, { user: '1001', password: `guess-${i}`, domain });
        assert.equal(statusOf(res ?? ''), 403, `attempt ${i} answered ${res?.split('\r\n')[0]}`);
      }
      const line = await agent.waitForLog((l) => l['event'] === 'security.lockout', 2000);
      assert.equal(line['source'], '127.0.0.11');
      assert.equal(line['extension'], '1001');
      assert.match(String(line['msg']), /locked out until .* after 3 failed authentications.*trusted_networks/);
      assert.ok(!JSON.stringify(agent.logs()).includes('right-password'), 'the password never reaches the log');
      // Locked out: even a correct password from that address is not answered.
      assert.equal(await registerWithAuth(attacker, agent.udpPort, { user: '1001', password: 'right-password', domain }), undefined);
      // The real phone elsewhere is unaffected.
      const ok = await registerWithAuth(phone, agent.udpPort, { user: '1001', password: 'right-password', domain });
      assert.equal(statusOf(ok ?? ''), 200);
    } finally {
      attacker.close();
      phone.close();
    }
  });

  test('credentials for another extension are refused', async () => {
    const peer = await UdpPeer.open('127.0.0.13');
    try {
      const challenge = await peer.exchange(registerRequest({ user: '1001', domain, localPort: peer.port }), agent.udpPort);
      const c = challengesOf(challenge ?? '')[0];
      assert.ok(c);
      const auth = authorization({ challenge: c, username: '1002', password: 'other-password', method: 'REGISTER', uri: `sip:${domain}` });
      const res = await peer.exchange(registerRequest({ user: '1001', domain, localPort: peer.port, auth, cseq: 2 }), agent.udpPort);
      assert.equal(statusOf(res ?? ''), 403);
    } finally {
      peer.close();
    }
  });

  test('a flood from one source is cut to its rate; other sources keep being served', async () => {
    const flooder = await UdpPeer.open('127.0.0.14');
    const other = await UdpPeer.open('127.0.0.15');
    try {
      for (let i = 0; i < 60; i++) flooder.send(optionsRequest({ domain, localPort: flooder.port }), agent.udpPort);
      let answered = 0;
      while ((await flooder.next(500)) !== undefined) answered++;
      assert.ok(answered >= 10 && answered <= 13, `answered ${answered} of 60 (burst 10, 5/s)`);
      const res = await other.exchange(optionsRequest({ domain, localPort: other.port }), agent.udpPort);
      assert.equal(statusOf(res ?? ''), 200);
      await agent.waitForLog((l) => l['event'] === 'security.rate_limited' && l['source'] === '127.0.0.14', 2000);
    } finally {
      flooder.close();
      other.close();
    }
  });

  test('a message over max_message_bytes is dropped, the next one answered', async () => {
    const peer = await UdpPeer.open('127.0.0.16');
    try {
      const big = optionsRequest({ domain, localPort: peer.port, extraHeaders: [`X-Padding: ${'a'.repeat(5000)}`] });
      assert.equal(await peer.exchange(big, agent.udpPort, 700), undefined);
      const res = await peer.exchange(optionsRequest({ domain, localPort: peer.port }), agent.udpPort);
      assert.equal(statusOf(res ?? ''), 200);
      assert.ok(agent.running());
    } finally {
      peer.close();
    }
  });
});

describe('per-extension digest algorithms', () => {
  test('an extension set to MD5 is challenged with MD5 only; the others with SHA-256 first', async () => {
    const agent = await startAgent({
      domain,
      extensions: [
        { number: '2001', password: 'legacy-phone-pw' },
        { number: '2002', password: 'modern-phone-pw' },
      ],
      extraConfig: { extensions: [{ number: '2001', password: 'legacy-phone-pw', auth_algorithms: ['MD5'] }, { number: '2002', password: 'modern-phone-pw' }] },
    });
    const peer = await UdpPeer.open();
    try {
      const legacy = await peer.exchange(registerRequest({ user: '2001', domain, localPort: peer.port }), agent.udpPort);
      assert.deepEqual(challengesOf(legacy ?? '').map((c) => c.algorithm), ['MD5']);
      const modern = await peer.exchange(registerRequest({ user: '2002', domain, localPort: peer.port }), agent.udpPort);
      assert.deepEqual(challengesOf(modern ?? '').map((c) => c.algorithm), ['SHA-256', 'MD5']);
      const ok = await registerWithAuth(peer, agent.udpPort, { user: '2001', password: 'legacy-phone-pw', domain, algorithm: 'MD5' });
      assert.equal(statusOf(ok ?? ''), 200);
    } finally {
      peer.close();
      await agent.cleanup();
    }
  });
});
