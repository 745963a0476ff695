// Rings the target of a transfer: every registered contact of the extensions the
// dial plan chose, in parallel, with an INVITE that carries no SDP (a delayed
// offer, RFC 3261 §13.2.1). The answering phone then makes the offer in its 200,
// and the transfer answers it for whichever side the target joins (RFC 3725 flow
// I): this works the same for anchored media (the agent answers) and direct media
// (the transferee's phone answers, through a re-INVITE). The first 2xx wins and
// the other contacts are cancelled, as when a call forks.

import type { Logger } from 'pino';
import { endpointOfSource } from '../call-session.ts';
import { OutboundSipLeg, reasonHeader, type ContactFor } from '../sip-leg.ts';
import type { Binding } from '../../store/bindings.ts';
import type { SipStack } from '../../sip/stack.ts';
import type { NameAddr, SipResponse } from '../../sip/types.ts';

export interface DialerDeps {
  stack: SipStack;
  domain: string;
  bindingsOf(extension: string): readonly Binding[];
  contactFor: ContactFor;
  log: Logger;
}

export interface DialRequest {
  extensions: readonly string[];
  ringTimeoutSec: number;
  /** Who the target's phone shows as calling: the transferee. */
  from: NameAddr;
  /** Referred-By (RFC 3892): who asked for the transfer. */
  referredBy?: string;
  /** Each provisional answer (180, 183) from a contact. */
  onProgress?: (status: number, reason: string) => void;
  /** An SDP offer for the INVITEs (a call from a line channel); default none (delayed offer). */
  sdp?: string;
  /** Aborted when the caller gives up: every contact is cancelled and the outcome is 487. */
  signal?: AbortSignal;
}

export type DialOutcome =
  | { answered: true; leg: OutboundSipLeg; response: SipResponse; extension: string }
  | { answered: false; status: number; reason: string };

const COMPLETED_ELSEWHERE = reasonHeader(200, 'Call completed elsewhere');

/** Rings the extensions' contacts; resolves with the winner (its 200 not yet ACKed) or why nobody answered. */
export function dialTarget(deps: DialerDeps, req: DialRequest): Promise<DialOutcome> {
  const contacts = req.extensions.flatMap((extension) => deps.bindingsOf(extension).map((binding) => ({ extension, binding })));
  if (contacts.length === 0) return Promise.resolve({ answered: false, status: 480, reason: 'Temporarily Unavailable' });
  return new Promise<DialOutcome>((resolve) => {
    const legs: Array<{ leg: OutboundSipLeg; done: boolean; status?: number }> = [];
    let settled = false;
    const settle = (outcome: DialOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const cancelOthers = (winner: OutboundSipLeg | undefined, reason: string): void => {
      for (const l of legs) if (l.leg !== winner && !l.done) void l.leg.cancel(reason);
    };
    const timer = setTimeout(() => {
      cancelOthers(undefined, reasonHeader(480, 'No answer'));
      settle({ answered: false, status: 408, reason: 'Request Timeout' });
    }, req.ringTimeoutSec * 1000);
    const onAbort = (): void => {
      if (settled) return;
      cancelOthers(undefined, reasonHeader(487, 'Caller gave up'));
      settle({ answered: false, status: 487, reason: 'Request Terminated' });
    };
    if (req.signal?.aborted) queueMicrotask(onAbort);
    else req.signal?.addEventListener('abort', onAbort, { once: true });
    const allFailed = (): void => {
      if (!legs.every((l) => l.done)) return;
      const statuses = legs.map((l) => l.status ?? 480);
      if (statuses.some((s) => s === 486 || s === 600)) settle({ answered: false, status: 486, reason: 'Busy Here' });
      else if (statuses.includes(603)) settle({ answered: false, status: 603, reason: 'Decline' });
      else settle({ answered: false, status: 480, reason: 'Temporarily Unavailable' });
    };

    const fromUser = /^sip:([^@;]+)@/.exec(req.from.uri)?.[1] ?? 'branchline';
    for (const { extension, binding } of contacts) {
      const destination = endpointOfSource(binding.source);
      if (destination === undefined) continue;
      const leg = new OutboundSipLeg({
        stack: deps.stack,
        log: deps.log,
        destination,
        requestUri: binding.contact,
        from: req.from,
        to: { uri: `sip:${extension}@${deps.domain}`, params: Object.create(null) },
        contact: deps.contactFor(destination.transport, fromUser),
        route: binding.path,
        sdp: req.sdp ?? '',
      });
      if (req.referredBy !== undefined) leg.invite.headers['referred-by'] = req.referredBy;
      const entry: { leg: OutboundSipLeg; done: boolean; status?: number } = { leg, done: false };
      legs.push(entry);
      leg
        .start(
          (res) => {
            if (!settled && res.status > 100) req.onProgress?.(res.status, res.reason);
          },
          COMPLETED_ELSEWHERE,
        )
        .then(
          (res) => {
            entry.done = true;
            entry.status = res.status;
            if (res.status >= 300) {
              allFailed();
              return;
            }
            if (settled) {
              // Answered after the transfer was decided (timeout, another phone won).
              void leg.refuse2xx(res, COMPLETED_ELSEWHERE);
              return;
            }
            cancelOthers(leg, COMPLETED_ELSEWHERE);
            settle({ answered: true, leg, response: res, extension });
          },
          (err: unknown) => {
            entry.done = true;
            entry.status = (err as { name?: string }).name === 'SipTimeoutError' ? 408 : 503;
            deps.log.info({ err: (err as Error).message, extension }, 'transfer target contact did not answer');
            allFailed();
          },
        );
    }
    if (legs.length === 0) settle({ answered: false, status: 480, reason: 'Temporarily Unavailable' });
  });
}
