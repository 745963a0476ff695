// The call core's route targets 'voicemail' and 'voicemail-retrieval' carried out
// by voicemail: answer the caller with our own RTP session (application mode), run
// the deposit or the mailbox IVR on it, hang up when it is done. A caller who hangs
// up first ends the session, which ends the recording (what was said is kept).
import type { Logger } from 'pino';
import type { CallSession, TargetOutcome } from '../calls/call-session.ts';
import type { RouteDecision } from '../calls/routing/types.ts';
import { answerOffer, SdpNegotiationError, SdpOrigin, type MediaEngine } from '../media/index.ts';
import type { RtpSession } from '../media/rtp-session.ts';
import type { RetrievalRequest } from './ivr/driver.ts';
import type { Voicemail } from './voicemail.ts';

export interface TargetRegistry {
  setTargetHandler(kind: 'voicemail' | 'voicemail-retrieval', handler: (session: CallSession, decision: RouteDecision) => Promise<TargetOutcome>): void;
}

export interface VoicemailTargetDeps {
  voicemail: Voicemail;
  media: MediaEngine;
  logger: Logger;
}

/**
 * Answers `session` with a fresh RTP session (application mode); 'done' when its SDP
 * is unusable (answered 488), undefined when the call is gone. Also used by the
 * feature-code handler (agent/calls/feature-target.ts).
 */
export async function answerWithMedia(deps: { media: MediaEngine }, session: CallSession, by: string): Promise<RtpSession | 'done' | undefined> {
  const leg = await deps.media.createSession({ logger: session.log });
  let answer: ReturnType<typeof answerOffer>;
  try {
    answer = answerOffer(session.callerOffer, deps.media.localMedia(leg, new SdpOrigin()));
  } catch (err) {
    await leg.stop();
    if (!(err instanceof SdpNegotiationError)) throw err;
    await session.reject(488, 'Not Acceptable Here', err.message, 'failed');
    return 'done';
  }
  leg.applyNegotiation(answer.media);
  if (answer.media.telephoneEventPt === undefined) leg.setInbandDtmf(true);
  session.onEnd(() => void leg.stop('call ended'));
  const ack = await session.answerLocally(answer.sdp, by);
  if (ack === undefined) {
    await leg.stop();
    return undefined;
  }
  return leg;
}

/** Runs `app` on the answered call, then hangs up; resolves at once with 'answered'. */
export function runApplication(deps: { logger: Logger }, session: CallSession, leg: RtpSession, what: string, app: () => Promise<unknown>): TargetOutcome {
  void (async () => {
    try {
      await app();
    } catch (err) {
      deps.logger.error({ event: 'application.failed', err }, `${what} failed: ${(err as Error).message}`);
    }
    await session.hangup('system', `${what} done`).catch(() => undefined);
    await leg.stop();
  })();
  return 'answered';
}

export function registerVoicemailTargets(core: TargetRegistry, deps: VoicemailTargetDeps): void {
  core.setTargetHandler('voicemail', async (session, decision) => {
    const target = decision.target;
    if (target.kind !== 'voicemail') return 'unavailable';
    if (deps.voicemail.mailboxConfig(target.mailbox) === undefined) return 'unavailable';
    const leg = await answerWithMedia(deps, session, `voicemail ${target.mailbox}`);
    if (leg === 'done') return 'done';
    if (leg === undefined) return 'answered';
    const caller = session.request.caller;
    return runApplication(deps, session, leg, 'voicemail deposit', () =>
      deps.voicemail.deposit(leg, { mailbox: target.mailbox, reason: target.reason, caller: { number: caller.number, ...(caller.name ? { name: caller.name } : {}) } }),
    );
  });
  core.setTargetHandler('voicemail-retrieval', async (session, decision) => {
    const target = decision.target;
    if (target.kind !== 'voicemail-retrieval') return 'unavailable';
    const callerExtension = session.request.caller.extension;
    return carryOutRetrieval(deps, session, { ...(target.mailbox !== undefined ? { mailbox: target.mailbox } : {}), ...(callerExtension !== undefined ? { callerExtension } : {}) });
  });
}

/**
 * Answers the call and runs the mailbox IVR. For the handler of `feature` targets:
 * `*98` with no number arrives as the feature `voicemail-any` and is carried out with
 * `carryOutRetrieval(deps, session, {})` (no caller extension: the IVR asks which mailbox).
 */
export async function carryOutRetrieval(deps: VoicemailTargetDeps, session: CallSession, request: RetrievalRequest): Promise<TargetOutcome> {
  const leg = await answerWithMedia(deps, session, 'voicemail');
  if (leg === 'done') return 'done';
  if (leg === undefined) return 'answered';
  return runApplication(deps, session, leg, 'voicemail retrieval', () => deps.voicemail.retrieve(leg, request));
}
