// Call transfer (docs/calls.md, "Transfer, session timers, PRACK"): a REFER in an
// answered call (RFC 3515) moves the other party — the transferee — to someone
// else, while the referrer hears of the progress through NOTIFYs (refer-notifier.ts).
//
//   blind     Refer-To names a number. The dial plan routes it; its phones ring
//             (target-dialer.ts); the one that answers takes the referrer's place
//             in the call.
//   attended  Refer-To carries Replaces (RFC 3891) naming the referrer's other call,
//             to the target it consulted first. The target's leg of that call takes
//             the referrer's place in this one; the referrer's leg of the other call
//             is hung up.
// (A phone that sends an INVITE with Replaces itself: invite-replaces.ts.)
//
// The referrer is let go as soon as the REFER is accepted: its BYE (phones hang up
// after the 202 or after the final NOTIFY) is answered here and no longer ends the
// call. If the transfer fails, the transferee stays with the referrer, or is hung
// up when the referrer has already gone.
//
// Media: the target is invited without SDP and offers in its 200, which is answered
// for the referrer's side (take-over.ts); the answer goes to the target in the ACK.

import type { Logger } from 'pino';
import type { DialogInterceptor } from '../call-core.ts';
import type { CallSession, InDialogHandler } from '../call-session.ts';
import type { Side } from '../media-path.ts';
import type { DialPlan, RoutingState } from '../routing/types.ts';
import { reasonHeader } from '../sip-leg.ts';
import { Dialog } from '../../sip/dialog.ts';
import type { IncomingRequest, SipStack } from '../../sip/stack.ts';
import type { NameAddr } from '../../sip/types.ts';
import { ReferNotifier } from './refer-notifier.ts';
import { parseReferTo, TransferRequestError, type ReferTarget, type ReplacesTarget } from './refer-to.ts';
import { answerForSide, dialogOf, otherSide, partyOf, sendInDialog } from './take-over.ts';
import { dialTarget, type DialerDeps } from './target-dialer.ts';

/** What transfer needs from the call core (CallCore implements it). */
export interface TransferCore {
  /** The call and side holding a dialog, tags as this agent sees them. */
  findDialog(callId: string, localTag: string, remoteTag: string): { session: CallSession; side: Side } | undefined;
  /** Routes the requests of one dialog to `handler` before its call; returns the undo. */
  interceptDialog(dialogId: string, handler: DialogInterceptor): () => void;
}

export interface TransferDeps extends DialerDeps {
  dialPlan: DialPlan;
  routingState: RoutingState;
  core: TransferCore;
}

export interface TransferResult {
  /** The sipfrag status for the referrer: 200 when the transferee is now with the target. */
  status: number;
  reason: string;
}

const TRANSFERRED = reasonHeader(200, 'Call transferred');
/** How long a let-go referrer's dialog is still answered (its BYE may come late): 64*T1. */
const RELEASED_DIALOG_MS = 32_000;

/** A copy of a confirmed dialog, for a call that takes it over from another. */
function copyDialog(d: Dialog): Dialog {
  const copy = new Dialog({ ...d.snapshot(), state: 'confirmed' });
  if (d.flow !== undefined) copy.flow = { ...d.flow };
  return copy;
}

/** A let-go referrer's dialog: its BYE is answered (and remembered); the rest is over. */
class ReleasedDialog {
  byeReceived = false;
  readonly #undo: () => void;
  readonly #timer: NodeJS.Timeout;

  constructor(core: TransferCore, dialog: Dialog) {
    this.#undo = core.interceptDialog(dialog.id, (incoming) => this.#handle(incoming));
    this.#timer = setTimeout(() => this.release(), RELEASED_DIALOG_MS);
    this.#timer.unref();
  }

  #handle(incoming: IncomingRequest): void {
    const method = incoming.request.method;
    if (method === 'ACK') return;
    if (method === 'BYE') {
      this.byeReceived = true;
      incoming.respond(200, 'OK');
      return;
    }
    incoming.respond(481, 'Call/Transaction Does Not Exist');
  }

  /** The dialog's requests go back to normal routing (481 once no call holds it). */
  release(): void {
    clearTimeout(this.#timer);
    this.#undo();
  }
}

