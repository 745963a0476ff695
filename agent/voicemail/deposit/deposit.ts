// Leaving a message: greeting, tone, recording, durable storage. Keys (also in
// docs/voicemail.md):
//   during the greeting   #  skip to the tone
//                         *  mailbox owner: log in (retrieval for this mailbox)
//                         0  operator: the call core transfers the caller (outcome 'operator')
//   while recording       #  stop and save
//                         *  erase and record again
//                         0  stop, save, then operator
// Hanging up saves what was said. Recordings shorter than the mailbox's
// min_message_seconds (after trailing silence is cut) are discarded: outcome
// 'too-short', or 'hangup' when the caller hung up.
import type { Logger } from 'pino';
import type { MailboxConfig } from '../../config/types.ts';
import type { RtpSession } from '../../media/rtp-session.ts';
import { ToneSource } from '../../media/tone-generator.ts';
import { WavFileWriter, type WavEncoding } from '../../media/wav.ts';
import type { PromptLibrary } from '../prompts/library.ts';
import { playAll, playUntilDigit } from '../session-io.ts';
import type { Greetings } from '../store/greetings.ts';
import type { DepositReason, StoredMessage } from '../store/types.ts';
import type { VoicemailStore } from '../store/voicemail-store.ts';
import { greetingFor } from './greeting.ts';
import { recordFrom } from './recorder.ts';

export interface DepositRequest {
  mailbox: string;
  reason: DepositReason;
  caller: { number: string; name?: string };
}

export type DepositResult =
  | { outcome: 'saved'; message: StoredMessage }
  | { outcome: 'operator'; message?: StoredMessage }
  | { outcome: 'login' }
  | { outcome: 'too-short' | 'hangup' | 'full' | 'no-mailbox' | 'failed' };

/** Points of the durable write sequence; the crash tests stop the process at each. */
export type DepositStep = 'pending-committed' | 'recording' | 'renamed' | 'indexed';

export interface DepositDeps {
  store: VoicemailStore;
  greetings: Greetings;
  prompts: PromptLibrary;
  mailboxConfig(mailbox: string): MailboxConfig | undefined;
  format: WavEncoding;
  logger: Logger;
  /** A message was indexed (bus event, MWI). */
  onDeposited(message: StoredMessage): void;
  onStep?: (step: DepositStep) => Promise<void> | void;
}

/** The tone before recording: 1 kHz, 250 ms, −10 dBm0. */
export function beep(): ToneSource {
  return new ToneSource({ frequencies: [1000], levelDbm0: -10, cadenceMs: [] }, 250);
}

export async function deposit(deps: DepositDeps, session: RtpSession, req: DepositRequest): Promise<DepositResult> {
  const { store, prompts, logger } = deps;
  const log = logger.child({ mailbox: req.mailbox, caller: req.caller.number });
  const cfg = deps.mailboxConfig(req.mailbox);
  if (cfg === undefined) {
    await playAll(session, prompts.source(['mailbox-unavailable', 'goodbye']));
    return { outcome: 'no-mailbox' };
  }
  if ((await store.counts(req.mailbox)).total >= cfg.max_messages) {
    log.info({ event: 'voicemail.full', max: cfg.max_messages }, 'mailbox full: message refused');
    await playAll(session, prompts.source(['mailbox-full', 'goodbye']));
    return { outcome: 'full' };
  }

  const greeting = await greetingFor(deps.greetings, prompts, req.mailbox, req.reason);
  const heard = await playUntilDigit(session, greeting.source, '#*0');
  if (heard.kind === 'hangup') return { outcome: 'hangup' };
  if (heard.kind === 'digit' && heard.digit === '*') return { outcome: 'login' };
  if (heard.kind === 'digit' && heard.digit === '0') return { outcome: 'operator' };

  for (;;) {
    if ((await playAll(session, beep())) === 'hangup') return { outcome: 'hangup' };
    const pending = await store.beginDeposit({ mailbox: req.mailbox, caller: req.caller.number, ...(req.caller.name ? { callerName: req.caller.name } : {}), reason: req.reason });
    await deps.onStep?.('pending-committed');
    const writer = new WavFileWriter(pending.file, { encoding: deps.format });
    try {
      await writer.open();
      let firstAudio = deps.onStep !== undefined;
      const rec = await recordFrom(
        session,
        (pcm) => {
          writer.write(pcm);
          if (firstAudio) {
            firstAudio = false;
            void writer.flush().then(() => deps.onStep?.('recording'));
          }
        },
        { maxMs: cfg.max_message_seconds * 1000, silenceMs: cfg.silence_seconds * 1000, stopDigits: '#*0' },
      );
      if (rec.stoppedBy === 'digit' && rec.digit === '*') {
        await writer.abort();
        await store.abandonDeposit(pending.id);
        if ((await playAll(session, prompts.source(['rerecord']))) === 'hangup') return { outcome: 'hangup' };
        continue;
      }
      if (rec.samples < cfg.min_message_seconds * 8000 || rec.samples === 0) {
        await writer.abort();
        await store.abandonDeposit(pending.id);
        log.info({ event: 'voicemail.too_short', ms: rec.samples / 8, stoppedBy: rec.stoppedBy }, 'recording too short: discarded');
        if (rec.stoppedBy === 'hangup') return { outcome: 'hangup' };
        await playAll(session, prompts.source(['message-too-short', 'goodbye']));
        return { outcome: 'too-short' };
      }
      const written = await writer.close();
      await deps.onStep?.('renamed');
      await store.commitDeposit(pending.id, written.durationMs);
      await deps.onStep?.('indexed');
      const message: StoredMessage = {
        id: pending.id,
        mailbox: req.mailbox,
        folder: 'INBOX',
        caller: req.caller.number,
        reason: req.reason,
        receivedAt: pending.receivedAt,
        durationMs: Math.round(written.durationMs),
        file: pending.file,
      };
      if (req.caller.name) message.callerName = req.caller.name;
      log.info({ event: 'voicemail.deposited', messageId: message.id, durationMs: message.durationMs, stoppedBy: rec.stoppedBy }, 'voicemail message saved');
      deps.onDeposited(message);
      if (rec.stoppedBy === 'max-length') await playAll(session, prompts.source(['max-length']));
      const toOperator = rec.stoppedBy === 'digit' && rec.digit === '0';
      await playAll(session, prompts.source(toOperator ? ['message-saved'] : ['message-saved', 'goodbye']));
      return toOperator ? { outcome: 'operator', message } : { outcome: 'saved', message };
    } catch (err) {
      log.error({ event: 'voicemail.deposit_failed', err }, `voicemail deposit failed: ${(err as Error).message}`);
      await writer.abort().catch(() => undefined);
      await store.abandonDeposit(pending.id).catch(() => undefined);
      await playAll(session, prompts.source(['error', 'goodbye']));
      return { outcome: 'failed' };
    }
  }
}
