// What Branchline does with each message of RFC 4475 (and the extra test.dat): the
// verdict of parseMessage followed, for requests that parse, by checkRequest with
// no extensions and SDP as the only body we read. Every file of the corpus must
// have a verdict here, so a file added to the corpus fails until it is judged.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { parseMessage } from '../../agent/sip/parse.ts';
import { checkRequest } from '../../agent/sip/request-checks.ts';
import type { RequestCheckOptions } from '../../agent/sip/request-checks.ts';
import { makeResponse, serialize } from '../../agent/sip/serialize.ts';
import { parseUri } from '../../agent/sip/uri.ts';
import type { NameAddr, SipMessage, SipRequest, SipResponse } from '../../agent/sip/types.ts';

const CORPUS = process.env['SIP_TORTURE_DIR'] ?? join(import.meta.dirname, '../../../shared/sip-torture-rfc4475');

const OPTIONS: RequestCheckOptions = {
  supportedExtensions: new Set(),
  acceptedContentTypes: new Set(['application/sdp']),
};

type Verdict =
  /** parses; for a request, checkRequest answers `check` (undefined: it passes) */
  | { parses: true; check?: number }
  /** an invalid request: answered with `reply`, addressable through `partial` or not */
  | { parses: false; reply: 400 | 505; partial: boolean }
  /** an invalid response (or nothing SIP): dropped without a word */
  | { parses: false; reply: undefined };

