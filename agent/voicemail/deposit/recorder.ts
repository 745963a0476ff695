// Records what the caller says from an RtpSession into a sink (a WAV writer), and
// decides when to stop: a key in `stopDigits`, `silenceMs` without speech, `maxMs`
// of recording, or the caller hanging up. Silence is held back rather than written:
// it reaches the sink only when speech follows it, so trailing silence (the wait
// that triggered the silence stop, the pause before # or hang-up) is never stored.
// Time is counted both in received audio and on the wall clock, so a phone that
// stops sending RTP while quiet (VAD) still hits the silence and length limits.
import type { RtpSession } from '../../media/rtp-session.ts';
import type { DigitEvent } from '../../media/telephone-event.ts';
import { dbm0ToAmplitude } from '../../media/tone-generator.ts';

/** Frame RMS below this counts as silence: −45 dBm0, under speech, above a quiet line's noise. */
export const SILENCE_RMS = dbm0ToAmplitude(-45) / Math.SQRT2;

export interface RecordOptions {
  maxMs: number;
  silenceMs: number;
  /** Keys that end the recording (the key is reported, not recorded). */
  stopDigits: string;
}

export interface RecordOutcome {
  stoppedBy: 'digit' | 'silence' | 'max-length' | 'hangup';
  digit?: string;
  /** Samples given to the sink. */
  samples: number;
}

export function frameRms(pcm: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i]! * pcm[i]!;
  return pcm.length === 0 ? 0 : Math.sqrt(sum / pcm.length);
}

export function recordFrom(session: RtpSession, sink: (pcm: Int16Array) => void, options: RecordOptions): Promise<RecordOutcome> {
  const maxSamples = Math.round((options.maxMs * 8000) / 1000);
  const silenceSamples = Math.round((options.silenceMs * 8000) / 1000);
  return new Promise((resolve) => {
    if (!session.running) {
      resolve({ stoppedBy: 'hangup', samples: 0 });
      return;
    }
    const started = performance.now();
    let lastSpeech = started;
    let written = 0;
    let held: Int16Array[] = [];
    let heldSamples = 0;
    let done = false;

    const finish = (stoppedBy: RecordOutcome['stoppedBy'], digit?: string): void => {
      if (done) return;
      done = true;
      clearInterval(timer);
      session.off('audio', onAudio);
      session.off('digit', onDigit);
      session.off('stopped', onStopped);
      resolve(digit === undefined ? { stoppedBy, samples: written } : { stoppedBy, digit, samples: written });
    };
    const onAudio = (pcm: Int16Array): void => {
      if (done) return;
      const room = maxSamples - written - heldSamples;
      const frame = pcm.length > room ? pcm.subarray(0, Math.max(0, room)) : pcm;
      if (frameRms(frame) >= SILENCE_RMS) {
        for (const h of held) sink(h);
        written += heldSamples;
        held = [];
        heldSamples = 0;
        sink(frame);
        written += frame.length;
        lastSpeech = performance.now();
      } else {
        // `pcm` is the session's reusable buffer: keep a copy.
        held.push(frame.slice());
        heldSamples += frame.length;
        if (heldSamples >= silenceSamples) finish('silence');
      }
      if (written + heldSamples >= maxSamples && !done) finish('max-length');
    };
    const onDigit = (e: DigitEvent): void => {
      if (options.stopDigits.includes(e.digit)) finish('digit', e.digit);
    };
    const onStopped = (): void => finish('hangup');
    const timer = setInterval(() => {
      const now = performance.now();
      if (now - lastSpeech >= options.silenceMs + 200) finish('silence');
      else if (now - started >= options.maxMs + 500) finish('max-length');
    }, 100);
    session.on('audio', onAudio);
    session.on('digit', onDigit);
    session.once('stopped', onStopped);
  });
}