export class CallTransfer {
  readonly #deps: TransferDeps;

  constructor(deps: TransferDeps) {
    this.#deps = deps;
  }

  /** REFER in a call (CallCore.setInDialogHandler('REFER', ...)). */
  readonly handleRefer: InDialogHandler = (session, side, incoming) => this.#refer(session, side, incoming);

  async #refer(session: CallSession, side: Side, incoming: IncomingRequest): Promise<void> {
    const req = incoming.request;
    const referrerDialog = dialogOf(session, side);
    if (session.call.state !== 'answered' || session.b === undefined || referrerDialog === undefined) {
      incoming.respond(403, 'Forbidden (a transfer needs an answered call)');
      return;
    }
    let target: ReferTarget;
    try {
      target = parseReferTo(req.headers['refer-to']);
    } catch (err) {
      if (!(err instanceof TransferRequestError)) throw err;
      incoming.respond(err.status, err.status === 416 ? 'Unsupported URI Scheme' : `Bad Request (${err.message})`);
      return;
    }
    // RFC 4488: "Refer-Sub: false" asks for no NOTIFYs, and the 202 says we agree.
    const referSub = req.headers['refer-sub'];
    const wantsNotify = !(typeof referSub === 'string' && referSub.trim().toLowerCase() === 'false');
    incoming.respond(202, 'Accepted', wantsNotify ? undefined : { headers: { 'Refer-Sub': 'false' } });
    const log = session.log.child({ transfer: target.replaces === undefined ? 'blind' : 'attended', referrer: partyOf(session, side) });
    log.info({ event: 'call.transfer', to: target.replaces === undefined ? target.dialed : 'consulted call', transferee: partyOf(session, otherSide(side)) }, 'transfer requested');
    const notifier = new ReferNotifier(this.#deps.stack, referrerDialog, req.headers.cseq.seq, wantsNotify, log);
    void notifier.progress(100, 'Trying');
    // From now on the referrer's BYE does not end the call.
    const released = new ReleasedDialog(this.#deps.core, referrerDialog);

    let result: TransferResult;
    try {
      result = target.replaces === undefined
        ? await this.#blind(session, side, target, notifier, log)
        : await this.#attended(session, side, target.replaces, log);
    } catch (err) {
      log.error({ err }, 'transfer failed unexpectedly');
      result = { status: 500, reason: 'Server Internal Error' };
    }
    await notifier.final(result.status, result.reason);
    if (result.status === 200) {
      log.info({ event: 'call.transferred', by: partyOf(session, side) }, 'transfer done');
      // The referrer is out of the call: end its dialog unless it already did.
      if (!released.byeReceived && referrerDialog.state === 'confirmed') {
        await this.#bye(referrerDialog, log);
        referrerDialog.terminate();
      }
      return;
    }
    log.info({ event: 'call.transfer_failed', status: result.status, reason: result.reason }, 'transfer failed');
    released.release();
    if (released.byeReceived) {
      // Nobody to go back to: the referrer hung up while the target rang.
      await session.hangup(side === 'a' ? 'caller' : 'callee', 'Transfer failed');
    }
  }

  async #blind(session: CallSession, side: Side, target: ReferTarget, notifier: ReferNotifier, log: Logger): Promise<TransferResult> {
    const transferee = partyOf(session, otherSide(side));
    const decision = this.#deps.dialPlan.route(
      { dialed: target.dialed, caller: { extension: transferee, number: transferee, origin: 'phone' } },
      this.#deps.routingState,
    );
    if (decision.target.kind === 'reject') return { status: decision.target.status, reason: decision.target.reason };
    if (decision.target.kind !== 'ring') {
      // Voicemail, feature codes and trunks are carried out by their own modules on
      // a ringing call; a transfer can only ring phones in this build.
      return { status: 488, reason: `Cannot transfer to ${decision.target.kind}` };
    }
    const from: NameAddr = { uri: `sip:${transferee}@${this.#deps.domain}`, params: Object.create(null) };
    const referrer = dialogOf(session, side);
    // The transferee hanging up while the target rings cancels the target.
    const gone = new AbortController();
    session.onEnd(() => gone.abort());
    const outcome = await dialTarget(this.#deps, {
      signal: gone.signal,
      extensions: decision.target.extensions,
      ringTimeoutSec: decision.target.ringTimeoutSec,
      from,
      ...(referrer === undefined ? {} : { referredBy: `<${referrer.remoteUri.uri}>` }),
      onProgress: (status, reason) => void notifier.progress(status, reason),
    });
    if (!outcome.answered) return { status: outcome.status, reason: outcome.reason };
    if (session.call.state !== 'answered') {
      // The transferee hung up while the target rang.
      await outcome.leg.ack().catch(() => undefined);
      await outcome.leg.send('BYE', { headers: { Reason: reasonHeader(487, 'Transferee hung up') } }).catch(() => undefined);
      return { status: 487, reason: 'Request Terminated' };
    }
    const targetDialog = outcome.leg.dialog;
    if (targetDialog === undefined) return { status: 500, reason: 'Server Internal Error' };
    const answer = await answerForSide(this.#deps.stack, session, side, outcome.response.content, log);
    if (answer === undefined) {
      await outcome.leg.ack().catch(() => undefined);
      await outcome.leg.send('BYE', { headers: { Reason: reasonHeader(488, 'Transfer media failed') } }).catch(() => undefined);
      return { status: 488, reason: 'Not Acceptable Here' };
    }
    await outcome.leg.ack(answer).catch((err: unknown) => log.warn({ err }, 'could not ACK the transfer target'));
    session.replaceParty(side, targetDialog, { extension: outcome.extension, direction: 'outbound', callId: targetDialog.callId });
    return { status: 200, reason: 'OK' };
  }

  async #attended(session: CallSession, side: Side, replaces: ReplacesTarget, log: Logger): Promise<TransferResult> {
    // The referrer's consultation call, found by its dialog with us (the tags as the
    // referrer wrote them are the other way round from ours; accept either).
    const found =
      this.#deps.core.findDialog(replaces.callId, replaces.toTag, replaces.fromTag) ??
      this.#deps.core.findDialog(replaces.callId, replaces.fromTag, replaces.toTag);
    if (found === undefined || found.session === session) return { status: 481, reason: 'Call/Transaction Does Not Exist' };
    const consult = found.session;
    const targetSide = otherSide(found.side);
    const targetDialog = dialogOf(consult, targetSide);
    if (consult.call.state !== 'answered' || targetDialog === undefined || targetDialog.state !== 'confirmed') {
      return { status: 481, reason: 'Call/Transaction Does Not Exist' };
    }
    const targetParty = partyOf(consult, targetSide);
    // A fresh offer from the target: an offerless re-INVITE in its dialog.
    const reinvite = await sendInDialog(this.#deps.stack, targetDialog, 'INVITE', log);
    if (reinvite === undefined || reinvite.status >= 300) return { status: reinvite?.status ?? 408, reason: reinvite?.reason ?? 'Request Timeout' };
    targetDialog.refreshTarget(reinvite);
    const answer = await answerForSide(this.#deps.stack, session, side, reinvite.content, log);
    await this.#deps.stack
      .sendStateless(targetDialog.ack(reinvite.headers.cseq.seq, { body: answer ?? '', ...(answer ? { contentType: 'application/sdp' } : {}) }), targetDialog.nextHop())
      .catch(() => undefined);
    if (answer === undefined) return { status: 488, reason: 'Not Acceptable Here' };
    // The consultation call lets go of the target without a BYE to it, and hangs
    // up the referrer's leg there; then this call takes the target's dialog.
    const moved = copyDialog(targetDialog);
    await consult.hangup(targetSide === 'a' ? 'caller' : 'callee', 'Call transferred');
    session.replaceParty(side, moved, { extension: targetParty, direction: targetSide === 'a' ? 'inbound' : 'outbound', callId: moved.callId });
    return { status: 200, reason: 'OK' };
  }

  async #bye(dialog: Dialog, log: Logger): Promise<void> {
    try {
      const request = dialog.createRequest('BYE', { headers: { Reason: TRANSFERRED } });
      await this.#deps.stack.request(request, dialog.nextHop());
    } catch (err) {
      log.debug({ err: (err as Error).message }, 'BYE to the referrer not answered');
    }
  }
}

