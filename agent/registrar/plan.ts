import type { Binding } from '../store/bindings.ts';
import type { NameAddr } from '../sip/types.ts';
import { parseUri } from '../sip/uri.ts';

export interface RegistrarLimits {
  min_expires: number;
  max_expires: number;
  default_expires: number;
  max_contacts: number;
}

export interface RegistrationRequest {
  now: number;
  extension: string;
  current: readonly Binding[];
  contacts: NameAddr[] | '*' | undefined;
  expiresHeader: unknown;
  callId: string;
  cseq: number;
  source: string;
  path: string[];
  userAgent: string | null;
  limits: RegistrarLimits;
}

export type RegistrationPlan = {
  kind: 'apply';
  /** The extension's bindings after this REGISTER. */
  next: Binding[];
  removed: Binding[];
  upserted: Binding[];
  /** Contacts pushed out by max_contacts or by a newer binding of the same instance. */
  replaced: Set<string>;
};

export type RegistrationRejection = { kind: 'reject'; status: number; reason: string; headers?: Record<string, string> };

function parseSeconds(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const text = String(value).trim();
  if (!/^[0-9]{1,10}$/.test(text)) return undefined;
  return Number(text);
}

/**
 * Decides what a REGISTER does to an extension's bindings (RFC 3261 §10.3 steps 6-8,
 * RFC 5626 instance replacement), without side effects: the registrar applies the
 * plan and persists it. Kept pure so every rule is unit-tested directly.
 */
export function planRegistration(r: RegistrationRequest): RegistrationPlan | RegistrationRejection {
  const { limits, now } = r;
  const headerExpires = parseSeconds(r.expiresHeader);
  if (r.expiresHeader !== undefined && headerExpires === undefined) {
    return { kind: 'reject', status: 400, reason: 'Bad Request (invalid Expires)' };
  }

  // A query: no Contact → answer with the current bindings.
  if (r.contacts === undefined || (Array.isArray(r.contacts) && r.contacts.length === 0)) {
    return { kind: 'apply', next: [...r.current], removed: [], upserted: [], replaced: new Set() };
  }

  if (r.contacts === '*') {
    if (headerExpires !== 0) return { kind: 'reject', status: 400, reason: 'Bad Request (Contact: * needs Expires: 0)' };
    // §10.3 step 6: a binding from the same Call-ID with a newer CSeq survives.
    const removed = r.current.filter((b) => b.callId !== r.callId || b.cseq < r.cseq);
    const next = r.current.filter((b) => !removed.includes(b));
    return { kind: 'apply', next, removed, upserted: [], replaced: new Set() };
  }

  const wanted = new Map<string, { expires: number; q: number | null; instance: string | null }>();
  for (const c of r.contacts) {
    const uri = parseUri(c.uri);
    if (!uri || !uri.host) return { kind: 'reject', status: 400, reason: 'Bad Request (invalid Contact URI)' };
    const paramExpires = c.params['expires'];
    let expires = paramExpires !== undefined && paramExpires !== null ? parseSeconds(paramExpires) : headerExpires;
    if (paramExpires !== undefined && expires === undefined) return { kind: 'reject', status: 400, reason: 'Bad Request (invalid expires parameter)' };
    expires ??= limits.default_expires;
    if (expires !== 0 && expires < limits.min_expires) {
      return { kind: 'reject', status: 423, reason: 'Interval Too Brief', headers: { 'Min-Expires': String(limits.min_expires) } };
    }
    const qText = c.params['q'];
    const q = qText !== undefined && qText !== null && /^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/.test(qText) ? Number(qText) : null;
    const instance = c.params['+sip.instance'] ?? null;
    wanted.set(c.uri, { expires: Math.min(expires, limits.max_expires), q, instance });
  }

  const removed: Binding[] = [];
  const upserted: Binding[] = [];
  const replaced = new Set<string>();
  let next = [...r.current];

  for (const [contact, w] of wanted) {
    const existing = next.find((b) => b.contact === contact);
    if (existing && existing.callId === r.callId && existing.cseq >= r.cseq) {
      return { kind: 'reject', status: 500, reason: 'Server Internal Error (out-of-order CSeq)', headers: { 'Retry-After': '1' } };
    }
    if (w.expires === 0) {
      if (existing) {
        removed.push(existing);
        next = next.filter((b) => b !== existing);
      }
      continue;
    }
    // RFC 5626: a new flow of the same instance replaces the old contact.
    if (w.instance) {
      for (const old of next.filter((b) => b.instance === w.instance && b.contact !== contact)) {
        removed.push(old);
        replaced.add(old.contact);
        next = next.filter((b) => b !== old);
      }
    }
    const binding: Binding = {
      extension: r.extension,
      contact,
      instance: w.instance,
      callId: r.callId,
      cseq: r.cseq,
      expiresAt: now + w.expires * 1000,
      q: w.q,
      source: r.source,
      path: r.path,
      userAgent: r.userAgent,
      registeredAt: existing?.registeredAt ?? now,
    };
    upserted.push(binding);
    next = next.filter((b) => b !== existing);
    next.push(binding);
  }

  if (upserted.length > limits.max_contacts) {
    return { kind: 'reject', status: 403, reason: `Forbidden (more than ${limits.max_contacts} contacts)` };
  }
  // Over the cap: the bindings this request did not touch go, oldest first (a phone
  // that rebooted behind NAT leaves a stale contact that would otherwise block it).
  while (next.length > limits.max_contacts) {
    const victim = next.filter((b) => !upserted.includes(b)).sort((a, b) => a.registeredAt - b.registeredAt)[0];
    if (!victim) break;
    removed.push(victim);
    replaced.add(victim.contact);
    next = next.filter((b) => b !== victim);
  }
  return { kind: 'apply', next, removed, upserted, replaced };
}
