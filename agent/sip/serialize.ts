// Writes SipMessages as bytes, and builds responses from requests (RFC 3261 §8.2.6).
// Header text is written as UTF-8 and the body as the latin1 string it is (one
// character per byte), so Content-Length is the body string's length.

import type { AuthValue, CSeq, NameAddr, Params, SipHeaders, SipMessage, SipRequest, SipResponse, Via } from './types.ts';
import { isToken, quote } from './validate.ts';

export interface ResponseExtras {
  /** Extra headers by name (any case); an array writes one line per value. */
  headers?: Record<string, string | string[]>;
  /** Body as a latin1 string; give Content-Type in `headers` with it. */
  content?: string;
  /** Tag to add to To when the request's To has none (every response but 100). */
  toTag?: string;
}

// Names whose canonical spelling is not "Each-Word-Capitalised".
const SPECIAL_NAMES: ReadonlyArray<readonly [string, string]> = [
  ['call-id', 'Call-ID'],
  ['cseq', 'CSeq'],
  ['www-authenticate', 'WWW-Authenticate'],
  ['mime-version', 'MIME-Version'],
  ['content-id', 'Content-ID'],
  ['rack', 'RAck'],
  ['rseq', 'RSeq'],
  ['sip-etag', 'SIP-ETag'],
  ['sip-if-match', 'SIP-If-Match'],
  ['min-se', 'Min-SE'],
  ['p-dcs-osps', 'P-DCS-OSPS'],
];
const canonicalNames = new Map<string, string>(SPECIAL_NAMES);

/** The conventional spelling of a header name given in any case ("cseq" → "CSeq"). */
export function canonicalHeaderName(name: string): string {
  const lower = name.toLowerCase();
  return canonicalNames.get(lower) ?? lower.replace(/(^|-)([a-z])/g, (_m, dash: string, letter: string) => dash + letter.toUpperCase());
}

// "Name: " prefixes by the name as it is keyed in a headers object. Bounded:
// names come from code and from parsed messages, and past the bound the label is
// simply computed each time.
const labels = new Map<string, string>();

function labelOf(name: string): string {
  let label = labels.get(name);
  if (label === undefined) {
    if (!isToken(name)) throw new TypeError('invalid header name');
    label = canonicalHeaderName(name) + ': ';
    if (labels.size < 1024) labels.set(name, label);
  }
  return label;
}

/** Header text may not hold CR or LF: a value carrying them could forge headers. */
function oneLine(text: string): string {
  return text.indexOf('\r') < 0 && text.indexOf('\n') < 0 ? text : text.replace(/[\r\n]+/g, ' ');
}

function formatParams(params: Params | undefined): string {
  let out = '';
  if (params === undefined) return out;
  for (const name in params) {
    const value = params[name];
    out += value === null || value === undefined ? ';' + name : ';' + name + '=' + value;
  }
  return out;
}

/** A name-addr: `"Display Name" <uri>;param=value`. */
export function formatNameAddr(na: NameAddr): string {
  const display = na.name !== undefined && na.name !== '' ? quote(na.name) + ' ' : '';
  return display + '<' + na.uri + '>' + formatParams(na.params);
}