const VERDICTS: Record<string, { section: string; verdict: Verdict }> = {
  // 3.1.1 valid messages
  'wsinv.dat': { section: '3.1.1.1', verdict: { parses: true } },
  'intmeth.dat': { section: '3.1.1.2', verdict: { parses: true } },
  'esc01.dat': { section: '3.1.1.3', verdict: { parses: true } },
  'escnull.dat': { section: '3.1.1.4', verdict: { parses: true } },
  'esc02.dat': { section: '3.1.1.5', verdict: { parses: true } },
  'lwsdisp.dat': { section: '3.1.1.6', verdict: { parses: true } },
  'longreq.dat': { section: '3.1.1.7', verdict: { parses: true } },
  'dblreq.dat': { section: '3.1.1.8', verdict: { parses: true } },
  'semiuri.dat': { section: '3.1.1.9', verdict: { parses: true } },
  'transports.dat': { section: '3.1.1.10', verdict: { parses: true } },
  // A MESSAGE whose multipart/mixed body we do not read: valid, and refused with
  // 415 as RFC 3261 §8.2.3 has a UAS do for a body type it does not understand.
  'mpart01.dat': { section: '3.1.1.11', verdict: { parses: true, check: 415 } },
  'unreason.dat': { section: '3.1.1.12', verdict: { parses: true } },
  'noreason.dat': { section: '3.1.1.13', verdict: { parses: true } },
  // 3.1.2 invalid messages
  'badinv01.dat': { section: '3.1.2.1', verdict: { parses: false, reply: 400, partial: true } },
  'clerr.dat': { section: '3.1.2.2', verdict: { parses: false, reply: 400, partial: true } },
  'ncl.dat': { section: '3.1.2.3', verdict: { parses: false, reply: 400, partial: true } },
  'scalar02.dat': { section: '3.1.2.4', verdict: { parses: false, reply: 400, partial: true } },
  'scalarlg.dat': { section: '3.1.2.5', verdict: { parses: false, reply: undefined } },
  'quotbal.dat': { section: '3.1.2.6', verdict: { parses: false, reply: 400, partial: true } },
  'ltgtruri.dat': { section: '3.1.2.7', verdict: { parses: false, reply: 400, partial: true } },
  'lwsruri.dat': { section: '3.1.2.8', verdict: { parses: false, reply: 400, partial: true } },
  'lwsstart.dat': { section: '3.1.2.9', verdict: { parses: false, reply: 400, partial: true } },
  'trws.dat': { section: '3.1.2.10', verdict: { parses: false, reply: 400, partial: true } },
  'escruri.dat': { section: '3.1.2.11', verdict: { parses: false, reply: 400, partial: true } },
  'baddate.dat': { section: '3.1.2.12', verdict: { parses: false, reply: 400, partial: true } },
  'regbadct.dat': { section: '3.1.2.13', verdict: { parses: false, reply: 400, partial: true } },
  'badaspec.dat': { section: '3.1.2.14', verdict: { parses: false, reply: 400, partial: true } },
  'baddn.dat': { section: '3.1.2.15', verdict: { parses: false, reply: 400, partial: true } },
  'badvers.dat': { section: '3.1.2.16', verdict: { parses: false, reply: 505, partial: true } },
  'mismatch01.dat': { section: '3.1.2.17', verdict: { parses: false, reply: 400, partial: true } },
  'mismatch02.dat': { section: '3.1.2.18', verdict: { parses: false, reply: 400, partial: true } },
  'bigcode.dat': { section: '3.1.2.19', verdict: { parses: false, reply: undefined } },
  // 3.2 transaction layer: parses; the missing magic cookie is the transaction layer's matter
  'badbranch.dat': { section: '3.2.1', verdict: { parses: true } },
  // 3.3 application layer
  // insuf: the 400 goes back with the Via and CSeq it had (From, To, Call-ID missing)
  'insuf.dat': { section: '3.3.1', verdict: { parses: false, reply: 400, partial: true } },
  'unkscm.dat': { section: '3.3.2', verdict: { parses: true, check: 416 } },
  'novelsc.dat': { section: '3.3.3', verdict: { parses: true, check: 416 } },
  'unksm2.dat': { section: '3.3.4', verdict: { parses: true } },
  'bext01.dat': { section: '3.3.5', verdict: { parses: true, check: 420 } },
  'invut.dat': { section: '3.3.6', verdict: { parses: true, check: 415 } },
  'regaut01.dat': { section: '3.3.7', verdict: { parses: true } },
  'multi01.dat': { section: '3.3.8', verdict: { parses: true, check: 400 } },
  // mcl01: two Content-Lengths leave the body's end unknown, a framing error found by the parser
  'mcl01.dat': { section: '3.3.9', verdict: { parses: false, reply: 400, partial: true } },
  'bcast.dat': { section: '3.3.10', verdict: { parses: true } },
  'zeromf.dat': { section: '3.3.11', verdict: { parses: true, check: 483 } },
  'cparam01.dat': { section: '3.3.12', verdict: { parses: true } },
  'cparam02.dat': { section: '3.3.13', verdict: { parses: true } },
  'regescrt.dat': { section: '3.3.14', verdict: { parses: true } },
  'sdp01.dat': { section: '3.3.15', verdict: { parses: true, check: 406 } },
  // 3.4 backward compatibility: RFC 2543 syntax (no branch, no Content-Length over UDP)
  'inv2543.dat': { section: '3.4.1', verdict: { parses: true } },
  // not from the RFC: no SIP version in the request line and a header without a colon.
  // A 400 is its due, but with no Via nothing can address it: dropped in effect.
  'test.dat': { section: 'none', verdict: { parses: false, reply: 400, partial: false } },
};

function load(file: string): Buffer {
  return readFileSync(join(CORPUS, file));
}

function parsed(file: string): SipMessage {
  const outcome = parseMessage(load(file));
  assert.ok(outcome.ok, `${file}: ${outcome.ok ? '' : outcome.detail}`);
  return outcome.message;
}

function request(file: string): SipRequest {
  const msg = parsed(file);
  assert.equal(msg.kind, 'request', file);
  return msg as SipRequest;
}

