// SIP stream framing (RFC 3261 18.3, RFC 5626 3.5.1): bytes in, frame events out.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StreamFramer, readContentLength } from '../../agent/sip/framing.ts';
import type { FrameEvent } from '../../agent/sip/framing.ts';

function sipMessage(body = '', extraHeaders = ''): Buffer {
  const head =
    'MESSAGE sip:1001@127.0.0.1 SIP/2.0\r\n' +
    'Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKframe1\r\n' +
    'From: <sip:1002@127.0.0.1>;tag=a\r\n' +
    'To: <sip:1001@127.0.0.1>\r\n' +
    'Call-ID: frame-test\r\n' +
    'CSeq: 1 MESSAGE\r\n' +
    extraHeaders +
    `Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n`;
  return Buffer.from(head + body, 'latin1');
}

function messages(events: FrameEvent[]): string[] {
  return events.filter((e) => e.kind === 'message').map((e) => (e.kind === 'message' ? e.bytes.toString('latin1') : ''));
}

function errorOf(events: FrameEvent[]): { failure: string; status: number | undefined; hasHeader: boolean } | undefined {
  const e = events.find((x) => x.kind === 'error');
  if (e === undefined || e.kind !== 'error') return undefined;
  return { failure: e.error.failure, status: e.error.status, hasHeader: e.error.header !== undefined };
}

