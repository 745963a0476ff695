// What transfer and INVITE-with-Replaces share: one party of an answered call is
// given to someone else, who brings an SDP offer. The call's media path answers it
// for the side being replaced — anchored: the agent's RTP session on that side now
// talks to the newcomer and the party that stays notices nothing; direct: the party
// that stays is re-INVITEd with the newcomer's offer and its phone answers
// (RFC 3725 flow I).

import type { Logger } from 'pino';
import type { CallSession } from '../call-session.ts';
import type { Side } from '../media-path.ts';
import type { Dialog } from '../../sip/dialog.ts';
import type { SipStack } from '../../sip/stack.ts';
import type { SipResponse } from '../../sip/types.ts';

export function otherSide(side: Side): Side {
  return side === 'a' ? 'b' : 'a';
}

/** The dialog of one side of an answered call. */
export function dialogOf(session: CallSession, side: Side): Dialog | undefined {
  return side === 'a' ? session.a.dialog : session.b?.sip.dialog;
}

/** The extension (or number) on one side of an answered call. */
export function partyOf(session: CallSession, side: Side): string {
  return side === 'a' ? (session.request.caller.extension ?? session.request.caller.number) : (session.b?.extension ?? '');
}

/** A request in a dialog, its final response; undefined when none came (timeout, dialog gone). */
export async function sendInDialog(stack: SipStack, dialog: Dialog, method: string, log: Logger, sdp = '', headers: Record<string, string> = {}): Promise<SipResponse | undefined> {
  try {
    const request = dialog.createRequest(method, { headers, ...(sdp === '' ? {} : { body: sdp, contentType: 'application/sdp' }) });
    return await stack.request(request, dialog.nextHop());
  } catch (err) {
    log.info({ err: (err as Error).message, method }, 'request got no answer');
    return undefined;
  }
}

/**
 * The answer to a newcomer's offer for the side it replaces, or undefined when none
 * could be had (the call then stays as it was).
 */
export async function answerForSide(stack: SipStack, session: CallSession, side: Side, offer: string, log: Logger): Promise<string | undefined> {
  const media = session.media;
  if (media === undefined || offer === '') return undefined;
  let local;
  try {
    local = media.midCallOffer(side, offer);
  } catch (err) {
    log.info({ err: (err as Error).message }, "newcomer's offer refused");
    return undefined;
  }
  if (local.kind === 'local') return local.sdp;
  const stays = dialogOf(session, otherSide(side));
  if (stays === undefined) return undefined;
  const res = await sendInDialog(stack, stays, 'INVITE', log, offer);
  if (res === undefined || res.status >= 300) return undefined;
  stays.refreshTarget(res);
  await stack.sendStateless(stays.ack(res.headers.cseq.seq), stays.nextHop()).catch(() => undefined);
  return res.content === '' ? undefined : res.content;
}
