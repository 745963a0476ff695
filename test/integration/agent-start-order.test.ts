// Start order (docs/decisions/0010, "Start order"): the agent answers REGISTER as soon
// as the store, security and the registrar are ready, and starts its other
// subsystems after. A phone calling or subscribing meanwhile gets 503 with
// Retry-After, never an error or silence; once the agent is ready, the same requests
// get their real answer. A real UDP client sends from before the agent is spawned.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAgent } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { registerRequest, UdpPeer } from '../helpers/sip-client.ts';

const DOMAIN = 'branchline.test';

function request(method: 'INVITE' | 'SUBSCRIBE', n: number, localPort: number): string {
  const sdp = method === 'INVITE' ? 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n' : '';
  const lines = [
    `${method} sip:${method === 'INVITE' ? '1002' : '1001'}@${DOMAIN} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${localPort};branch=z9hG4bK-start-${method}-${n};rport`,
    'Max-Forwards: 70',
    `From: <sip:1001@${DOMAIN}>;tag=f${n}`,
    `To: <sip:${method === 'INVITE' ? '1002' : '1001'}@${DOMAIN}>`,
    `Call-ID: start-${method}-${n}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:1001@127.0.0.1:${localPort}>`,
    ...(method === 'SUBSCRIBE' ? ['Event: message-summary', 'Accept: application/simple-message-summary', 'Expires: 60'] : ['Content-Type: application/sdp']),
    `Content-Length: ${Buffer.byteLength(sdp)}`,
  ];
  return `${lines.join('\r\n')}\r\n\r\n${sdp}`;
}

test('REGISTER is answered before the agent is ready; INVITE and SUBSCRIBE get 503 with Retry-After until it is, then their real answer', async () => {
  const port = await freeUdpTcpPort();
  const peer = await UdpPeer.open();
  // Enough extensions that the subsystems' start after SIP is not instantaneous.
  const extensions = Array.from({ length: 2000 }, (_, i) => ({ number: String(1001 + i), password: `secret-${1001 + i}` }));
  const answers: Array<{ at: number; method: string; status: number; retryAfter: boolean }> = [];
  let n = 0;
  const timer = setInterval(() => {
    n++;
    peer.send(registerRequest({ user: '1001', domain: DOMAIN, localPort: peer.port, callId: `start-REGISTER-${n}` }), port);
    peer.send(request('INVITE', n, peer.port), port);
    peer.send(request('SUBSCRIBE', n, peer.port), port);
  }, 5);
  let reading = true;
  const seen = new Set<string>();
  const reader = (async () => {
    while (reading) {
      const m = await peer.next(200);
      if (m === undefined) continue;
      const status = /^SIP\/2\.0 (\d{3}) /.exec(m);
      const cseq = /^CSeq: \d+ (\w+)/im.exec(m);
      const callId = /^Call-ID: (\S+)/im.exec(m)?.[1] ?? '';
      // The final answer to each request, once: a final response to an INVITE is
      // retransmitted until ACKed (RFC 3261 Timer G), and this client never ACKs.
      if (seen.has(callId) || !status || Number(status[1]) < 200) continue;
      seen.add(callId);
      if (status && cseq) answers.push({ at: performance.now(), method: cseq[1]!, status: Number(status[1]), retryAfter: /^Retry-After: \d+/im.test(m) });
    }
  })();
  const agent = await startAgent({
    extensions,
    udpPort: port,
    tcpPort: port,
    domain: DOMAIN,
    // One client sending hundreds of requests a second: exempt from the per-source limits.
    extraConfig: { sip: { security: { trusted_networks: ['127.0.0.0/8'] } } },
  });
  const readyAt = performance.now();
  try {
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(timer);
    await new Promise((r) => setTimeout(r, 300));
    reading = false;
    await reader;

    const listening = agent.logs().find((l) => l['event'] === 'sip.listening');
    assert.ok(listening, 'sip.listening logged');
    assert.ok(Number(listening['startupMs']) <= Number(agent.ready['startupMs']), 'SIP listened before the agent was ready');
    const firstRegister = answers.find((a) => a.method === 'REGISTER');
    assert.equal(firstRegister?.status, 401, 'the first REGISTER answered with a challenge');
    assert.ok(firstRegister.at < readyAt, 'a REGISTER was answered before agent.ready');

    // Before ready: 503 with Retry-After, or (once the subsystem is up) its real answer; never a 500 or other failure.
    for (const a of answers.filter((x) => x.method !== 'REGISTER')) {
      if (a.status === 503) assert.ok(a.retryAfter, `${a.method} 503 without Retry-After`);
      else assert.ok(a.status < 500, `${a.method} answered ${a.status}`);
    }
    assert.ok(answers.some((a) => a.method !== 'REGISTER' && a.status === 503 && a.at < readyAt), 'a request was refused with 503 while the subsystems started');
    // After ready: the call core challenges the INVITE, voicemail answers the SUBSCRIBE (a challenge, or why not).
    const after = answers.filter((a) => a.at > readyAt + 50);
    assert.ok(after.some((a) => a.method === 'INVITE' && (a.status === 401 || a.status === 407)), 'INVITE challenged once ready');
    assert.ok(after.some((a) => a.method === 'SUBSCRIBE' && a.status !== 503), 'SUBSCRIBE served once ready');
    assert.deepEqual(after.filter((a) => a.status === 503).map((a) => a.method), [], 'no 503 once ready');
    assert.ok(agent.running());
  } finally {
    clearInterval(timer);
    reading = false;
    peer.close();
    await agent.cleanup();
  }
});
