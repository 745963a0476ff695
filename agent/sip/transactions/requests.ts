// Requests the transaction layer derives from an INVITE it sent: the ACK for a
// non-2xx final (17.1.1.3) and CANCEL (9.1). Both reuse the INVITE's top Via (so
// they carry its branch), Request-URI, Call-ID, From, CSeq number and Route set:
// a proxy on the path routes them exactly as it routed the INVITE.

import type { SipHeaders, SipRequest, SipResponse, Via } from '../types.ts';

function copyVia(via: Via): Via {
  const params = Object.assign(Object.create(null) as Via['params'], via.params);
  const copy: Via = { version: via.version, protocol: via.protocol, host: via.host, params };
  if (via.port !== undefined) copy.port = via.port;
  return copy;
}

function derived(invite: SipRequest, method: 'ACK' | 'CANCEL', to: SipHeaders['to']): SipRequest {
  const top = invite.headers.via[0];
  if (top === undefined) throw new TypeError('INVITE without Via');
  const headers: SipHeaders = {
    via: [copyVia(top)],
    to,
    from: invite.headers.from,
    'call-id': invite.headers['call-id'],
    cseq: { seq: invite.headers.cseq.seq, method },
    'max-forwards': '70',
  };
  if (invite.headers.route !== undefined && invite.headers.route.length > 0) headers.route = invite.headers.route;
  return { kind: 'request', method, uri: invite.uri, version: invite.version, headers, content: '' };
}

/** 17.1.1.3: To from the response (it carries the UAS tag), everything else from the INVITE. */
export function buildAckForNon2xx(invite: SipRequest, response: SipResponse): SipRequest {
  return derived(invite, 'ACK', response.headers.to);
}

/** 9.1: same To as the INVITE (no tag added), CSeq method CANCEL. */
export function buildCancel(invite: SipRequest): SipRequest {
  return derived(invite, 'CANCEL', invite.headers.to);
}