describe('RFC 4475 torture corpus', () => {
  it('has a verdict for every file, and a file for every verdict', () => {
    const files = readdirSync(CORPUS).filter((f) => f.endsWith('.dat')).sort();
    assert.deepEqual(files, Object.keys(VERDICTS).sort());
  });

  for (const [file, { section, verdict }] of Object.entries(VERDICTS)) {
    it(`${file} (§${section})`, () => {
      const outcome = parseMessage(load(file));
      if (verdict.parses) {
        assert.ok(outcome.ok, `${file} should parse: ${outcome.ok ? '' : outcome.detail}`);
        const msg = outcome.message;
        if (msg.kind === 'request') {
          const failure = checkRequest(msg, OPTIONS);
          assert.equal(failure?.status, verdict.check, `${file}: ${failure?.reason ?? 'passed'}`);
        } else {
          assert.equal(verdict.check, undefined);
        }
        return;
      }
      assert.equal(outcome.ok, false, `${file} should not parse`);
      if (outcome.ok) return;
      assert.match(outcome.detail, /^invalid (request|response): [ -~]+$/, 'a one-line printable detail');
      assert.equal(outcome.reply?.status, verdict.reply, outcome.detail);
      if (verdict.reply === undefined) {
        assert.equal(outcome.partial, undefined);
        return;
      }
      assert.equal(outcome.partial !== undefined, verdict.partial, `${file}: partial`);
      if (outcome.partial !== undefined) {
        // the partial addresses a response: serialize(makeResponse(partial)) carries its Via and CSeq
        const response = makeResponse(outcome.partial, verdict.reply, outcome.reply?.reason ?? '', { toTag: 'x1' });
        const text = serialize(response).toString('utf8');
        assert.match(text, new RegExp(`^SIP/2\\.0 ${verdict.reply} `));
        assert.match(text, /\r\nVia: SIP\/[0-9.]+\/[A-Z]+ /);
        assert.match(text, /\r\nCSeq: /);
      }
    });
  }
});

