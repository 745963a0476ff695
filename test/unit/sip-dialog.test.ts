// The dialog layer (RFC 3261 §12) on real parsed messages: ids and tags both ways,
// CSeq rules, route sets (reversed on the UAC side), target refresh, and the bytes
// of the in-dialog requests it builds.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Dialog, DialogError, dialogIdOfRequest, endpointOfUri } from '../../agent/sip/dialog.ts';
import { parseMessage } from '../../agent/sip/parse.ts';
import { serialize } from '../../agent/sip/serialize.ts';
import type { SipRequest, SipResponse } from '../../agent/sip/types.ts';

function parse(text: string): SipRequest | SipResponse {
  const outcome = parseMessage(Buffer.from(text.replace(/\n/g, '\r\n'), 'latin1'));
  if (!outcome.ok) throw new Error(`fixture does not parse: ${outcome.detail}`);
  return outcome.message;
}

const invite = parse(`INVITE sip:1002@branchline.test SIP/2.0
Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bK-a1;rport
Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>
From: "Alice" <sip:1001@branchline.test>;tag=alice-tag
To: <sip:1002@branchline.test>
Call-ID: call-1@10.0.0.5
CSeq: 7 INVITE
Contact: <sip:1001@10.0.0.5:5062;transport=udp>
Max-Forwards: 70
Content-Length: 0

`) as SipRequest;

describe('UAS dialog', () => {
  test('takes its ids, remote CSeq, target and route set from the INVITE', () => {
    const d = Dialog.asUas(invite, 'our-tag', 'sip:agent@10.0.0.1:5060');
    assert.equal(d.callId, 'call-1@10.0.0.5');
    assert.equal(d.localTag, 'our-tag');
    assert.equal(d.remoteTag, 'alice-tag');
    assert.equal(d.remoteSeq, 7);
    assert.equal(d.remoteTarget, 'sip:1001@10.0.0.5:5062;transport=udp');
    assert.deepEqual(d.routeSet.map((r) => r.uri), ['sip:p1.example;lr', 'sip:p2.example;lr']);
    assert.equal(d.state, 'early');
  });

  test('builds a BYE that reverses the tags, counts its own CSeq and follows the route set', () => {
    const d = Dialog.asUas(invite, 'our-tag', 'sip:agent@10.0.0.1:5060');
    d.confirm();
    const bye = d.createRequest('BYE', { headers: { Reason: 'SIP;cause=200;text="Call completed"' } });
    const text = serialize(bye).toString('latin1');
    assert.match(text, /^BYE sip:1001@10\.0\.0\.5:5062;transport=udp SIP\/2\.0\r\n/);
    assert.match(text, /\r\nFrom: <sip:1002@branchline\.test>;tag=our-tag\r\n/);
    assert.match(text, /\r\nTo: "Alice" <sip:1001@branchline\.test>;tag=alice-tag\r\n/);
    assert.match(text, /\r\nCSeq: 1 BYE\r\n/);
    assert.match(text, /\r\nRoute: <sip:p1\.example;lr>, <sip:p2\.example;lr>\r\n/);
    assert.match(text, /\r\nReason: SIP;cause=200;text="Call completed"\r\n/);
    assert.doesNotMatch(text, /\r\nContact:/, 'BYE carries no Contact');
    assert.equal(d.createRequest('INFO').headers.cseq.seq, 2);
  });

  test('accepts in-dialog requests in CSeq order, refuses a lower one with 500, refreshes the target on re-INVITE', () => {
    const d = Dialog.asUas(invite, 'our-tag', 'sip:agent@10.0.0.1:5060');
    const reinvite = parse(`INVITE sip:agent@10.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.6:5062;branch=z9hG4bK-a2
From: "Alice" <sip:1001@branchline.test>;tag=alice-tag
To: <sip:1002@branchline.test>;tag=our-tag
Call-ID: call-1@10.0.0.5
CSeq: 8 INVITE
Contact: <sip:1001@10.0.0.6:5062>
Content-Length: 0

`) as SipRequest;
    assert.equal(dialogIdOfRequest(reinvite), d.id);
    assert.ok(d.matches(reinvite));
    d.receiveRequest(reinvite);
    assert.equal(d.remoteSeq, 8);
    assert.equal(d.remoteTarget, 'sip:1001@10.0.0.6:5062');
    assert.throws(() => d.receiveRequest(reinvite), (err: unknown) => err instanceof DialogError && err.status === 500);
    d.terminate();
    const later = { ...reinvite, headers: { ...reinvite.headers, cseq: { seq: 9, method: 'BYE' } }, method: 'BYE' };
    assert.throws(() => d.receiveRequest(later), (err: unknown) => err instanceof DialogError && err.status === 481);
  });

  test('refuses a request without Contact or From tag with 400', () => {
    const noContact = { ...invite, headers: { ...invite.headers, contact: undefined } } as SipRequest;
    assert.throws(() => Dialog.asUas(noContact, 't', 'sip:a@1.2.3.4'), (err: unknown) => err instanceof DialogError && err.status === 400);
  });
});

