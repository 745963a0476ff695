// INVITE with Replaces (RFC 3891) through the agent (features/invite-replaces.ts):
// a SIPp caller talks to phone A (a raw UDP phone, so the test knows A's dialog
// with the agent); phone X then sends an INVITE whose Replaces names that dialog.
// X gets the 200, A gets a BYE saying it was replaced, the caller goes on with X
// (direct media: its phone is re-INVITEd with X's offer) and its BYE reaches X.
// A Replaces naming no dialog gets 481.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startAgent, type AgentHandle, type ExtensionSpec } from '../helpers/agent.ts';
import { headerOf, statusOf } from '../helpers/raw-sip.ts';
import { authorization, challengesOf, registerWithAuth, UdpPeer } from '../helpers/sip-client.ts';
import { describeCall, runCall } from '../helpers/sipp-calls.ts';
import { logValues, SIPP_AGENT_CONFIG } from '../helpers/sipp.ts';

const EXTENSIONS: ExtensionSpec[] = ['1001', '2701', '2702'].map((number) => ({ number, password: `secret-${number}` }));
const password = (n: string): string => `secret-${n}`;

const SDP = (port: number): string =>
  ['v=0', `o=- ${port} 1 IN IP4 127.0.0.1`, 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', `m=audio ${port} RTP/AVP 0`, 'a=rtpmap:0 PCMU/8000', 'a=sendrecv', ''].join('\r\n');

/** A response to `req` (its Via, From, To, Call-ID, CSeq), with a To tag and optional SDP. */
function answerTo(req: string, status: string, toTag: string, contact: string, sdp = ''): string {
  const h = (name: string): string => headerOf(req, name) ?? '';
  const to = h('To');
  const lines = [
    `SIP/2.0 ${status}`,
    `Via: ${h('Via')}`,
    `From: ${h('From')}`,
    `To: ${/;tag=/.test(to) ? to : `${to};tag=${toTag}`}`,
    `Call-ID: ${h('Call-ID')}`,
    `CSeq: ${h('CSeq')}`,
    `Contact: <${contact}>`,
  ];
  if (sdp !== '') lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${Buffer.byteLength(sdp, 'latin1')}`, '', sdp);
  return lines.join('\r\n');
}

/** Waits for the next message that `match` accepts; fails the test after timeoutMs. */
async function expectMessage(peer: UdpPeer, match: (m: string) => boolean, what: string, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await peer.next(Math.max(1, deadline - Date.now()));
    if (m === undefined) throw new Error(`no ${what} within ${timeoutMs} ms`);
    if (match(m)) return m;
  }
}

const isRequest = (method: string) => (m: string): boolean => m.startsWith(`${method} `);

for (const policy of ['direct', 'anchored'] as const) {
  describe(`INVITE with Replaces (${policy} media)`, () => {
    let agent: AgentHandle;
    let a: UdpPeer;
    let x: UdpPeer;

    before(async () => {
      agent = await startAgent({ extensions: EXTENSIONS, extraConfig: { ...SIPP_AGENT_CONFIG, media: { policy, bind_address: '127.0.0.1' } } });
      a = await UdpPeer.open();
      x = await UdpPeer.open();
    });

    after(async () => {
      a?.close();
      x?.close();
      await agent?.cleanup();
    });

    /** X's INVITE (with Replaces), answering the agent's 407; resolves with the final response. */
    async function inviteFromX(replaces: string): Promise<{ final: string; invite: string }> {
      const uri = `sip:2701@${agent.domain}`;
      const callId = `replaces-${randomUUID()}@127.0.0.1`;
      const build = (cseq: number, auth?: string): string => {
        const sdp = SDP(x.port + 1000);
        return [
          `INVITE ${uri} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${x.port};branch=z9hG4bK-x-${cseq}-${randomUUID()};rport`,
          'Max-Forwards: 70',
          `From: <sip:2702@${agent.domain}>;tag=x-tag`,
          `To: <${uri}>`,
          `Call-ID: ${callId}`,
          `CSeq: ${cseq} INVITE`,
          `Contact: <sip:2702@127.0.0.1:${x.port}>`,
          `Replaces: ${replaces}`,
          'Supported: replaces',
          ...(auth ? [`Proxy-Authorization: ${auth}`] : []),
          'Content-Type: application/sdp',
          `Content-Length: ${sdp.length}`,
          '',
          sdp,
        ].join('\r\n');
      };
      const first = await x.exchange(build(1), agent.udpPort, 5000);
      assert.equal(statusOf(first ?? ''), 407, `X's first INVITE: ${first}`);
      x.send(`ACK ${uri} SIP/2.0\r\nVia: ${headerOf(first ?? '', 'Via')}\r\nFrom: ${headerOf(first ?? '', 'From')}\r\nTo: ${headerOf(first ?? '', 'To')}\r\nCall-ID: ${callId}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n`, agent.udpPort);
      const challenge = challengesOf(first ?? '')[0];
      assert.ok(challenge, 'a digest challenge');
      const invite = build(2, authorization({ challenge, username: '2702', password: password('2702'), method: 'INVITE', uri }));
      const final = await x.exchange(invite, agent.udpPort, 10_000);
      return { final: final ?? '', invite };
    }

    test('a phone takes over a party of an answered call; the replaced phone gets a BYE', async () => {
      const registered = await registerWithAuth(a, agent.udpPort, { user: '2701', password: password('2701'), domain: agent.domain });
      assert.equal(statusOf(registered ?? ''), 200);
      // The caller: SIPp; direct media re-INVITEs it with X's offer.
      const caller = runCall({
        server: `127.0.0.1:${agent.udpPort}`,
        domain: agent.domain,
        caller: { user: '1001', password: password('1001') },
        callee: '2701',
        callerScenario: policy === 'direct' ? 'uac-transferred' : 'call-uac',
        callerExtraArgs: ['-d', '3000'],
        callees: [],
        timeoutMs: 25_000,
      });
      // Phone A answers, and so learns its dialog with the agent.
      const invite = await expectMessage(a, isRequest('INVITE'), 'INVITE at phone A');
      const contact = `sip:2701@127.0.0.1:${a.port}`;
      a.send(answerTo(invite, '180 Ringing', 'a-tag', contact), agent.udpPort);
      a.send(answerTo(invite, '200 OK', 'a-tag', contact, SDP(a.port + 1000)), agent.udpPort);
      await expectMessage(a, isRequest('ACK'), 'ACK at phone A');
      const agentTag = /;tag=([^;>\s]+)/.exec(headerOf(invite, 'From') ?? '')?.[1] ?? '';
      const dialogCallId = headerOf(invite, 'Call-ID') ?? '';

      // X replaces A: the dialog as A sees it (to-tag: A's, from-tag: the agent's).
      const { final } = await inviteFromX(`${dialogCallId};to-tag=a-tag;from-tag=${agentTag}`);
      assert.equal(statusOf(final), 200, `X's INVITE with Replaces: ${final}`);
      assert.match(final, /m=audio [0-9]+ RTP\/AVP/);
      x.send(
        `ACK ${/Contact: <([^>]+)>/.exec(final)?.[1] ?? ''} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${x.port};branch=z9hG4bK-x-ack-${randomUUID()};rport\r\nFrom: ${headerOf(final, 'From')}\r\nTo: ${headerOf(final, 'To')}\r\nCall-ID: ${headerOf(final, 'Call-ID')}\r\nCSeq: 2 ACK\r\nContent-Length: 0\r\n\r\n`,
        agent.udpPort,
      );
      const bye = await expectMessage(a, isRequest('BYE'), 'BYE at the replaced phone');
      assert.match(headerOf(bye, 'Reason') ?? '', /replaced/i);
      a.send(answerTo(bye, '200 OK', 'a-tag', contact), agent.udpPort);

      // The caller hangs up: its BYE reaches X, the newcomer.
      const xBye = await expectMessage(x, isRequest('BYE'), 'BYE at the replacing phone', 15_000);
      x.send(answerTo(xBye, '200 OK', 'x-tag', `sip:2702@127.0.0.1:${x.port}`), agent.udpPort);
      const r = await caller;
      assert.equal(r.caller.successful, 1, describeCall(r));
      if (policy === 'direct') assert.deepEqual(logValues(r.caller, 'reinvite-offer'), ['yes']);
    });

    test('a Replaces naming no dialog gets 481', async () => {
      const { final } = await inviteFromX('no-such-call@127.0.0.1;to-tag=1;from-tag=2');
      assert.equal(statusOf(final), 481, final);
    });
  });
}
