// The call model: legs named a, b1, b2…, the state machine's allowed and refused
// transitions, the change notifications features and the bus rely on, and the
// CallRecord it produces (times, mode durations counted from answer, leg outcomes).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Call, CallStateError, type CallChange } from '../../agent/calls/call.ts';
import { validateCallRecord } from '../../agent/store/call-records.ts';

function clockAt(start: number): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

function newCall(changes: CallChange[], now: () => number): Call {
  return new Call({ siteId: 'site-1', caller: '1001', callerName: 'Alice', dialed: '1002', mediaPolicy: 'anchored', onChange: (c) => changes.push(c), now });
}

describe('call model', () => {
  test('legs are a for the caller, then b1, b2 in creation order', () => {
    const clock = clockAt(1_000);
    const call = newCall([], clock.now);
    assert.equal(call.addLeg({ kind: 'sip', direction: 'inbound', party: '1001' }).id, 'a');
    assert.equal(call.addLeg({ kind: 'sip', direction: 'outbound', party: '1002' }).id, 'b1');
    assert.equal(call.addLeg({ kind: 'sip', direction: 'outbound', party: '1002' }).id, 'b2');
  });

  test('routing → ringing → early → answered → ended, each change reported once with its reason', () => {
    const changes: CallChange[] = [];
    const call = newCall(changes, Date.now);
    call.transition('ringing', '180 from 1002');
    call.transition('ringing', '180 again'); // no change, no report
    call.transition('early', '183 from 1002');
    call.transition('answered', 'answered by 1002');
    call.end('answered', 'Caller hung up');
    assert.deepEqual(changes.map((c) => [c.previous, c.state, c.reason]), [
      ['routing', 'ringing', '180 from 1002'],
      ['ringing', 'early', '183 from 1002'],
      ['early', 'answered', 'answered by 1002'],
      ['answered', 'ended', 'Caller hung up'],
    ]);
  });

  test('impossible transitions are refused; a second end is ignored', () => {
    const call = newCall([], Date.now);
    call.transition('answered', 'answered');
    assert.throws(() => call.transition('ringing', 'late 180'), CallStateError);
    assert.equal(call.end('answered', 'bye'), true);
    assert.equal(call.end('failed', 'again'), false);
    assert.equal(call.disposition, 'answered');
    assert.throws(() => call.transition('routing', 'resurrect'), CallStateError);
  });

  test('a forwarded call goes back to routing after ringing', () => {
    const call = newCall([], Date.now);
    call.transition('ringing', '180');
    call.transition('routing', 'no-answer: forward to 1003');
    call.transition('ringing', '180 from 1003');
    assert.equal(call.state, 'ringing');
  });

  test('the record: times, legs, and mode durations counted from answer', () => {
    const clock = clockAt(1_700_000_000_000);
    const call = newCall([], clock.now);
    const a = call.addLeg({ kind: 'sip', direction: 'inbound', party: '1001', callId: 'a-call' });
    const b1 = call.addLeg({ kind: 'sip', direction: 'outbound', party: '1002', callId: 'b1-call' });
    const b2 = call.addLeg({ kind: 'sip', direction: 'outbound', party: '1002', callId: 'b2-call' });
    clock.advance(2_000); // ringing
    call.transition('ringing', '180');
    clock.advance(3_000);
    call.legEnded(b2.id, 487, 'cancel');
    call.legAnswered(b1.id);
    call.legAnswered(a.id);
    call.answeredBy = '1002';
    call.transition('answered', 'answered by 1002');
    clock.advance(10_000); // talking
    call.setMode('application'); // e.g. a transfer announcement
    clock.advance(4_000);
    call.legEnded(a.id, undefined, 'caller');
    call.end('answered', 'Caller hung up');
    const record = call.toRecord();
    validateCallRecord(record);
    assert.equal(record.startedAt, 1_700_000_000_000);
    assert.equal(record.answeredAt, 1_700_000_005_000);
    assert.equal(record.endedAt, 1_700_000_019_000);
    assert.deepEqual(record.modeDurations, { bridged: 10_000, application: 4_000 });
    assert.equal(record.disposition, 'answered');
    assert.equal(record.answeredBy, '1002');
    assert.equal(record.callerName, 'Alice');
    assert.equal(record.mediaPolicy, 'anchored');
    assert.deepEqual(record.legs.map((l) => [l.leg, l.callId, l.status, l.endedBy, l.endedAt - record.startedAt]), [
      ['a', 'a-call', 200, 'caller', 19_000],
      ['b1', 'b1-call', 200, undefined, 19_000],
      ['b2', 'b2-call', 487, 'cancel', 5_000],
    ]);
  });

  test('an unanswered call has no mode time and keeps its final status and reason', () => {
    const clock = clockAt(5_000);
    const call = newCall([], clock.now);
    call.addLeg({ kind: 'sip', direction: 'inbound', party: '1001' });
    clock.advance(1_000);
    call.end('busy', 'Busy', 486);
    const record = call.toRecord();
    validateCallRecord(record);
    assert.deepEqual(record.modeDurations, { bridged: 0, application: 0 });
    assert.equal(record.finalStatus, 486);
    assert.equal(record.reason, 'Busy');
    assert.equal(record.answeredAt, undefined);
  });
});