describe('UAC dialog', () => {
  const ours = parse(`INVITE sip:1002@10.0.0.7:5064 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-b1
From: <sip:1001@branchline.test>;tag=b-leg-tag
To: <sip:1002@branchline.test>
Call-ID: b-leg-call
CSeq: 1 INVITE
Contact: <sip:agent@10.0.0.1:5060>
Content-Length: 0

`) as SipRequest;
  const ringing = parse(`SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-b1
Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>
From: <sip:1001@branchline.test>;tag=b-leg-tag
To: <sip:1002@branchline.test>;tag=bob-tag
Call-ID: b-leg-call
CSeq: 1 INVITE
Contact: <sip:1002@10.0.0.7:5064>
Content-Length: 0

`) as SipResponse;

  test('an early dialog from a 1xx, confirmed by the 2xx; route set reversed', () => {
    const d = Dialog.asUac(ours, ringing, 'sip:agent@10.0.0.1:5060');
    assert.equal(d.state, 'early');
    assert.equal(d.localTag, 'b-leg-tag');
    assert.equal(d.remoteTag, 'bob-tag');
    assert.equal(d.localSeq, 1);
    assert.deepEqual(d.routeSet.map((r) => r.uri), ['sip:p1.example;lr', 'sip:p2.example;lr']);
    const ok = { ...ringing, status: 200, reason: 'OK', headers: { ...ringing.headers, contact: [{ uri: 'sip:1002@10.0.0.8:5064', params: Object.create(null) }] } } as SipResponse;
    d.confirm(ok);
    assert.equal(d.state, 'confirmed');
    assert.equal(d.remoteTarget, 'sip:1002@10.0.0.8:5064');
  });

  test('ACK for a 2xx reuses the INVITE CSeq; a re-INVITE takes the next one and carries Contact and body', () => {
    const d = Dialog.asUac(ours, { ...ringing, status: 200 }, 'sip:agent@10.0.0.1:5060');
    const ack = d.ack(1, { body: 'v=0\r\n' });
    assert.deepEqual(ack.headers.cseq, { seq: 1, method: 'ACK' });
    assert.equal(ack.headers['content-type'], 'application/sdp');
    const re = d.createRequest('INVITE', { body: 'v=0\r\n' });
    const text = serialize(re).toString('latin1');
    assert.match(text, /\r\nCSeq: 2 INVITE\r\n/);
    assert.match(text, /\r\nContact: <sip:agent@10\.0\.0\.1:5060>\r\n/);
    assert.match(text, /\r\nFrom: <sip:1001@branchline\.test>;tag=b-leg-tag\r\n/);
    assert.match(text, /\r\nTo: <sip:1002@branchline\.test>;tag=bob-tag\r\n/);
    assert.throws(() => d.createRequest('ACK'), DialogError);
  });

  test('next hop: the flow when known, else the first route, else the target; host names refused', () => {
    const d = Dialog.asUac(ours, { ...ringing, status: 200, headers: { ...ringing.headers, 'record-route': undefined } }, 'sip:agent@10.0.0.1:5060');
    assert.deepEqual(d.nextHop(), { transport: 'udp', address: '10.0.0.7', port: 5064 });
    d.flow = { transport: 'udp', address: '192.0.2.9', port: 40000 };
    assert.deepEqual(d.nextHop(), { transport: 'udp', address: '192.0.2.9', port: 40000 });
    const routed = Dialog.asUac(ours, ringing, 'sip:agent@10.0.0.1:5060');
    assert.throws(() => routed.nextHop(), DialogError, 'p1.example is a host name');
    assert.deepEqual(endpointOfUri('sip:x@[2001:db8::1]:5070;transport=TCP'), { transport: 'tcp', address: '2001:db8::1', port: 5070 });
  });

  test('a response without a To tag creates no dialog', () => {
    const trying = { ...ringing, status: 100, headers: { ...ringing.headers, to: { uri: 'sip:1002@branchline.test', params: Object.create(null) } } } as SipResponse;
    assert.throws(() => Dialog.asUac(ours, trying, 'sip:a@1.2.3.4'), DialogError);
  });
});
