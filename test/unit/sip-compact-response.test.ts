// What a completed non-INVITE transaction keeps for Timer J: the response without
// the lines a retransmitted request gives back, rebuilt byte for byte.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMessage } from '../../agent/sip/parse.ts';
import { makeResponse, serialize } from '../../agent/sip/serialize.ts';
import { compactResponse, expandResponse } from '../../agent/sip/transactions/compact-response.ts';
import type { SipRequest } from '../../agent/sip/types.ts';

function register(opts: { received?: string; rport?: string; toTag?: string } = {}): SipRequest {
  const raw =
    'REGISTER sip:pbx.test SIP/2.0\r\n' +
    'Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-77-1-2;rport\r\n' +
    'Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKproxy\r\n' +
    'Max-Forwards: 70\r\n' +
    'From: "Desk" <sip:1001@pbx.test>;tag=77SIPpTag001\r\n' +
    `To: <sip:1001@pbx.test>${opts.toTag === undefined ? '' : `;tag=${opts.toTag}`}\r\n` +
    'Call-ID: 1-77@192.168.1.20\r\n' +
    'CSeq: 2 REGISTER\r\n' +
    'Contact: <sip:1001@192.168.1.20:5060>\r\n' +
    'Content-Length: 0\r\n\r\n';
  const parsed = parseMessage(Buffer.from(raw));
  if (!parsed.ok || parsed.message.kind !== 'request') throw new Error('fixture does not parse');
  const via = parsed.message.headers.via[0];
  if (via !== undefined) {
    via.params['received'] = opts.received ?? '192.168.1.20';
    via.params['rport'] = opts.rport ?? '5060';
  }
  return parsed.message;
}

const extras = { toTag: 'reg', headers: { Date: 'Sun, 22 Nov 2026 09:00:00 GMT', Contact: ['<sip:1001@192.168.1.20:5060>;expires=300'] } };

describe('completed responses kept without the lines copied from the request', () => {
  it('keep under half of a 200 OK to a REGISTER and rebuild it byte for byte from a retransmission', () => {
    const res = makeResponse(register(), 200, 'OK', extras);
    const bytes = serialize(res);
    const kept = compactResponse(register(), res, bytes);
    assert.ok(kept.length < bytes.length / 2, `${kept.length} of ${bytes.length} bytes kept`);
    assert.ok(!kept.toString('latin1').includes('Call-ID'), 'the copied lines are not kept');
    assert.equal(expandResponse(kept, register())?.toString('latin1'), bytes.toString('latin1'));
  });

  it('keep an in-dialog request\'s own To tag, and a response with a body', () => {
    const res = makeResponse(register({ toTag: 'dlg1' }), 202, 'Accepted', { toTag: 'ignored', content: 'hello', headers: { 'Content-Type': 'text/plain' } });
    const bytes = serialize(res);
    const kept = compactResponse(register({ toTag: 'dlg1' }), res, bytes);
    assert.ok(kept.length < bytes.length);
    assert.equal(expandResponse(kept, register({ toTag: 'dlg1' }))?.toString('latin1'), bytes.toString('latin1'));
  });

  it('keep the whole response when the TU replaced a copied header', () => {
    const res = makeResponse(register(), 200, 'OK', { toTag: 'reg', headers: { 'Call-ID': 'something-else' } });
    const bytes = serialize(res);
    const kept = compactResponse(register(), res, bytes);
    assert.equal(kept.length, bytes.length + 1);
    assert.equal(expandResponse(kept, register())?.toString('latin1'), bytes.toString('latin1'));
  });

  it('address a retransmission that came from another port (NAT rebinding) to where it came from', () => {
    const res = makeResponse(register(), 200, 'OK', extras);
    const kept = compactResponse(register(), res, serialize(res));
    const again = expandResponse(kept, register({ rport: '40000' }))?.toString('latin1') ?? '';
    assert.match(again, /^SIP\/2\.0 200 OK\r\nVia: SIP\/2\.0\/UDP 192\.168\.1\.20:5060;branch=z9hG4bK-77-1-2;rport=40000;received=192\.168\.1\.20\r\n/);
    assert.match(again, /Contact: <sip:1001@192\.168\.1\.20:5060>;expires=300\r\n/);
  });
});
