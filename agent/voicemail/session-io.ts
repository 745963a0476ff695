// Small waits over an RtpSession that both the deposit flow and the IVR driver
// use: play until a key is pressed, wait for a key, notice the caller hanging up
// (the call core stops the session).
import type { AudioSource } from '../media/audio-source.ts';
import type { RtpSession } from '../media/rtp-session.ts';
import type { DigitEvent } from '../media/telephone-event.ts';

export type PlayOutcome = { kind: 'ended' } | { kind: 'digit'; digit: string } | { kind: 'hangup' };

/**
 * Plays `source`; a digit in `stopDigits` stops it ("barge-in") and is returned.
 * Other digits are ignored. Resolves 'hangup' when the session stops.
 */
export function playUntilDigit(session: RtpSession, source: AudioSource, stopDigits: string): Promise<PlayOutcome> {
  if (!session.running) return Promise.resolve({ kind: 'hangup' });
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome: PlayOutcome): void => {
      if (done) return;
      done = true;
      session.off('digit', onDigit);
      session.off('stopped', onStopped);
      resolve(outcome);
    };
    const onDigit = (e: DigitEvent): void => {
      if (!stopDigits.includes(e.digit)) return;
      finish({ kind: 'digit', digit: e.digit });
      session.stopPlayback();
    };
    const onStopped = (): void => finish({ kind: 'hangup' });
    session.on('digit', onDigit);
    session.once('stopped', onStopped);
    void session.play(source).then((outcome) => {
      if (outcome === 'ended') finish({ kind: 'ended' });
      else if (outcome === 'stopped') finish({ kind: 'hangup' });
    });
  });
}

/** Plays `source` to its end (digits ignored). */
export async function playAll(session: RtpSession, source: AudioSource): Promise<'ended' | 'hangup'> {
  const outcome = await session.play(source);
  return outcome === 'stopped' || !session.running ? 'hangup' : 'ended';
}