function formatVia(via: Via): string {
  const version = via.version ? via.version.replace(/^SIP\//i, '') : '2.0';
  const port = via.port !== undefined ? ':' + via.port : '';
  return 'SIP/' + version + '/' + via.protocol.toUpperCase() + ' ' + via.host + port + formatParams(via.params);
}

function formatAuth(auth: AuthValue): string {
  let out = '';
  for (const name in auth.params) out += (out === '' ? ' ' : ', ') + name + '=' + auth.params[name];
  return auth.scheme + out;
}

function isNameAddr(value: unknown): value is NameAddr {
  return typeof value === 'object' && value !== null && typeof (value as NameAddr).uri === 'string';
}

/** The lines of one header, each already "Name: value". */
function headerLines(label: string, value: unknown, out: string[]): void {
  if (value === undefined || value === null) return;
  if (typeof value === 'string' || typeof value === 'number') {
    out.push(label + oneLine(String(value)));
    return;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return;
    if (label === 'Via: ') {
      for (const via of value as Via[]) out.push(label + oneLine(formatVia(via)));
    } else if (isNameAddr(value[0])) {
      out.push(label + oneLine((value as NameAddr[]).map(formatNameAddr).join(', ')));
    } else if (typeof value[0] === 'object' && value[0] !== null && 'scheme' in value[0]) {
      for (const auth of value as AuthValue[]) out.push(label + oneLine(formatAuth(auth)));
    } else {
      for (const item of value) out.push(label + oneLine(String(item)));
    }
    return;
  }
  if (isNameAddr(value)) {
    out.push(label + oneLine(formatNameAddr(value)));
    return;
  }
  if (label === 'CSeq: ' && typeof value === 'object') {
    const cseq = value as CSeq;
    out.push(label + cseq.seq + ' ' + oneLine(cseq.method));
    return;
  }
  throw new TypeError(`header ${label.slice(0, -2)} has a value serialize cannot write`);
}

/**
 * The message as bytes: start line, headers in their insertion order with names
 * in canonical case, Content-Length set from the body (written last), body. A body
 * holding characters above U+00FF (text that is not a latin1 byte string) is
 * written as UTF-8 and counted in bytes.
 */
export function serialize(msg: SipMessage): Buffer {
  const lines: string[] = [];
  const version = !msg.version ? 'SIP/2.0' : /^SIP\//i.test(msg.version) ? msg.version : 'SIP/' + msg.version;
  lines.push(
    msg.kind === 'request'
      ? oneLine(msg.method + ' ' + msg.uri + ' ' + version)
      : version + ' ' + msg.status + ' ' + oneLine(msg.reason),
  );
  const headers = msg.headers as Record<string, unknown>;
  for (const name in headers) {
    const label = labelOf(name);
    // written last, from the body actually sent, whatever case or form it was keyed in
    if (label === 'Content-Length: ' || name === 'l' || name === 'L') continue;
    headerLines(label, headers[name], lines);
  }

  const content = msg.content ?? '';
  const body = /[^\x00-\xff]/.test(content) ? Buffer.from(content, 'utf8') : undefined;
  const bodyLength = body !== undefined ? body.length : content.length;
  lines.push('Content-Length: ' + bodyLength, '', '');
  const head = lines.join('\r\n');
  if (bodyLength === 0) return Buffer.from(head, 'utf8');
  const headLength = Buffer.byteLength(head, 'utf8');
  const out = Buffer.allocUnsafe(headLength + bodyLength);
  out.write(head, 0, 'utf8');
  if (body !== undefined) body.copy(out, headLength);
  else out.write(content, headLength, 'latin1');
  return out;
}

function copyParams(params: Params): Params {
  const copy: Params = Object.create(null);
  for (const name in params) copy[name] = params[name]!;
  return copy;
}

function copyVia(via: Via): Via {
  const copy: Via = { version: via.version, protocol: via.protocol, host: via.host, params: copyParams(via.params) };
  if (via.port !== undefined) copy.port = via.port;
  return copy;
}

/**
 * A response to `req` (RFC 3261 §8.2.6): every Via in order, From, To, Call-ID
 * and CSeq copied, a To tag added when `extras.toTag` is given and To has none.
 * Works on the `partial` of a failed parse too, whose headers may be raw text.
 */
export function makeResponse(req: SipRequest, status: number, reason: string, extras?: ResponseExtras): SipResponse {
  const src = req.headers as Record<string, unknown>;
  const h: Record<string, unknown> = Object.create(null);

  const via = src['via'];
  if (Array.isArray(via)) h['via'] = (via as Via[]).map(copyVia);
  else if (via !== undefined) h['via'] = via;

  if (src['from'] !== undefined) h['from'] = src['from'];
  const to = src['to'];
  const tag = extras?.toTag;
  if (tag !== undefined && isNameAddr(to) && (to.params['tag'] === undefined || to.params['tag'] === null)) {
    const params = copyParams(to.params);
    params['tag'] = tag;
    h['to'] = { ...to, params };
  } else if (tag !== undefined && typeof to === 'string' && !/;\s*tag\s*=/i.test(to)) {
    h['to'] = to + ';tag=' + tag;
  } else if (to !== undefined) {
    h['to'] = to;
  }
  if (src['call-id'] !== undefined) h['call-id'] = src['call-id'];
  const cseq = src['cseq'];
  if (cseq !== undefined) h['cseq'] = typeof cseq === 'object' ? { ...(cseq as CSeq) } : cseq;

  if (extras?.headers) {
    for (const name of Object.keys(extras.headers)) h[name.toLowerCase()] = extras.headers[name];
  }
  return {
    kind: 'response',
    status,
    reason,
    version: 'SIP/2.0',
    headers: h as unknown as SipHeaders,
    content: extras?.content ?? '',
  };
}
