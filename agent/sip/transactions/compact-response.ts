// What a completed non-INVITE transaction keeps for Timer J, without the part of
// the response a retransmitted request gives back.
//
// A final response starts with the lines RFC 3261 8.2.6.2 copies from the request:
// every Via, From, To (plus our tag), Call-ID and CSeq, about half of a 200 OK to a
// REGISTER (~220 of ~370 bytes). A retransmission matches the transaction by branch,
// sent-by and method (17.2.3) and carries the same headers, so those lines are
// serialized again from it when it comes instead of being held for 32 s: at 3,000
// registrations a second that is ~20 MB less. What is kept:
//
//   [1 + tag length][To tag][status line CRLF][the headers after CSeq ... body]
//
// or [0][the response as sent] when the response does not begin with exactly those
// lines (a TU that overrode one of them, a tag longer than 254 bytes): checked when
// the entry is made, so a rebuilt response is byte for byte the one first sent for
// the same request.

import { makeResponse, serialize } from '../serialize.ts';
import type { SipRequest, SipResponse } from '../types.ts';

const CRLF = Buffer.from('\r\n');
const NO_BODY_END = Buffer.from('Content-Length: 0\r\n\r\n');
const MAX_TAG_BYTES = 254;

/** The lines copied from `req` into a response with To tag `tag`, as serialize writes them. */
function copiedLines(req: SipRequest, tag: string | undefined): Buffer | undefined {
  // Status and reason do not change these lines; the response is only serialized.
  const full = serialize(makeResponse(req, 200, 'OK', tag === undefined ? undefined : { toTag: tag }));
  const start = full.indexOf(CRLF) + 2;
  const end = full.length - NO_BODY_END.length;
  if (start < 2 || end < start || !full.subarray(end).equals(NO_BODY_END)) return undefined;
  return full.subarray(start, end);
}

function toTagOf(res: SipResponse): string | undefined {
  const to: unknown = res.headers.to;
  if (typeof to !== 'object' || to === null || !('params' in to)) return undefined;
  const tag = (to as { params: Record<string, string | null> }).params['tag'];
  return typeof tag === 'string' ? tag : undefined;
}

/** What to keep for `bytes`, the serialized `res` answering `req`. */
export function compactResponse(req: SipRequest, res: SipResponse, bytes: Buffer): Buffer {
  const tag = toTagOf(res);
  const tagBytes = tag === undefined ? 0 : Buffer.byteLength(tag, 'utf8');
  const statusEnd = bytes.indexOf(CRLF) + 2;
  const copied = tagBytes <= MAX_TAG_BYTES && statusEnd >= 2 ? copiedLines(req, tag) : undefined;
  if (copied === undefined || !bytes.subarray(statusEnd, statusEnd + copied.length).equals(copied)) {
    return Buffer.concat([Buffer.of(0), bytes]);
  }
  const out = Buffer.allocUnsafe(1 + tagBytes + bytes.length - copied.length);
  out[0] = 1 + tagBytes;
  if (tag !== undefined) out.write(tag, 1, tagBytes, 'utf8');
  bytes.copy(out, 1 + tagBytes, 0, statusEnd);
  bytes.copy(out, 1 + tagBytes + statusEnd, statusEnd + copied.length);
  return out;
}

/** The response first sent, from what compactResponse kept and the retransmitted `req`. */
export function expandResponse(kept: Buffer, req: SipRequest): Buffer | undefined {
  const first = kept[0];
  if (first === undefined) return undefined;
  if (first === 0) return Buffer.from(kept.subarray(1));
  const tagBytes = first - 1;
  const tag = tagBytes === 0 ? undefined : kept.toString('utf8', 1, 1 + tagBytes);
  const rest = kept.subarray(1 + tagBytes);
  const statusEnd = rest.indexOf(CRLF) + 2;
  const copied = copiedLines(req, tag);
  if (statusEnd < 2 || copied === undefined) return undefined;
  return Buffer.concat([rest.subarray(0, statusEnd), copied, rest.subarray(statusEnd)]);
}
