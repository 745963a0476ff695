// The rules of the call features that need no network: what a Refer-To and a
// Replaces say (RFC 3515, RFC 3891), how a session interval is negotiated and when
// its timers fire (RFC 4028), and what a PRACK's RAck names (RFC 3262). Requests
// are parsed from their wire text by the agent's own parser, as they would arrive.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseReferTo, parseReplaces, TransferRequestError } from '../../agent/calls/features/refer-to.ts';
import { parseRAck } from '../../agent/calls/features/reliable-provisionals.ts';
import { expiryDelayMs, hasOptionTag, negotiate, parseSessionExpires, refreshDelayMs, SessionTimers } from '../../agent/calls/features/session-timer.ts';
import pino from 'pino';
import { EventBus } from '../../agent/events/bus.ts';
import { parseMessage } from '../../agent/sip/parse.ts';
import type { SipRequest } from '../../agent/sip/types.ts';

function invite(extra: string[]): SipRequest {
  const text = [
    'INVITE sip:2001@branchline.test SIP/2.0',
    'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-test-1',
    'Max-Forwards: 70',
    'From: <sip:1001@branchline.test>;tag=abc',
    'To: <sip:2001@branchline.test>',
    'Call-ID: features-test@127.0.0.1',
    'CSeq: 2 INVITE',
    'Contact: <sip:1001@127.0.0.1:5070>',
    ...extra,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const parsed = parseMessage(Buffer.from(text, 'latin1'));
  if (!parsed.ok || parsed.message.kind !== 'request') throw new Error(`test INVITE does not parse: ${parsed.ok ? 'a response' : parsed.detail}`);
  return parsed.message;
}

const SETTINGS = { sessionExpires: 1800, minSE: 90 };

describe('Refer-To and Replaces', () => {
  test('a blind transfer names a number; separators and escapes are removed', () => {
    assert.deepEqual(parseReferTo('<sip:1003@branchline.test>'), { uri: 'sip:1003@branchline.test', dialed: '1003' });
    assert.equal(parseReferTo('"Front desk" <sip:%2B1-555-0100@branchline.test;user=phone>').dialed, '+15550100');
    assert.equal(parseReferTo('<tel:+1-555-0100>').dialed, '+15550100');
  });

  test('an attended transfer carries the consulted dialog in an escaped Replaces', () => {
    const t = parseReferTo('<sip:1003@branchline.test?Replaces=abc%40host%3Bto-tag%3Dx1%3Bfrom-tag%3Dy2>');
    assert.equal(t.uri, 'sip:1003@branchline.test');
    assert.deepEqual(t.replaces, { callId: 'abc@host', toTag: 'x1', fromTag: 'y2', earlyOnly: false });
  });

  test('a missing, empty or unusable Refer-To is a 400; an unknown scheme a 416', () => {
    const statusOf = (value: unknown): number | undefined => {
      try {
        parseReferTo(value);
        return undefined;
      } catch (err) {
        assert.ok(err instanceof TransferRequestError);
        return err.status;
      }
    };
    assert.equal(statusOf(undefined), 400);
    assert.equal(statusOf('   '), 400);
    assert.equal(statusOf('<sip:branchline.test>'), 400);
    assert.equal(statusOf('not an address <<'), 400);
    assert.equal(statusOf('<mailto:bob@example.com>'), 416);
  });

  test('Replaces needs both tags; early-only is kept', () => {
    assert.deepEqual(parseReplaces('id-1;from-tag=f;to-tag=t;early-only'), { callId: 'id-1', toTag: 't', fromTag: 'f', earlyOnly: true });
    assert.throws(() => parseReplaces('id-1;to-tag=t'), TransferRequestError);
    assert.throws(() => parseReplaces(';to-tag=t;from-tag=f'), TransferRequestError);
  });
});

describe('session timers (RFC 4028)', () => {
  test('Session-Expires values parse with their refresher; garbage is invalid', () => {
    assert.deepEqual(parseSessionExpires('1800;refresher=uac'), { seconds: 1800, refresher: 'uac' });
    assert.deepEqual(parseSessionExpires(' 90 ; refresher=UAS'), { seconds: 90, refresher: 'uas' });
    assert.deepEqual(parseSessionExpires('600'), { seconds: 600 });
    assert.equal(parseSessionExpires(undefined), undefined);
    assert.equal(parseSessionExpires('soon'), 'invalid');
    assert.equal(parseSessionExpires('-5'), 'invalid');
  });

  test('an interval under Min-SE is too small; our Min-SE is what the 422 says', () => {
    assert.deepEqual(negotiate(invite(['Supported: timer', 'Session-Expires: 30']), SETTINGS), { kind: 'too-small', minSE: 90 });
  });

  test('no Session-Expires and no timer support: the call is not timed', () => {
    assert.deepEqual(negotiate(invite([]), SETTINGS), { kind: 'none' });
  });

  test('a caller that supports timers refreshes itself, with our interval if it gave none', () => {
    assert.deepEqual(negotiate(invite(['Supported: replaces, timer']), SETTINGS), { kind: 'timed', seconds: 1800, refresher: 'uac', callerSupports: true });
    assert.deepEqual(negotiate(invite(['Supported: timer', 'Session-Expires: 300;refresher=uas']), SETTINGS), {
      kind: 'timed',
      seconds: 300,
      refresher: 'uas',
      callerSupports: true,
    });
  });

  test('a caller without timer support (Session-Expires put in by a proxy) leaves the refreshing to us', () => {
    assert.deepEqual(negotiate(invite(['Session-Expires: 600;refresher=uac']), SETTINGS), { kind: 'timed', seconds: 600, refresher: 'uas', callerSupports: false });
  });

  test("the caller's Min-SE raises the interval we would pick", () => {
    const n = negotiate(invite(['Supported: timer', 'Min-SE: 2400']), SETTINGS);
    assert.equal(n.kind === 'timed' ? n.seconds : 0, 2400);
  });

  test('the side that does not refresh gives up min(32 s, a third) early; the refresher refreshes at half', () => {
    assert.equal(expiryDelayMs(90), 60_000);
    assert.equal(expiryDelayMs(1800), 1_768_000);
    assert.equal(refreshDelayMs(1800), 900_000);
  });

  test('Min-SE under 90 s is refused at start', () => {
    const core = { interceptDialog: () => () => undefined };
    assert.throws(() => new SessionTimers({ sessionExpires: 1800, minSE: 30 }, core, new EventBus(pino({ level: 'silent' }))), RangeError);
  });

  test('option tags are found in comma lists, case-insensitively', () => {
    assert.ok(hasOptionTag('path, 100rel', '100rel'));
    assert.ok(hasOptionTag('TIMER', 'timer'));
    assert.ok(!hasOptionTag('timers', 'timer'));
    assert.ok(!hasOptionTag(undefined, 'timer'));
  });
});

describe('RAck (RFC 3262)', () => {
  test('RSeq, CSeq number and method', () => {
    assert.deepEqual(parseRAck('776656 1 INVITE'), { rseq: 776656, cseq: 1, method: 'INVITE' });
    assert.equal(parseRAck('1 INVITE'), undefined);
    assert.equal(parseRAck(undefined), undefined);
  });
});
