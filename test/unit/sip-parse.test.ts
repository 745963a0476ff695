// The SIP message layer beyond the RFC 4475 corpus: round trips, the shapes other
// modules read, prototype safety, IPv6, URIs, responses, request checks, and a
// bounded deterministic fuzz over random and truncated input.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sip from 'sip';

import { headerCount, parseMessage, parseNameAddr } from '../../agent/sip/parse.ts';
import type { ParseOutcome } from '../../agent/sip/parse.ts';
import { checkRequest } from '../../agent/sip/request-checks.ts';
import type { RequestCheckOptions } from '../../agent/sip/request-checks.ts';
import { canonicalHeaderName, formatNameAddr, makeResponse, serialize } from '../../agent/sip/serialize.ts';
import { formatUri, isValidUri, parseUri, unescapeUriPart } from '../../agent/sip/uri.ts';
import type { NameAddr, SipMessage, SipRequest, SipResponse } from '../../agent/sip/types.ts';

const CORPUS = process.env['SIP_TORTURE_DIR'] ?? join(import.meta.dirname, '../../../shared/sip-torture-rfc4475');

const REGISTER = [
  'REGISTER sip:branch.example.com SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport',
  'Max-Forwards: 70',
  'To: "Desk 1001" <sip:1001@branch.example.com>',
  'From: "Desk 1001" <sip:1001@branch.example.com>;tag=456248',
  'Call-ID: 843817637684230@998sdasdh09',
  'CSeq: 1826 REGISTER',
  'Contact: <sip:1001@192.0.2.10:5060;transport=udp>;expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1',
  'Authorization: Digest username="1001", realm="branch.example.com", nonce="abcdef0123456789", uri="sip:branch.example.com", response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="xyz"',
  'User-Agent: Deskphone/1.0',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

const OK_WITH_CONTACTS = [
  'SIP/2.0 200 OK',
  'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport=5060;received=192.0.2.10',
  'To: <sip:1001@branch.example.com>;tag=reg-7',
  'From: <sip:1001@branch.example.com>;tag=456248',
  'Call-ID: 843817637684230@998sdasdh09',
  'CSeq: 1826 REGISTER',
  'Contact: <sip:1001@192.0.2.10:5060>;expires=3600;q=0.8, <sip:1001@[2001:db8::10]:5062;transport=tcp>;expires=120',
  'Date: Sat, 15 Oct 2005 04:44:56 GMT',
  'Content-Length: 0',
  '',
  '',
].join('\r\n');

const CHECKS: RequestCheckOptions = { supportedExtensions: new Set(['path', 'outbound']), acceptedContentTypes: new Set(['application/sdp']) };

function ok(text: string | Buffer): SipMessage {
  const outcome = parseMessage(typeof text === 'string' ? Buffer.from(text) : text);
  assert.ok(outcome.ok, outcome.ok ? '' : outcome.detail);
  return outcome.message;
}

function req(text: string): SipRequest {
  const msg = ok(text);
  assert.equal(msg.kind, 'request');
  return msg as SipRequest;
}

function refused(text: string): Extract<ParseOutcome, { ok: false }> {
  const outcome = parseMessage(Buffer.from(text));
  assert.equal(outcome.ok, false, `should not parse:\n${text}`);
  if (outcome.ok) throw new Error('unreachable');
  return outcome;
}

/** A minimal valid request with `extra` header lines and an optional body. */
function options(extra: string[] = [], body = '', method = 'OPTIONS', uri = 'sip:1001@branch.example.com'): string {
  return [
    `${method} ${uri} SIP/2.0`,
    'Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKa1',
    'To: <sip:1001@branch.example.com>',
    'From: <sip:1002@branch.example.com>;tag=f1',
    'Call-ID: c1@192.0.2.10',
    `CSeq: 1 ${method}`,
    'Max-Forwards: 70',
    ...extra,
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

describe('parse → serialize → parse', () => {
  it('keeps a REGISTER with digest credentials and a Contact with instance parameters', () => {
    const first = req(REGISTER);
    const bytes = serialize(first);
    const second = req(bytes.toString('latin1'));
    assert.deepEqual(second, first);
    assert.equal(bytes.toString(), REGISTER, 'this REGISTER is already in canonical form');
    const [contact] = first.headers.contact as NameAddr[];
    assert.equal(contact?.params['+sip.instance'], '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"');
    assert.equal(first.headers.authorization?.[0]?.params['nonce'], '"abcdef0123456789"');
    assert.equal(first.headers.authorization?.[0]?.params['nc'], '00000001');
  });

  it('keeps a 200 with two Contacts and their parameters', () => {
    const first = ok(OK_WITH_CONTACTS) as SipResponse;
    assert.equal(first.kind, 'response');
    assert.equal(first.status, 200);
    const contacts = first.headers.contact as NameAddr[];
    assert.deepEqual(contacts.map((c) => [c.uri, { ...c.params }]), [
      ['sip:1001@192.0.2.10:5060', { expires: '3600', q: '0.8' }],
      ['sip:1001@[2001:db8::10]:5062;transport=tcp', { expires: '120' }],
    ]);
    const second = ok(serialize(first));
    assert.deepEqual(second, first);
  });
});

describe('header forms', () => {
  it('maps compact names to long ones', () => {
    const msg = req([
      'INVITE sip:1001@branch.example.com SIP/2.0',
      'v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc1',
      't: <sip:1001@branch.example.com>',
      'f: <sip:1002@branch.example.com>;tag=x',
      'i: compact@192.0.2.10',
      'CSeq: 4 INVITE',
      'm: <sip:1002@192.0.2.10>',
      'c: application/sdp',
      'e: identity',
      's: hello',
      'k: 100rel',
      'o: refer',
      'r: <sip:1003@branch.example.com>',
      'u: refer',
      'x: 1800',
      'l: 3',
      '',
      'v=0',
    ].join('\r\n'));
    assert.equal(msg.headers.via[0]?.host, '192.0.2.10');
    assert.equal(msg.headers.to.uri, 'sip:1001@branch.example.com');
    assert.equal(msg.headers.from.params['tag'], 'x');
    assert.equal(msg.headers['call-id'], 'compact@192.0.2.10');
    assert.equal((msg.headers.contact as NameAddr[])[0]?.uri, 'sip:1002@192.0.2.10');
    assert.equal(msg.headers['content-type'], 'application/sdp');
    assert.equal(msg.headers['content-encoding'], 'identity');
    assert.equal(msg.headers['subject'], 'hello');
    assert.equal(msg.headers['supported'], '100rel');
    assert.equal(msg.headers['event'], 'refer');
    assert.equal(msg.headers['refer-to'], '<sip:1003@branch.example.com>');
    assert.equal(msg.headers['allow-events'], 'refer');
    assert.equal(msg.headers['session-expires'], '1800');
    assert.equal(msg.headers['content-length'], 3);
    assert.equal(msg.content, 'v=0');
  });

  it('unfolds continuation lines into one value', () => {
    const msg = req(options([
      'Subject: a subject',
      '\t that goes on',
      'Contact: "Folded Name"',
      '   <sip:1002@192.0.2.10>',
      '  ;expires=60',
    ]));
    assert.equal(msg.headers['subject'], 'a subject that goes on');
    const [contact] = msg.headers.contact as NameAddr[];
    assert.equal(contact?.name, 'Folded Name');
    assert.equal(contact?.params['expires'], '60');
  });

  it('joins repeated headers with ", " and counts the lines', () => {
    const msg = req(options(['Supported: path', 'Supported: outbound', 'Via: SIP/2.0/TCP 192.0.2.11;branch=z9hG4bKb2']));
    assert.equal(msg.headers['supported'], 'path, outbound');
    assert.equal(headerCount(msg, 'supported'), 2);
    assert.equal(headerCount(msg, 'via'), 2);
    assert.equal(headerCount(msg, 'to'), 1);
    assert.equal(headerCount(msg, 'expires'), 0);
    assert.deepEqual(msg.headers.via.map((v) => v.host), ['192.0.2.10', '192.0.2.11']);
  });

  it('decodes header values as UTF-8 and writes them back as UTF-8', () => {
    const text = options(['Subject: こんにちは, Grüße', 'Contact: "Jörg Müller" <sip:j%C3%B6rg@192.0.2.10>']);
    const msg = req(text);
    assert.equal(msg.headers['subject'], 'こんにちは, Grüße');
    const [contact] = msg.headers.contact as NameAddr[];
    assert.equal(contact?.name, 'Jörg Müller');
    assert.equal(unescapeUriPart(parseUri(contact?.uri ?? '')?.user ?? ''), 'jörg');
    const out = serialize(msg);
    assert.ok(out.includes(Buffer.from('Subject: こんにちは, Grüße\r\n', 'utf8')));
    assert.ok(out.includes(Buffer.from('Contact: "Jörg Müller" <sip:j%C3%B6rg@192.0.2.10>\r\n', 'utf8')));
  });

  it('reads IPv6 in Via sent-by, received and Contact', () => {
    const msg = req([
      'REGISTER sip:[2001:db8::1] SIP/2.0',
      'Via: SIP/2.0/TCP [2001:db8::10]:5070;branch=z9hG4bKv6;received=[2001:db8::11];rport=5071',
      'To: <sip:1001@[2001:db8::1]>',
      'From: <sip:1001@[2001:db8::1]>;tag=v6',
      'Call-ID: v6@[2001:db8::10]',
      'CSeq: 2 REGISTER',
      'Contact: <sip:1001@[2001:db8::10]:5070;transport=tcp>;expires=600',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'));
    const [via] = msg.headers.via;
    assert.equal(via?.host, '[2001:db8::10]');
    assert.equal(via?.port, 5070);
    assert.equal(via?.params['received'], '[2001:db8::11]');
    const uri = parseUri((msg.headers.contact as NameAddr[])[0]?.uri ?? '');
    assert.deepEqual({ user: uri?.user, host: uri?.host, port: uri?.port, transport: uri?.params['transport'] }, {
      user: '1001', host: '[2001:db8::10]', port: 5070, transport: 'tcp',
    });
  });

  it('reads a bare IPv6 address in received, as a stamped Via carries it (RFC 5118 §4.5)', () => {
    const msg = req(options().replace('Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKa1', 'Via: SIP/2.0/UDP [2001:db8::10];branch=z9hG4bKa1;received=2001:db8::11;rport=5071'));
    assert.equal(msg.headers.via[0]?.params['received'], '2001:db8::11');
    assert.deepEqual(req(serialize(msg).toString()).headers.via, msg.headers.via);
    assert.match(refused(options().replace(';branch=z9hG4bKa1', ';branch=z9hG4bKa1;received=2001:db8:::11')).detail, /Via/);
  });

  it('parses a 62,000-byte message', () => {
    const body = 'x'.repeat(61_000);
    const bare = options(['Content-Type: text/plain', 'X-Pad: '], body, 'MESSAGE');
    const padding = 'y'.repeat(62_000 - Buffer.byteLength(bare));
    const bytes = Buffer.from(options(['Content-Type: text/plain', `X-Pad: ${padding}`], body, 'MESSAGE'));
    assert.equal(bytes.length, 62_000);
    const msg = ok(bytes) as SipRequest;
    assert.equal(msg.content, body);
    assert.equal(msg.headers['x-pad'], padding);
    assert.equal(serialize(msg).length, 62_000);
  });

  it('parseNameAddr reads a lone address value', () => {
    const na = parseNameAddr('"Front Desk" <sip:100@branch.example.com>;party=calling');
    assert.deepEqual(na && { name: na.name, uri: na.uri, params: { ...na.params } }, {
      name: 'Front Desk', uri: 'sip:100@branch.example.com', params: { party: 'calling' },
    });
    assert.equal(parseNameAddr('Bad, Name <sip:a@b.example>'), undefined);
  });
});

describe('prototype safety', () => {
  const hostile = [
    'OPTIONS sip:1001@branch.example.com;__proto__=p;constructor=c SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKp1;__proto__=polluted;constructor=x;toString=y',
    'To: <sip:1001@branch.example.com;__proto__=u>;__proto__=t;constructor=x',
    'From: <sip:1002@branch.example.com>;tag=f;hasOwnProperty=h',
    'Call-ID: proto@192.0.2.10',
    'CSeq: 1 OPTIONS',
    'Contact: <sip:1002@192.0.2.10?__proto__=h>;__proto__',
    'Authorization: Digest __proto__="x", constructor=y, username="1002"',
    '__proto__: header',
    'constructor: header too',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

  it('parses __proto__ and constructor as plain parameters and headers', () => {
    const msg = req(hostile);
    const via = msg.headers.via[0]!;
    assert.equal(Object.getPrototypeOf(via.params), null);
    assert.equal(via.params['__proto__'], 'polluted');
    assert.equal(via.params['constructor'], 'x');
    assert.equal(via.params['tostring'], 'y');
    assert.equal(via.params['branch'], 'z9hG4bKp1');
    assert.equal(Object.getPrototypeOf(msg.headers.to.params), null);
    assert.equal(msg.headers.to.params['__proto__'], 't');
    assert.equal(msg.headers.from.params['hasownproperty'], 'h');
    assert.equal((msg.headers.contact as NameAddr[])[0]?.params['__proto__'], null);
    const auth = msg.headers.authorization?.[0];
    assert.equal(Object.getPrototypeOf(auth?.params), null);
    assert.equal(auth?.params['__proto__'], '"x"');
    assert.equal(Object.getPrototypeOf(msg.headers), null);
    assert.equal(msg.headers['__proto__'], 'header');
    assert.equal(msg.headers['constructor'], 'header too');

    const ruri = parseUri(msg.uri)!;
    assert.equal(Object.getPrototypeOf(ruri.params), null);
    assert.equal(ruri.params['__proto__'], 'p');
    assert.equal(ruri.params['constructor'], 'c');
    const contactUri = parseUri((msg.headers.contact as NameAddr[])[0]!.uri)!;
    assert.equal(Object.getPrototypeOf(contactUri.headers), null);
    assert.equal(contactUri.headers['__proto__'], 'h');
    assert.equal(parseUri('sip:1001@branch.example.com;__proto__=u')?.params['__proto__'], 'u');

    // nothing leaked into shared prototypes
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(Object.prototype.toString.call({}), '[object Object]');
  });

  it('writes them back as parameters', () => {
    const text = serialize(req(hostile)).toString();
    assert.match(text, /\r\nVia: SIP\/2\.0\/UDP 192\.0\.2\.10;branch=z9hG4bKp1;__proto__=polluted;constructor=x;tostring=y\r\n/);
    assert.match(text, /\r\nTo: <sip:1001@branch\.example\.com;__proto__=u>;__proto__=t;constructor=x\r\n/);
    assert.match(text, /\r\n__proto__: header\r\n/);
  });
});

describe('strictness beyond the corpus', () => {
  const cases: Array<[string, string, RegExp, number | undefined]> = [
    ['Max-Forwards above 255', options(['Max-Forwards: 256']).replace('Max-Forwards: 70\r\n', ''), /Max-Forwards/, 400],
    ['Expires of 2**32', options(['Expires: 4294967296']), /Expires/, 400],
    ['Content-Length with text', options().replace('Content-Length: 0', 'Content-Length: 0x10'), /Content-Length/, 400],
    ['a tab between request-line elements', options().replace('OPTIONS sip', 'OPTIONS\tsip'), /request line/, 400],
    ['a lone LF in a header value', options(['Subject: one\ntwo']), /bare CR or LF/, 400],
    ['a bad IPv6 sent-by', options().replace('192.0.2.10;branch', '[2001:db8::g]:5060;branch'), /Via/, 400],
    ['a hostname label starting with a hyphen', options().replace('192.0.2.10;branch', '-host.example.com;branch'), /Via/, 400],
    ['an IPv4 octet over 255', options().replace('192.0.2.10;branch', '192.0.2.256;branch'), /Via/, 400],
    ['a Via port over 65535', options().replace('192.0.2.10;branch', '192.0.2.10:65536;branch'), /port/, 400],
    ['a Route URI outside <>', options(['Route: sip:proxy.example.com;lr']), /Route/, 400],
    ['Contact * with another contact', options(['Contact: *', 'Contact: <sip:a@192.0.2.1>']), /Contact/, 400],
    ['a malformed %-escape in a URI', options().replace('To: <sip:1001@', 'To: <sip:10%G1@'), /URI/, 400],
    ['a header without a name', options([': value']), /header line/, 400],
    ['a continuation before any header', options().replace('\r\nVia:', '\r\n Via:'), /continuation/, 400],
    ['SIP/3.0', options().replace(' SIP/2.0\r\n', ' SIP/3.0\r\n'), /version/, 505],
    ['a two-digit status', OK_WITH_CONTACTS.replace('200 OK', '20 OK'), /status code/, undefined],
    ['status 700', OK_WITH_CONTACTS.replace('200 OK', '700 Nope'), /status code/, undefined],
    ['a response with two To headers', OK_WITH_CONTACTS.replace('CSeq:', 'To: <sip:x@y.example>\r\nCSeq:'), /more than one To/, undefined],
    ['a response body shorter than Content-Length', OK_WITH_CONTACTS.replace('Content-Length: 0', 'Content-Length: 5'), /Content-Length/, undefined],
  ];
  for (const [label, text, detail, status] of cases) {
    it(`refuses ${label}`, () => {
      const outcome = refused(text);
      assert.match(outcome.detail, detail);
      assert.equal(outcome.reply?.status, status);
    });
  }

  it('accepts lower-case sip/2.0 and leading CRLFs, and reports the version as SIP/2.0', () => {
    const msg = req('\r\n\r\n' + options().replace(' SIP/2.0\r\n', ' sip/2.0\r\n'));
    assert.equal(msg.version, 'SIP/2.0');
  });

  it('drops an empty datagram or a keep-alive without a reply', () => {
    for (const bytes of [Buffer.alloc(0), Buffer.from('\r\n\r\n')]) {
      const outcome = parseMessage(bytes);
      assert.equal(outcome.ok, false);
      assert.equal(outcome.ok ? undefined : outcome.reply, undefined);
    }
  });
});

describe('URIs', () => {
  it('parses and formats sip, sips, tel and other schemes', () => {
    const sipUri = parseUri('sip:1001:secret@Branch.Example.com:5080;transport=TCP;lr?subject=hi&priority=urgent')!;
    assert.deepEqual(
      { scheme: sipUri.scheme, user: sipUri.user, password: sipUri.password, host: sipUri.host, port: sipUri.port, params: { ...sipUri.params }, headers: { ...sipUri.headers } },
      { scheme: 'sip', user: '1001', password: 'secret', host: 'branch.example.com', port: 5080, params: { transport: 'TCP', lr: null }, headers: { subject: 'hi', priority: 'urgent' } },
    );
    assert.equal(formatUri(sipUri), 'sip:1001:secret@branch.example.com:5080;transport=TCP;lr?subject=hi&priority=urgent');

    const ipv6 = parseUri('sip:1001@[2001:db8::1]:5060;transport=tcp')!;
    assert.deepEqual([ipv6.host, ipv6.port, ipv6.params['transport']], ['[2001:db8::1]', 5060, 'tcp']);
    assert.equal(formatUri(ipv6), 'sip:1001@[2001:db8::1]:5060;transport=tcp');
    assert.equal(parseUri('sips:[::ffff:192.0.2.1]')?.host, '[::ffff:192.0.2.1]');

    const tel = parseUri('tel:+1-201-555-0123;phone-context=example.com')!;
    assert.deepEqual([tel.scheme, tel.user, tel.host, tel.params['phone-context']], ['tel', '+1-201-555-0123', '', 'example.com']);
    assert.equal(formatUri(tel), 'tel:+1-201-555-0123;phone-context=example.com');

    const other = parseUri('urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6')!;
    assert.deepEqual([other.scheme, other.host], ['urn', '']);
    assert.equal(formatUri(other), 'urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6');
  });

  it('refuses what breaks the grammar', () => {
    for (const bad of [
      'sip:', 'sip:@host', 'sip:user@', 'sip:user@host:99999', 'sip:user@host;', 'sip:user@host;;lr', 'sip:a@b@c',
      'sip:user@ho st', 'sip:user@[2001:db8::1', 'sip:user@[2001:db8:::1]', 'sip:user@host?noequals', 'sip:user@host.-bad',
      'sip:us er@host', 'sip:user@host%41', 'tel:', 'tel:+1 555', '1sip:x', 'nocolon', ':x', 'http:has space',
    ]) {
      assert.equal(parseUri(bad), undefined, bad);
      assert.equal(isValidUri(bad), false, bad);
    }
  });

  it('escapes what a user, parameter or header may not hold when formatting a URI built in code', () => {
    const uri = { scheme: 'sip', user: 'John Smith@home', host: 'branch.example.com', params: Object.assign(Object.create(null), { note: 'a b' }), headers: Object.assign(Object.create(null), { Subject: 'x&y' }) };
    const text = formatUri(uri);
    assert.equal(text, 'sip:John%20Smith%40home@branch.example.com;note=a%20b?Subject=x%26y');
    assert.equal(unescapeUriPart(parseUri(text)?.user ?? ''), 'John Smith@home');
  });

  it('unescapes without throwing on escapes that are not UTF-8', () => {
    assert.equal(unescapeUriPart('%75se%72'), 'user');
    assert.equal(unescapeUriPart('a%FFb%41'), 'a%FFbA');
    assert.equal(unescapeUriPart('null-%00-null'), 'null-\0-null');
  });
});

describe('responses and serialization', () => {
  const invite = [
    'INVITE sip:1001@branch.example.com SIP/2.0',
    'Via: SIP/2.0/UDP proxy2.example.com;branch=z9hG4bK2',
    'Via: SIP/2.0/TCP proxy1.example.com:5061;branch=z9hG4bK1;received=192.0.2.1',
    'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK0;rport=5060',
    'To: "Desk" <sip:1001@branch.example.com>',
    'From: <sip:1002@branch.example.com>;tag=abc',
    'Call-ID: r1@192.0.2.10',
    'CSeq: 7 INVITE',
    'Record-Route: <sip:proxy2.example.com;lr>',
    'Max-Forwards: 68',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

  it('makeResponse copies every Via in order, From, To, Call-ID and CSeq, and adds the To tag', () => {
    const request = req(invite);
    const response = makeResponse(request, 180, 'Ringing', { toTag: 'bl-1', headers: { Contact: '<sip:1001@192.0.2.20>' } });
    assert.deepEqual(response.headers.via.map((v) => v.params['branch']), ['z9hG4bK2', 'z9hG4bK1', 'z9hG4bK0']);
    assert.equal(response.headers.to.params['tag'], 'bl-1');
    assert.equal(request.headers.to.params['tag'], undefined, 'the request is not changed');
    response.headers.via[0]!.params['received'] = '198.51.100.1';
    assert.equal(request.headers.via[0]!.params['received'], undefined, 'Via params are copies');
    assert.equal(response.headers['record-route'], undefined, 'Record-Route is the dialog layer\'s to copy');
    const text = serialize(response).toString();
    assert.equal(text, [
      'SIP/2.0 180 Ringing',
      'Via: SIP/2.0/UDP proxy2.example.com;branch=z9hG4bK2;received=198.51.100.1',
      'Via: SIP/2.0/TCP proxy1.example.com:5061;branch=z9hG4bK1;received=192.0.2.1',
      'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK0;rport=5060',
      'From: <sip:1002@branch.example.com>;tag=abc',
      'To: "Desk" <sip:1001@branch.example.com>;tag=bl-1',
      'Call-ID: r1@192.0.2.10',
      'CSeq: 7 INVITE',
      'Contact: <sip:1001@192.0.2.20>',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'));
  });

  it('keeps a To tag that is already there', () => {
    const request = req(invite.replace('To: "Desk" <sip:1001@branch.example.com>', 'To: <sip:1001@branch.example.com>;tag=mine'));
    assert.equal(makeResponse(request, 200, 'OK', { toTag: 'other' }).headers.to.params['tag'], 'mine');
  });

  it('writes header names in canonical case and Content-Length from the body', () => {
    assert.deepEqual(
      ['call-id', 'cseq', 'www-authenticate', 'proxy-authenticate', 'max-forwards', 'content-length', 'p-asserted-identity', 'rseq', 'mime-version', 'X-CUSTOM-thing'].map(canonicalHeaderName),
      ['Call-ID', 'CSeq', 'WWW-Authenticate', 'Proxy-Authenticate', 'Max-Forwards', 'Content-Length', 'P-Asserted-Identity', 'RSeq', 'MIME-Version', 'X-Custom-Thing'],
    );
    const response = makeResponse(req(REGISTER), 401, 'Unauthorized', {
      toTag: 't',
      headers: { 'WWW-Authenticate': 'Digest realm="branch.example.com", nonce="n1", qop="auth", algorithm=SHA-256', 'Content-Type': 'text/plain' },
      content: 'price: 5 €',
    });
    const bytes = serialize(response);
    const text = bytes.toString('utf8');
    assert.match(text, /\r\nWWW-Authenticate: Digest realm="branch\.example\.com", nonce="n1", qop="auth", algorithm=SHA-256\r\n/);
    // a body with characters above U+00FF is written as UTF-8 and counted in bytes
    assert.match(text, /\r\nContent-Length: 12\r\n\r\nprice: 5 €$/);
    const reparsed = ok(bytes) as SipResponse;
    assert.equal(reparsed.headers['www-authenticate']?.[0]?.params['qop'], '"auth"');
    assert.equal(Buffer.from(reparsed.content, 'latin1').toString('utf8'), 'price: 5 €');
  });

  it('cannot be made to write extra header lines', () => {
    const response = makeResponse(req(REGISTER), 200, 'OK\r\nX-Evil: 1', { headers: { Warning: '399 x "a"\r\nX-Evil: 2' } });
    response.headers.to = { name: 'Evil\r\nX-Evil: 3', uri: 'sip:a@b.example', params: Object.create(null) };
    const text = serialize(response).toString();
    assert.doesNotMatch(text, /\r\nX-Evil/);
    assert.equal((ok(text) as SipResponse).headers.to.name, 'Evil  X-Evil: 3');
  });

  it('formatNameAddr quotes display names, escaping quotes, backslashes and control characters', () => {
    assert.equal(formatNameAddr({ uri: 'sip:a@b.example', params: Object.create(null) }), '<sip:a@b.example>');
    const na: NameAddr = { name: 'Say "hi" \\ \x07', uri: 'sip:a@b.example', params: Object.assign(Object.create(null), { tag: 'x', lr: null }) };
    const text = formatNameAddr(na);
    assert.equal(text, '"Say \\"hi\\" \\\\ \\\x07" <sip:a@b.example>;tag=x;lr');
    assert.equal(parseNameAddr(text)?.name, na.name);
  });
});

describe('checkRequest beyond the corpus', () => {
  it('passes Require tags we support and ignores Require on CANCEL', () => {
    assert.equal(checkRequest(req(options(['Require: path, outbound'])), CHECKS), undefined);
    assert.equal(checkRequest(req(options(['Require: 100rel'], '', 'CANCEL')), CHECKS), undefined);
    assert.equal(checkRequest(req(options(['Require: 100rel'])), CHECKS)?.status, 420);
  });

  it('never fails an ACK, which gets no response', () => {
    const ack = req(options(['Require: nothing', 'Max-Forwards: 0'], 'junk', 'ACK').replace('Max-Forwards: 70\r\n', ''));
    assert.equal(checkRequest(ack, CHECKS), undefined);
  });

  it('answers 415 with Accept-Encoding for an unknown Content-Encoding and 400 for a body without Content-Type', () => {
    assert.deepEqual(checkRequest(req(options(['Content-Type: application/sdp', 'Content-Encoding: gzip'], 'v=0', 'INVITE')), CHECKS), {
      status: 415, reason: 'Unsupported Media Type', headers: { 'Accept-Encoding': 'identity' },
    });
    assert.equal(checkRequest(req(options([], 'v=0', 'INVITE')), CHECKS)?.status, 400);
    assert.equal(checkRequest(req(options(['Content-Type: Application/SDP; charset=x'], 'v=0', 'INVITE')), CHECKS), undefined);
  });

  it('answers 406 only to an INVITE whose Accept rules out every type we answer with', () => {
    assert.equal(checkRequest(req(options(['Accept: application/*'], '', 'INVITE')), CHECKS), undefined);
    assert.equal(checkRequest(req(options(['Accept: */*;q=0.5'], '', 'INVITE')), CHECKS), undefined);
    assert.equal(checkRequest(req(options(['Accept: application/sdp;q=0'], '', 'INVITE')), CHECKS)?.status, 406);
    assert.equal(checkRequest(req(options(['Accept: text/plain'], '', 'INVITE')), CHECKS)?.status, 406);
    assert.equal(checkRequest(req(options(['Accept: text/plain'])), CHECKS), undefined, 'an OPTIONS answer needs no body');
  });

  it('answers 416 for schemes outside the supported set', () => {
    assert.equal(checkRequest(req(options([], '', 'OPTIONS', 'tel:+12015550123')), CHECKS), undefined);
    assert.equal(checkRequest(req(options([], '', 'OPTIONS', 'tel:+12015550123')), { ...CHECKS, supportedSchemes: new Set(['sip']) })?.status, 416);
    assert.equal(checkRequest(req(options([], '', 'OPTIONS', 'im:someone@example.com')), CHECKS)?.status, 416);
  });
});

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('hostile input', () => {
  const corpus = readdirSync(CORPUS).filter((f) => f.endsWith('.dat')).sort().map((f) => readFileSync(join(CORPUS, f)));
  const seeds = [...corpus, Buffer.from(REGISTER), Buffer.from(OK_WITH_CONTACTS)];
  const SIPPY = Buffer.from('\r\n:;,<>"\\@[]= \t%SIP/2.0 sip:INVITE REGISTER Via: To: From: CSeq: Call-ID: Contact: Content-Length: 0123456789');

  /** The parser's contract on any input: an outcome, never a fault; what parses can be written and read again. */
  function holds(bytes: Buffer): void {
    const outcome = parseMessage(bytes);
    if (!outcome.ok) {
      assert.doesNotMatch(outcome.detail, /parser fault/, `fault on ${JSON.stringify(bytes.toString('latin1'))}`);
      assert.ok(outcome.reply === undefined || outcome.reply.status === 400 || outcome.reply.status === 505);
      if (outcome.partial !== undefined && outcome.reply !== undefined) serialize(makeResponse(outcome.partial, outcome.reply.status, 'x', { toTag: 't' }));
      return;
    }
    const msg = outcome.message;
    if (msg.kind === 'request') checkRequest(msg, CHECKS);
    const again = parseMessage(serialize(msg));
    // a repeated single-valued header is kept joined, which the re-parse refuses (checkRequest answers 400 first)
    const repeated = ['max-forwards', 'expires', 'min-expires', 'date', 'content-type'].some((name) => headerCount(msg, name) > 1);
    if (!repeated) assert.ok(again.ok, `re-parse failed (${again.ok ? '' : again.detail}) for ${JSON.stringify(bytes.toString('latin1'))}`);
  }

  it('never faults on 10,000 random and mutated buffers', () => {
    const next = random(4475);
    const pick = (n: number) => Math.floor(next() * n);
    for (let round = 0; round < 10_000; round++) {
      let bytes: Buffer;
      const kind = round % 4;
      if (kind === 0) {
        bytes = Buffer.alloc(pick(600));
        for (let i = 0; i < bytes.length; i++) bytes[i] = pick(256);
      } else {
        bytes = Buffer.from(seeds[pick(seeds.length)]!);
        const edits = 1 + pick(kind === 3 ? 20 : 4);
        for (let e = 0; e < edits && bytes.length > 0; e++) {
          const at = pick(bytes.length);
          bytes[at] = kind === 1 ? pick(256) : SIPPY[pick(SIPPY.length)]!;
        }
        if (kind === 3 && next() < 0.3) bytes = bytes.subarray(pick(bytes.length));
      }
      holds(bytes);
    }
  });

  it('reads pathological 60 kB inputs in linear time (a quadratic scan would hang here)', { timeout: 20_000 }, () => {
    const cases = [
      options([], '', 'OPTIONS', 'sip:a@b.example' + ';x'.repeat(20_000)),
      options(['Contact: ' + 'a '.repeat(20_000)]),
      options(['Contact: ' + Array.from({ length: 3_000 }, (_, i) => `<sip:u${i}@192.0.2.1>;q=0.5`).join(', ')]),
      options(['Via: ' + Array.from({ length: 2_000 }, (_, i) => `SIP/2.0/UDP h${i}.example;branch=z9hG4bK${i}`).join(', ')]),
      options(['Subject: "' + '\\"'.repeat(15_000)]),
      options(['X-Folded: start', ...Array.from({ length: 10_000 }, () => ' more')]),
      options(['Authorization: Digest ' + Array.from({ length: 4_000 }, (_, i) => `p${i}="v"`).join(', ')]),
      options(['To: <sip:a@b.example>' + ';p=[1'.repeat(10_000)]),
    ];
    for (const text of cases) holds(Buffer.from(text));
    assert.equal((req(cases[2]!).headers.contact as NameAddr[]).length, 3_000);
    assert.equal(req(cases[3]!).headers.via.length, 2_001);
  });

  it('never faults on any truncation of a corpus message', () => {
    for (const message of seeds) {
      for (let end = 0; end <= message.length; end++) holds(message.subarray(0, end));
    }
  });
});

describe('speed', () => {
  it('reports the time to parse a REGISTER (figures only; not asserted)', (t) => {
    const bytes = Buffer.from(REGISTER);
    const median = (fn: () => void): number => {
      for (let i = 0; i < 5_000; i++) fn();
      const samples: number[] = [];
      for (let round = 0; round < 41; round++) {
        const start = process.hrtime.bigint();
        for (let i = 0; i < 500; i++) fn();
        samples.push(Number(process.hrtime.bigint() - start) / 500 / 1000);
      }
      samples.sort((a, b) => a - b);
      return samples[20]!;
    };
    const ours = median(() => { parseMessage(bytes); });
    const theirs = median(() => { sip.parse(bytes); });
    const request = req(REGISTER);
    const checks = median(() => { checkRequest(request, CHECKS); });
    const answer = median(() => { serialize(makeResponse(request, 200, 'OK', { toTag: 't', headers: { Expires: '3600' } })); });
    t.diagnostic(`parse REGISTER: ${ours.toFixed(2)} µs median (the sip package's parser: ${theirs.toFixed(2)} µs, without our checks)`);
    t.diagnostic(`checkRequest: ${checks.toFixed(2)} µs; makeResponse + serialize a 200: ${answer.toFixed(2)} µs`);
    assert.ok(ours > 0);
  });
});