describe('what the corpus messages parse into', () => {
  it('wsinv: folding, odd whitespace and compact names read as RFC 4475 §3.1.1.1 says', () => {
    const req = request('wsinv.dat');
    assert.equal(req.uri, 'sip:vivekg@chair-dnrc.example.com;unknownparam');
    assert.equal(req.headers.to.params['tag'], '1918181833n');
    assert.equal(req.headers.from.name, 'J Rosenberg \\"');
    assert.equal(req.headers.from.params['tag'], '98asjd8');
    assert.equal(req.headers['max-forwards'], '0068');
    assert.deepEqual({ ...req.headers.cseq }, { seq: 9, method: 'INVITE' });
    assert.equal(req.headers['newfangledheader'], 'newfangled value continued newfangled value');
    assert.equal(req.headers['subject'], '');
    assert.deepEqual(req.headers.via.map((v) => [v.protocol, v.host, v.params['branch']]), [
      ['UDP', '192.0.2.2', '390skdjuw'],
      ['TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
      ['UDP', '192.168.255.111', 'z9hG4bK30239'],
    ]);
    const [contact] = req.headers.contact as NameAddr[];
    assert.equal(contact?.name, 'Quoted string ""');
    assert.deepEqual({ ...contact?.params }, { newparam: 'newvalue', secondparam: null, q: '0.33' });
    assert.equal(req.content.length, 150);
  });

  it('intmeth: an unknown method with every token character, and UTF-8 in values', () => {
    const req = request('intmeth.dat');
    assert.equal(req.method, "!interesting-Method0123456789_*+`.%indeed'~");
    assert.equal(req.headers.to.name, 'BEL:\x07 NUL:\x00 DEL:\x7f');
    assert.equal(req.headers['call-id'], 'intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{');
    assert.equal(req.headers.from.params["fromparam''~+*_!.-%"], '"работающий"');
    assert.equal(req.headers["extensionheader-!.%*+_`'~"], '\ufeff大停電');
    const uri = parseUri(req.uri);
    assert.equal(uri?.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
    assert.equal(uri?.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    assert.equal(uri?.host, 'example.com');
  });

  it('esc02: a %-escape in a method or header name is not decoded', () => {
    const req = request('esc02.dat');
    assert.equal(req.method, 'RE%47IST%45R');
    assert.equal((req.headers.contact as NameAddr[]).length, 2);
    assert.equal(req.headers['c%6fntact'], '<sip:alias2@host2.example.com>');
  });

  it('dblreq: a datagram holds one message; the octets after Content-Length are dropped', () => {
    const req = request('dblreq.dat');
    assert.equal(req.method, 'REGISTER');
    assert.equal(req.content, '');
  });

  it('inv2543: without Content-Length a datagram body is the rest of the datagram', () => {
    const req = request('inv2543.dat');
    assert.equal(req.headers['content-length'], undefined);
    assert.equal(req.content.length, 105);
    assert.ok(req.content.startsWith('v=0\r\n'));
  });

  it('mpart01: a binary body comes through byte for byte', () => {
    const bytes = load('mpart01.dat');
    const req = request('mpart01.dat');
    assert.equal(req.content.length, 553);
    assert.deepEqual(Buffer.from(req.content, 'latin1'), bytes.subarray(bytes.length - 553));
    assert.equal(serialize(req).subarray(-553).compare(bytes.subarray(bytes.length - 553)), 0);
  });

  it('transports, longreq and semiuri keep every Via and the user part as written', () => {
    assert.deepEqual(request('transports.dat').headers.via.map((v) => v.protocol), ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP']);
    const longreq = request('longreq.dat');
    assert.equal(longreq.headers.via.length, 34);
    assert.equal(longreq.headers.via[33]?.params['received'], '192.0.2.5');
    assert.equal(parseUri(request('semiuri.dat').uri)?.user, 'user;par=u%40example.net');
  });

  it('unreason and noreason: a UTF-8 reason phrase, and an empty one', () => {
    const unreason = parsed('unreason.dat') as SipResponse;
    assert.equal(unreason.status, 200);
    assert.ok(unreason.reason.startsWith('= 2**3 * 5**2 но'), unreason.reason);
    const noreason = parsed('noreason.dat') as SipResponse;
    assert.equal(noreason.status, 100);
    assert.equal(noreason.reason, '');
  });

  it('badbranch: parses with a branch that is only the magic cookie, for the transaction layer to judge', () => {
    assert.equal(request('badbranch.dat').headers.via[0]?.params['branch'], 'z9hG4bK');
  });

  it('bext01: 420 lists the unknown Require tags, not the Proxy-Require ones (Branchline answers as a UAS)', () => {
    const failure = checkRequest(request('bext01.dat'), OPTIONS);
    assert.deepEqual(failure, {
      status: 420,
      reason: 'Bad Extension',
      headers: { Unsupported: 'nothingSupportsThis, nothingSupportsThisEither' },
    });
    const knowing = { ...OPTIONS, supportedExtensions: new Set(['nothingSupportsThis', 'nothingSupportsThisEither']) };
    assert.equal(checkRequest(request('bext01.dat'), knowing), undefined);
  });

  it('invut: 415 names the types we read in Accept', () => {
    assert.deepEqual(checkRequest(request('invut.dat'), OPTIONS), {
      status: 415,
      reason: 'Unsupported Media Type',
      headers: { Accept: 'application/sdp' },
    });
  });

  it('mpart01 passes when multipart/mixed is a type we read', () => {
    const reading = { ...OPTIONS, acceptedContentTypes: new Set(['application/sdp', 'multipart/mixed']) };
    assert.equal(checkRequest(request('mpart01.dat'), reading), undefined);
  });

  it('zeromf: Max-Forwards 0 is answered 483 only when we would pass the request on', () => {
    const req = request('zeromf.dat');
    assert.equal(checkRequest(req, OPTIONS)?.status, 483);
    // an OPTIONS addressed to this box is answered normally (RFC 3261 §11, RFC 4475 §3.3.11)
    assert.equal(checkRequest(req, { ...OPTIONS, isLocal: (r) => r.method === 'OPTIONS' }), undefined);
  });

  it('multi01: 400 for the repeated single-valued headers', () => {
    const failure = checkRequest(request('multi01.dat'), OPTIONS);
    assert.equal(failure?.status, 400);
    assert.match(failure?.reason ?? '', /more than one/);
  });

  it('regaut01: an unknown Authorization scheme parses for the registrar to challenge', () => {
    const auth = request('regaut01.dat').headers.authorization;
    assert.equal(auth?.length, 1);
    assert.equal(auth?.[0]?.scheme, 'NoOneKnowsThisScheme');
    assert.deepEqual({ ...auth?.[0]?.params }, { 'opaque-data': 'here' });
  });

  it('cparam01/cparam02: a parameter outside <> belongs to the Contact, inside to the URI', () => {
    const [outside] = request('cparam01.dat').headers.contact as NameAddr[];
    assert.equal(outside?.uri, 'sip:+19725552222@gw1.example.net');
    assert.ok(outside !== undefined && 'unknownparam' in outside.params);
    const [inside] = request('cparam02.dat').headers.contact as NameAddr[];
    assert.equal(inside?.uri, 'sip:+19725552222@gw1.example.net;unknownparam');
    assert.deepEqual(Object.keys(inside?.params ?? {}), []);
    assert.equal(parseUri(inside?.uri ?? '')?.params['unknownparam'], null);
  });

  it('regescrt: the escaped header of a Contact URI is kept for the registrar to store', () => {
    const [contact] = request('regescrt.dat').headers.contact as NameAddr[];
    assert.equal(contact?.uri, 'sip:user@example.com?Route=%3Csip:sip.example.com%3E');
    assert.equal(parseUri(contact?.uri ?? '')?.headers['Route'], '%3Csip:sip.example.com%3E');
  });

  it('unksm2: non-SIP schemes in To, From and Contact parse; their URIs keep scheme and text', () => {
    const req = request('unksm2.dat');
    assert.equal(req.headers.to.uri, 'isbn:2983792873');
    assert.equal(req.headers.from.uri, 'http://www.example.com');
    const uri = parseUri((req.headers.contact as NameAddr[])[0]?.uri ?? '');
    assert.equal(uri?.scheme, 'name');
    assert.equal(uri?.host, '');
  });

  it('bcast: a response with a broadcast Via parses; dropping it is the transaction layer\'s', () => {
    const res = parsed('bcast.dat') as SipResponse;
    assert.equal(res.headers.via[1]?.host, '255.255.255.255');
  });
});

describe('what the refusals carry', () => {
  function refused(file: string) {
    const outcome = parseMessage(load(file));
    assert.equal(outcome.ok, false);
    if (outcome.ok) throw new Error('unreachable');
    return outcome;
  }

  it('insuf: the partial has the Via and CSeq, and invents no From, To or Call-ID', () => {
    const { partial } = refused('insuf.dat');
    assert.equal(partial?.headers.via[0]?.params['branch'], 'z9hG4bKkdj.insuf');
    assert.deepEqual({ ...partial?.headers.cseq }, { seq: 193942, method: 'INVITE' });
    const text = serialize(makeResponse(partial!, 400, 'Bad Request')).toString();
    assert.doesNotMatch(text, /\r\n(From|To|Call-ID):/);
  });

  it('scalar02: the overlarge CSeq is echoed as the client wrote it', () => {
    const { partial, detail } = refused('scalar02.dat');
    assert.match(detail, /CSeq/);
    const text = serialize(makeResponse(partial!, 400, 'Bad Request')).toString();
    assert.match(text, /\r\nCSeq: 36893488147419103232 REGISTER\r\n/);
  });

  it('baddn: the unparsable From is echoed verbatim, and the To gets its tag', () => {
    const { partial } = refused('baddn.dat');
    const text = serialize(makeResponse(partial!, 400, 'Bad Request', { toTag: 't9' })).toString();
    assert.match(text, /\r\nFrom: Bell, Alexander <sip:a\.g\.bell@example\.com>;tag=43\r\n/);
    assert.match(text, /\r\nTo: Watson, Thomas <sip:t\.watson@example\.org>;tag=t9\r\n/);
  });

  it('badinv01: the Via whose parameters broke still addresses the 400', () => {
    const { partial } = refused('badinv01.dat');
    assert.equal(partial?.headers.via[0]?.host, '192.0.2.15');
  });

  it('details name the fault', () => {
    const expected: Record<string, RegExp> = {
      'clerr.dat': /Content-Length 9999 exceeds the 154 bytes/,
      'ncl.dat': /Content-Length/,
      'quotbal.dat': /unterminated quoted/,
      'ltgtruri.dat': /Request-URI/,
      'lwsruri.dat': /single spaces/,
      'lwsstart.dat': /single spaces/,
      'trws.dat': /single spaces/,
      'escruri.dat': /escaped headers/,
      'baddate.dat': /Date/,
      'regbadct.dat': /not enclosed in <>/,
      'badaspec.dat': /whitespace inside <>/,
      'baddn.dat': /display name/,
      'badvers.dat': /version/,
      'mismatch01.dat': /CSeq method/,
      'mismatch02.dat': /CSeq method/,
      'mcl01.dat': /more than one Content-Length/,
      'insuf.dat': /missing From/,
      'scalarlg.dat': /CSeq/,
      'bigcode.dat': /status code/,
      'test.dat': /SIP version/,
    };
    for (const [file, pattern] of Object.entries(expected)) assert.match(refused(file).detail, pattern, file);
  });
});
