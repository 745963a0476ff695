// An INVITE with Replaces (RFC 3891): a phone takes over one party's place in an
// answered call, naming that party's dialog with the agent — a phone picking up a
// call another phone of the same person holds, or the last step of an attended
// transfer done between phones. The newcomer's offer is answered for the replaced
// side (take-over.ts), the newcomer gets the 200, the replaced phone a BYE, and the
// call goes on with the newcomer in the record.
//
// Refused: a Replaces that does not parse (400); no such dialog, or one not answered
// yet (481, §6.1: early dialogs are not replaced here); early-only for an answered
// call (486); an INVITE without an offer, or an offer nobody can answer (488).

import type { Logger } from 'pino';
import type { CallFeature } from '../call-core.ts';
import type { CallSession } from '../call-session.ts';
import type { Side } from '../media-path.ts';
import { reasonHeader, type ContactFor } from '../sip-leg.ts';
import { Dialog, DialogError } from '../../sip/dialog.ts';
import type { IncomingRequest, SipStack } from '../../sip/stack.ts';
import { parseUri, unescapeUriPart } from '../../sip/uri.ts';
import { parseReplaces, TransferRequestError, type ReplacesTarget } from './refer-to.ts';
import { answerForSide, dialogOf, partyOf, sendInDialog } from './take-over.ts';

export interface ReplacesDeps {
  stack: SipStack;
  contactFor: ContactFor;
  findDialog(callId: string, localTag: string, remoteTag: string): { session: CallSession; side: Side } | undefined;
  log: Logger;
}

const REPLACED = reasonHeader(200, 'Call replaced');

export class InviteWithReplaces implements CallFeature {
  readonly #deps: ReplacesDeps;

  constructor(deps: ReplacesDeps) {
    this.#deps = deps;
  }

  /** Takes every new INVITE that carries Replaces (after authentication). */
  screen(incoming: IncomingRequest, toTag: string): boolean {
    const value = incoming.request.headers['replaces'];
    if (value === undefined) return false;
    let target: ReplacesTarget;
    try {
      if (typeof value !== 'string') throw new TransferRequestError('more than one Replaces');
      target = parseReplaces(value);
    } catch (err) {
      if (!(err instanceof TransferRequestError)) throw err;
      incoming.respond(400, `Bad Request (${err.message})`, { toTag });
      return true;
    }
    this.#take(incoming, toTag, target).catch((err: unknown) => {
      this.#deps.log.error({ err }, 'INVITE with Replaces failed');
      incoming.respond(500, 'Server Internal Error', { toTag });
    });
    return true;
  }

  async #take(incoming: IncomingRequest, toTag: string, target: ReplacesTarget): Promise<void> {
    const { stack, findDialog } = this.#deps;
    const req = incoming.request;
    // The tags as the sender wrote them may be either way round from ours.
    const found = findDialog(target.callId, target.toTag, target.fromTag) ?? findDialog(target.callId, target.fromTag, target.toTag);
    const old = found === undefined ? undefined : dialogOf(found.session, found.side);
    if (found === undefined || old === undefined || found.session.call.state !== 'answered' || old.state !== 'confirmed') {
      incoming.respond(481, 'Call/Transaction Does Not Exist', { toTag });
      return;
    }
    if (target.earlyOnly) {
      incoming.respond(486, 'Busy Here', { toTag });
      return;
    }
    if (req.content === '') {
      incoming.respond(488, 'Not Acceptable Here (an offer is required to replace a call)', { toTag });
      return;
    }
    const { session, side } = found;
    const uri = parseUri(req.headers.from.uri);
    const newcomer = uri?.user !== undefined ? unescapeUriPart(uri.user) : 'unknown';
    const replaced = partyOf(session, side);
    const log = session.log.child({ replaces: replaced, by: newcomer });
    incoming.respond(100, 'Trying');
    let dialog: Dialog;
    try {
      dialog = Dialog.asUas(req, toTag, this.#deps.contactFor(incoming.source.transport, newcomer));
    } catch (err) {
      if (!(err instanceof DialogError)) throw err;
      incoming.respond(err.status, `Bad Request (${err.message})`, { toTag });
      return;
    }
    dialog.flow = { ...incoming.source };
    const answer = await answerForSide(stack, session, side, req.content, log);
    if (answer === undefined || session.call.state !== 'answered') {
      incoming.respond(488, 'Not Acceptable Here', { toTag });
      return;
    }
    incoming.respond(200, 'OK', {
      toTag,
      headers: { Contact: `<${dialog.localContact}>`, 'Content-Type': 'application/sdp' },
      content: answer,
    });
    dialog.confirm();
    session.replaceParty(side, dialog, { extension: newcomer, direction: 'inbound', callId: dialog.callId });
    log.info({ event: 'call.replaced', side }, `${newcomer} took ${replaced}'s place in the call`);
    await sendInDialog(stack, old, 'BYE', log, '', { Reason: REPLACED });
    old.terminate();
    if ((await incoming.waitForAck()) === undefined) await session.hangup('system', 'No ACK from the replacing phone');
  }
}
