// The dial plan's `feature` targets carried out (docs/dialplan.md, feature codes):
// DND and forward codes change the caller's state, durably, and only then answer with
// a short confirmation tone, as desk-phone users know from other PBXs; `*98` without a
// mailbox number opens the mailbox IVR, which asks for one; the echo test plays back
// what the caller says, so a user can check their own audio path.
import type { Logger } from 'pino';
import type { FeatureStateStore } from '../store/feature-state.ts';
import { ToneSource, type AudioSource, type MediaEngine } from '../media/index.ts';
import { FRAME_SAMPLES } from '../media/g711.ts';
import { answerWithMedia, carryOutRetrieval, runApplication, type VoicemailTargetDeps } from '../voicemail/call-targets.ts';
import { applyStateFeature, FeatureCodeError } from './routing/feature-codes.ts';
import type { CallSession, TargetHandler } from './call-session.ts';

export interface FeatureTargetDeps {
  features: FeatureStateStore;
  media: MediaEngine;
  logger: Logger;
  /** Absent when the agent runs without voicemail: `*98` then fails as unavailable. */
  voicemail?: VoicemailTargetDeps;
}

/** Three short beeps: the "feature accepted" confirmation most PBXs give. */
const CONFIRMATION = { frequencies: [440], levelDbm0: -13, cadenceMs: [100, 100] } as const;
const CONFIRMATION_MS = 600;

/** The echo test ends by itself after this, so a forgotten call does not hold a port. */
const ECHO_LIMIT_MS = 10 * 60_000;

/**
 * Plays back what the caller said, about 1 s behind at most: samples arrive from the
 * session's `audio` event and leave as the next frames it sends. Bounded: when the
 * caller's stream outpaces ours, the oldest audio is dropped.
 */
export class EchoSource implements AudioSource {
  readonly #buffer = new Int16Array(8000);
  #start = 0;
  #length = 0;
  #ended = false;

  push(pcm: Int16Array): void {
    for (let i = 0; i < pcm.length; i++) {
      if (this.#length === this.#buffer.length) {
        this.#start = (this.#start + 1) % this.#buffer.length;
        this.#length--;
      }
      this.#buffer[(this.#start + this.#length) % this.#buffer.length] = pcm[i]!;
      this.#length++;
    }
  }

  end(): void {
    this.#ended = true;
  }

  read(frame: Int16Array): boolean {
    if (this.#ended) return false;
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      if (this.#length === 0) {
        frame.fill(0, i);
        return true;
      }
      frame[i] = this.#buffer[this.#start]!;
      this.#start = (this.#start + 1) % this.#buffer.length;
      this.#length--;
    }
    return true;
  }
}

export function featureTargetHandler(deps: FeatureTargetDeps): TargetHandler {
  return async (session, decision) => {
    const target = decision.target;
    if (target.kind !== 'feature') return 'unavailable';
    switch (target.feature) {
      case 'voicemail-own':
      case 'voicemail-any': {
        if (deps.voicemail === undefined) return 'unavailable';
        const own = target.feature === 'voicemail-own' ? session.request.caller.extension : undefined;
        return carryOutRetrieval(deps.voicemail, session, own !== undefined ? { callerExtension: own } : {});
      }
      case 'echo-test':
        return echoTest(deps, session);
      default:
        return changeState(deps, session, target.feature, target.argument);
    }
  };
}

async function changeState(deps: FeatureTargetDeps, session: CallSession, feature: Parameters<typeof applyStateFeature>[2], argument: string | undefined): ReturnType<TargetHandler> {
  const extension = session.request.caller.extension;
  // The dial plan only offers feature codes to registered phones; a call without an
  // extension here would be a bug upstream, answered as a refusal, never a crash.
  if (extension === undefined) {
    await session.reject(403, 'Forbidden', `${feature}: only a registered phone may use feature codes`, 'rejected');
    return 'done';
  }
  try {
    await applyStateFeature(deps.features, extension, feature, argument);
  } catch (err) {
    if (!(err instanceof FeatureCodeError)) throw err;
    await session.reject(484, 'Address Incomplete', err.message, 'rejected');
    return 'done';
  }
  deps.logger.info({ event: 'feature.applied', extension, feature, ...(argument !== undefined ? { argument } : {}) }, `${feature} for ${extension}`);
  const leg = await answerWithMedia(deps, session, feature);
  if (leg === 'done') return 'done';
  if (leg === undefined) return 'answered';
  return runApplication(deps, session, leg, feature, () => leg.play(new ToneSource(CONFIRMATION, CONFIRMATION_MS)));
}

async function echoTest(deps: FeatureTargetDeps, session: CallSession): ReturnType<TargetHandler> {
  const leg = await answerWithMedia(deps, session, 'echo test');
  if (leg === 'done') return 'done';
  if (leg === undefined) return 'answered';
  const echo = new EchoSource();
  leg.on('audio', (pcm: Int16Array) => echo.push(pcm));
  return runApplication(deps, session, leg, 'echo test', async () => {
    const limit = setTimeout(() => echo.end(), ECHO_LIMIT_MS);
    try {
      await leg.play(echo);
    } finally {
      clearTimeout(limit);
    }
  });
}
