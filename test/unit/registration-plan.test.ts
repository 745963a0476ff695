import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planRegistration, type RegistrationRequest } from '../../agent/registrar/plan.ts';
import type { Binding } from '../../agent/store/bindings.ts';
import type { NameAddr } from '../../agent/sip/types.ts';

const limits = { min_expires: 60, max_expires: 3600, default_expires: 1800, max_contacts: 3 };
const now = 1_000_000;

function contact(uri: string, params: Record<string, string | null> = {}): NameAddr {
  return { uri, params: Object.assign(Object.create(null) as Record<string, string | null>, params) };
}

function request(over: Partial<RegistrationRequest>): RegistrationRequest {
  return { now, extension: '1001', current: [], contacts: undefined, expiresHeader: undefined, callId: 'call-1', cseq: 2, source: 'udp:192.0.2.1:5060', path: [], userAgent: 'phone', limits, ...over };
}

function bound(contactUri: string, over: Partial<Binding> = {}): Binding {
  return { extension: '1001', contact: contactUri, instance: null, callId: 'call-1', cseq: 1, expiresAt: now + 600_000, q: null, source: 'udp:192.0.2.1:5060', path: [], userAgent: 'phone', registeredAt: now - 1000, ...over };
}

test('a new contact is bound with the default expiry, capped at max_expires', () => {
  const plan = planRegistration(request({ contacts: [contact('sip:1001@192.0.2.1')] }));
  assert.equal(plan.kind, 'apply');
  if (plan.kind !== 'apply') return;
  assert.equal(plan.next[0]?.expiresAt, now + 1800_000);
  const capped = planRegistration(request({ contacts: [contact('sip:1001@192.0.2.1')], expiresHeader: '99999' }));
  assert.equal(capped.kind === 'apply' && capped.next[0]?.expiresAt, now + 3600_000);
});

test('the contact expires parameter wins over the Expires header', () => {
  const plan = planRegistration(request({ contacts: [contact('sip:1001@192.0.2.1', { expires: '120' })], expiresHeader: '3000' }));
  assert.equal(plan.kind === 'apply' && plan.next[0]?.expiresAt, now + 120_000);
});

test('an interval below min_expires is refused with 423 and Min-Expires', () => {
  const plan = planRegistration(request({ contacts: [contact('sip:1001@192.0.2.1')], expiresHeader: '30' }));
  assert.deepEqual(plan, { kind: 'reject', status: 423, reason: 'Interval Too Brief', headers: { 'Min-Expires': '60' } });
});

test('Expires: 0 removes only the named contact', () => {
  const current = [bound('sip:1001@192.0.2.1'), bound('sip:1001@192.0.2.9')];
  const plan = planRegistration(request({ current, contacts: [contact('sip:1001@192.0.2.1')], expiresHeader: '0' }));
  assert.equal(plan.kind, 'apply');
  if (plan.kind !== 'apply') return;
  assert.deepEqual(plan.next.map((b) => b.contact), ['sip:1001@192.0.2.9']);
  assert.deepEqual(plan.removed.map((b) => b.contact), ['sip:1001@192.0.2.1']);
});

test('Contact: * with Expires: 0 removes all; without Expires: 0 it is a 400', () => {
  const current = [bound('sip:a@h'), bound('sip:b@h', { callId: 'other' })];
  const plan = planRegistration(request({ current, contacts: '*', expiresHeader: '0' }));
  assert.equal(plan.kind === 'apply' && plan.next.length, 0);
  const bad = planRegistration(request({ current, contacts: '*', expiresHeader: '60' }));
  assert.equal(bad.kind === 'reject' && bad.status, 400);
});

test('a query without Contact changes nothing', () => {
  const current = [bound('sip:a@h')];
  const plan = planRegistration(request({ current }));
  assert.equal(plan.kind === 'apply' && plan.next.length === 1 && plan.upserted.length === 0 && plan.removed.length === 0, true);
});

test('an out-of-order CSeq on the same Call-ID does not touch the binding', () => {
  const current = [bound('sip:a@h', { cseq: 5 })];
  const plan = planRegistration(request({ current, contacts: [contact('sip:a@h')], cseq: 4 }));
  assert.equal(plan.kind === 'reject' && plan.status, 500);
});

test('over max_contacts the oldest untouched binding is replaced', () => {
  const current = [bound('sip:a@h', { registeredAt: 3 }), bound('sip:b@h', { registeredAt: 1 }), bound('sip:c@h', { registeredAt: 2 })];
  const plan = planRegistration(request({ current, contacts: [contact('sip:d@h')], callId: 'new-call' }));
  assert.equal(plan.kind, 'apply');
  if (plan.kind !== 'apply') return;
  assert.deepEqual(plan.next.map((b) => b.contact).sort(), ['sip:a@h', 'sip:c@h', 'sip:d@h']);
  assert.ok(plan.replaced.has('sip:b@h'));
});

test('one REGISTER carrying more contacts than allowed is refused', () => {
  const contacts = ['a', 'b', 'c', 'd'].map((u) => contact(`sip:${u}@h`));
  const plan = planRegistration(request({ contacts }));
  assert.equal(plan.kind === 'reject' && plan.status, 403);
});

test('the same +sip.instance from a new address replaces its old contact', () => {
  const instance = '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"';
  const current = [bound('sip:1001@10.0.0.5:5060', { instance })];
  const plan = planRegistration(request({ current, contacts: [contact('sip:1001@10.0.0.6:5060', { '+sip.instance': instance })], callId: 'c2' }));
  assert.equal(plan.kind, 'apply');
  if (plan.kind !== 'apply') return;
  assert.deepEqual(plan.next.map((b) => b.contact), ['sip:1001@10.0.0.6:5060']);
  assert.ok(plan.replaced.has('sip:1001@10.0.0.5:5060'));
});

test('invalid expiry values are a 400, not a guess', () => {
  assert.equal(planRegistration(request({ contacts: [contact('sip:a@h')], expiresHeader: 'soon' })).kind, 'reject');
  assert.equal(planRegistration(request({ contacts: [contact('sip:a@h', { expires: '-5' })] })).kind, 'reject');
});