describe('StreamFramer', () => {
  it('cuts one message with its body, exactly', () => {
    const framer = new StreamFramer({ maxMessageBytes: 65535 });
    const msg = sipMessage('hello there');
    assert.deepEqual(messages(framer.push(msg)), [msg.toString('latin1')]);
    assert.equal(framer.bufferedBytes, 0);
  });

  it('reassembles a message delivered one byte at a time', () => {
    const framer = new StreamFramer({ maxMessageBytes: 65535 });
    const msg = sipMessage('x'.repeat(300));
    const out: FrameEvent[] = [];
    for (let i = 0; i < msg.length; i++) {
      const events = framer.push(msg.subarray(i, i + 1));
      if (i < msg.length - 1) assert.equal(events.length, 0, `no event before the last byte (byte ${i})`);
      out.push(...events);
    }
    assert.deepEqual(messages(out), [msg.toString('latin1')]);
  });

  it('splits several messages that arrive in one chunk, and a third split across chunks', () => {
    const framer = new StreamFramer({ maxMessageBytes: 65535 });
    const a = sipMessage('first');
    const b = sipMessage('');
    const c = sipMessage('third body');
    const joined = Buffer.concat([a, b, c]);
    const cut = a.length + b.length + 10;
    const first = framer.push(joined.subarray(0, cut));
    assert.deepEqual(messages(first), [a.toString('latin1'), b.toString('latin1')]);
    assert.equal(framer.bufferedBytes, 10);
    assert.deepEqual(messages(framer.push(joined.subarray(cut))), [c.toString('latin1')]);
  });

  it('reports a CRLFCRLF ping, also when split, and ignores a lone CRLF pong', () => {
    const framer = new StreamFramer({ maxMessageBytes: 65535 });
    assert.deepEqual(framer.push(Buffer.from('\r\n\r\n')), [{ kind: 'ping' }]);
    assert.deepEqual(framer.push(Buffer.from('\r\n')), []);
    assert.deepEqual(framer.push(Buffer.from('\r\n')), [{ kind: 'ping' }]);
    const msg = sipMessage('after pong');
    const events = framer.push(Buffer.concat([Buffer.from('\r\n'), msg]));
    assert.deepEqual(events, [{ kind: 'message', bytes: msg }]);
  });

  it('reports a ping between two messages', () => {
    const framer = new StreamFramer({ maxMessageBytes: 65535 });
    const msg = sipMessage('');
    const events = framer.push(Buffer.concat([msg, Buffer.from('\r\n\r\n'), msg]));
    assert.deepEqual(
      events.map((e) => e.kind),
      ['message', 'ping', 'message'],
    );
  });

  it('accepts the compact form l: and a folded Content-Length', () => {
    const compact = Buffer.from(sipMessage('abc').toString('latin1').replace('Content-Length: 3', 'l:3'), 'latin1');
    assert.deepEqual(messages(new StreamFramer({ maxMessageBytes: 65535 }).push(compact)), [compact.toString('latin1')]);
    const folded = Buffer.from(sipMessage('abcd').toString('latin1').replace('Content-Length: 4', 'Content-Length:\r\n  4'), 'latin1');
    assert.deepEqual(messages(new StreamFramer({ maxMessageBytes: 65535 }).push(folded)), [folded.toString('latin1')]);
  });

  it('accepts a 62 KB message (body included) under a 65535-byte limit', () => {
    const framer = new StreamFramer({ maxMessageBytes: 65535 });
    const msg = sipMessage('b'.repeat(62 * 1024), 'Content-Type: text/plain\r\n');
    assert.ok(msg.length > 62 * 1024 && msg.length <= 65535);
    const out: FrameEvent[] = [];
    for (let i = 0; i < msg.length; i += 1400) out.push(...framer.push(msg.subarray(i, i + 1400)));
    assert.deepEqual(messages(out), [msg.toString('latin1')]);
  });

  for (const [label, header, failure] of [
    ['missing', '', 'missing-content-length'],
    ['non-numeric', 'Content-Length: abc\r\n', 'invalid-content-length'],
    ['negative', 'Content-Length: -1\r\n', 'invalid-content-length'],
    ['fractional', 'Content-Length: 1.5\r\n', 'invalid-content-length'],
    ['list-valued', 'Content-Length: 10, 10\r\n', 'invalid-content-length'],
    ['blank', 'Content-Length: \r\n', 'invalid-content-length'],
    ['repeated', 'Content-Length: 0\r\nl: 0\r\n', 'multiple-content-length'],
  ] as const) {
    it(`fails with 400 on a ${label} Content-Length and stops for good`, () => {
      const framer = new StreamFramer({ maxMessageBytes: 65535 });
      const head = 'OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\nCall-ID: c\r\n' + header + '\r\n';
      const events = framer.push(Buffer.from(head + 'trailing bytes', 'latin1'));
      assert.deepEqual(errorOf(events), { failure, status: 400, hasHeader: true });
      assert.ok(framer.isFailed);
      assert.equal(framer.bufferedBytes, 0);
      assert.deepEqual(framer.push(sipMessage('')), [], 'nothing after a framing error');
    });
  }

  it('fails with 413 when Content-Length would take the message past the limit', () => {
    const framer = new StreamFramer({ maxMessageBytes: 1000 });
    const events = framer.push(Buffer.from('OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999\r\n\r\n', 'latin1'));
    assert.deepEqual(errorOf(events), { failure: 'message-too-large', status: 413, hasHeader: true });
  });

  it('stops on the first chunk that takes an unterminated header block past the limit, and frees it', () => {
    const framer = new StreamFramer({ maxMessageBytes: 4096 });
    const junk = Buffer.alloc(1024, 'a');
    let failedAfter = -1;
    let maxHeld = 0;
    for (let i = 0; i < 1024 && failedAfter < 0; i++) {
      const events = framer.push(junk);
      maxHeld = Math.max(maxHeld, framer.bufferedBytes);
      const err = errorOf(events);
      if (err !== undefined) {
        assert.deepEqual(err, { failure: 'header-too-large', status: undefined, hasHeader: false });
        failedAfter = (i + 1) * junk.length;
      }
    }
    assert.equal(failedAfter, 5 * 1024, 'fails on the first chunk past 4096 bytes');
    assert.ok(maxHeld <= 4096, `held ${maxHeld} bytes`);
    assert.equal(framer.bufferedBytes, 0, 'buffer released after the error');
  });

  it('answers 513 when a complete header block alone is over the limit', () => {
    const framer = new StreamFramer({ maxMessageBytes: 200 });
    const head = 'OPTIONS sip:a@b SIP/2.0\r\nX-Pad: ' + 'p'.repeat(300) + '\r\nContent-Length: 0\r\n\r\n';
    assert.deepEqual(errorOf(framer.push(Buffer.from(head))), { failure: 'header-too-large', status: 513, hasHeader: true });
  });
});

describe('readContentLength', () => {
  it('reads the value with surrounding whitespace and any header-name case', () => {
    assert.deepEqual(readContentLength('INVITE sip:a@b SIP/2.0\r\ncontent-LENGTH :  42 '), { ok: true, length: 42 });
  });
  it('does not mistake a header whose name only starts with l for the compact form', () => {
    assert.deepEqual(readContentLength('INVITE sip:a@b SIP/2.0\r\nLocation: 5\r\nl: 7'), { ok: true, length: 7 });
  });
  it('allows leading zeros (1*DIGIT) and reads an absurdly long number as too large', () => {
    assert.deepEqual(readContentLength('INVITE sip:a@b SIP/2.0\r\nContent-Length: 00000000001'), { ok: true, length: 1 });
    assert.deepEqual(readContentLength('INVITE sip:a@b SIP/2.0\r\nContent-Length: ' + '9'.repeat(40)), { ok: true, length: Number.POSITIVE_INFINITY });
  });
});
