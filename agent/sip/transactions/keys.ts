// Transaction matching keys (RFC 3261 17.1.3 and 17.2.3), as flat strings.

import { hasMagicCookie } from '../branch.ts';
import { bareHost } from '../transport.ts';
import type { SipRequest, SipResponse } from '../types.ts';

const SEP = '\u0001';

function tagOf(params: Record<string, string | null> | undefined): string {
  const tag = params?.['tag'];
  return typeof tag === 'string' ? tag : '';
}

/**
 * The server transaction a request belongs to. ACK belongs to the INVITE's
 * transaction; `asMethod` looks up another method's transaction with the same
 * identity (a CANCEL finds the INVITE it cancels, 9.2). Undefined when the request
 * has no Via (the parser should not let that through).
 */
export function serverKey(req: SipRequest, asMethod?: string): string | undefined {
  const via = req.headers.via[0];
  if (via === undefined) return undefined;
  const method = asMethod ?? (req.method === 'ACK' ? 'INVITE' : req.method);
  const sentBy = `${bareHost(via.host)}:${via.port ?? 5060}`;
  const branch = via.params['branch'];
  if (hasMagicCookie(branch)) return branch + SEP + sentBy + SEP + method;
  // RFC 2543 peers: no usable branch, so the request's identity is the key. The To
  // tag is left out: the INVITE has none, while its ACK carries ours.
  return [
    '2543',
    req.uri,
    tagOf(req.headers.from.params),
    req.headers['call-id'],
    String(req.headers.cseq.seq),
    sentBy,
    branch ?? '',
    method,
  ].join(SEP);
}

/** The client transaction a request creates, or a response belongs to: branch + CSeq method. */
export function clientKey(branch: string, cseqMethod: string): string {
  return branch + SEP + cseqMethod;
}

export function clientKeyOfResponse(res: SipResponse): string | undefined {
  const branch = res.headers.via[0]?.params['branch'];
  if (typeof branch !== 'string') return undefined;
  return clientKey(branch, res.headers.cseq.method);
}

/** Identifies the 2xx an ACK acknowledges: the dialog's Call-ID, CSeq number and tags. */
export function ackKey(callId: string, cseq: number, fromTag: string, toTag: string): string {
  return callId + SEP + String(cseq) + SEP + fromTag + SEP + toTag;
}

export function ackKeyOfRequest(req: SipRequest): string {
  return ackKey(req.headers['call-id'], req.headers.cseq.seq, tagOf(req.headers.from.params), tagOf(req.headers.to.params));
}

export function ackKeyOfResponse(res: SipResponse): string {
  return ackKey(res.headers['call-id'], res.headers.cseq.seq, tagOf(res.headers.from.params), tagOf(res.headers.to.params));
}
