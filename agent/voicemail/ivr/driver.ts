// Runs the retrieval state machine over an RtpSession: turns its actions into
// prompts, timers, store operations and recordings, and feeds back what happened.
// One event at a time, in order. A key the machine acts on stops the prompt that is
// playing (barge-in); a key it ignores (while checking a PIN, saying goodbye) lets
// the prompt finish. "Prompt ended" and "no key in time" events carry the play or
// timer they belong to, so one overtaken by a key is dropped, never acted on late.
import { rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { MailboxConfig } from '../../config/types.ts';
import { PcmSource, SequenceSource, type AudioSource } from '../../media/audio-source.ts';
import type { RtpSession } from '../../media/rtp-session.ts';
import type { DigitEvent } from '../../media/telephone-event.ts';
import { readWavFile, WavFileWriter } from '../../media/wav.ts';
import { beep } from '../deposit/deposit.ts';
import { recordFrom } from '../deposit/recorder.ts';
import type { PromptLibrary } from '../prompts/library.ts';
import type { GreetingKind, Greetings } from '../store/greetings.ts';
import type { PinStore } from '../store/pins.ts';
import { syncDirectory, type VoicemailStore } from '../store/voicemail-store.ts';
import { RetrievalMachine, type IvrAction, type IvrEvent, type PlayItem } from './retrieval-machine.ts';

export interface RetrievalDeps {
  store: VoicemailStore;
  pins: PinStore;
  greetings: Greetings;
  prompts: PromptLibrary;
  mailboxConfig(mailbox: string): MailboxConfig | undefined;
  pinAttempts: number;
  logger: Logger;
  /** A mailbox's messages changed (MWI, bus). */
  onChanged(mailbox: string): void;
  menuTimeoutMs?: number;
  digitTimeoutMs?: number;
}

export interface RetrievalRequest {
  /** The mailbox to open; absent: the caller's own when it has one, else asked for. */
  mailbox?: string;
  callerExtension?: string;
}

export interface RetrievalResult {
  mailbox?: string;
  /** How the session ended: the IVR said goodbye, or the caller hung up. */
  endedBy: 'ivr' | 'hangup';
  /** A right PIN was entered. */
  loggedIn: boolean;
}

const GREETING_MAX_MS = 60_000;

export async function retrieve(deps: RetrievalDeps, session: RtpSession, req: RetrievalRequest): Promise<RetrievalResult> {
  const own = req.mailbox === undefined && req.callerExtension !== undefined && deps.mailboxConfig(req.callerExtension) !== undefined;
  const machine = new RetrievalMachine({
    ...(req.mailbox !== undefined ? { mailbox: req.mailbox } : own ? { mailbox: req.callerExtension as string } : {}),
    pinAttempts: deps.pinAttempts,
    now: () => new Date(),
    ...(deps.menuTimeoutMs !== undefined ? { menuTimeoutMs: deps.menuTimeoutMs } : {}),
    ...(deps.digitTimeoutMs !== undefined ? { digitTimeoutMs: deps.digitTimeoutMs } : {}),
  });
  const log = deps.logger.child({ ivr: 'voicemail', caller: req.callerExtension });
  // Events with the play/timer generation they belong to (0: always current).
  const queue: Array<{ event: IvrEvent; playGeneration?: number; timerGeneration?: number }> = [];
  let wake: (() => void) | undefined;
  let ended: RetrievalResult['endedBy'] | undefined;
  let playGeneration = 0;
  let playing = false;
  let recording = false;
  let timer: NodeJS.Timeout | undefined;
  let timerGeneration = 0;
  const takes = new Set<string>();
  let loggedIn = false;

  const push = (event: IvrEvent, generations: { playGeneration?: number; timerGeneration?: number } = {}): void => {
    queue.push({ event, ...generations });
    wake?.();
  };
  const clearTimer = (): void => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerGeneration++;
  };
  const stopPrompt = (): void => {
    if (!playing) return;
    playGeneration++;
    playing = false;
    session.stopPlayback();
  };
  const onDigit = (e: DigitEvent): void => {
    log.debug({ event: 'voicemail.key', digit: e.digit, source: e.source, endedBy: e.endedBy, ignored: ended !== undefined || recording }, 'key');
    if (ended !== undefined || recording) return;
    push({ type: 'digit', digit: e.digit });
  };
  const onStopped = (): void => {
    ended ??= 'hangup';
    wake?.();
  };
  session.on('digit', onDigit);
  session.once('stopped', onStopped);
  if (!session.running) ended = 'hangup';

  const mailbox = (): string => machine.mailbox as string;
  const takeFile = (kind: GreetingKind): string => path.join(path.dirname(deps.greetings.file(mailbox(), kind)), `.take-${kind}.wav`);

  const sourceOf = async (items: PlayItem[]): Promise<AudioSource> => {
    const parts: AudioSource[] = [];
    for (const item of items) {
      if (typeof item === 'string') parts.push(deps.prompts.source([item]));
      else if ('tone' in item) parts.push(beep());
      else {
        const file = 'message' in item ? (await deps.store.get(item.message))?.file : takeFile(item.take);
        if (file !== undefined) parts.push(new PcmSource((await readWavFile(file)).samples));
      }
    }
    return new SequenceSource(parts);
  };

  const execute = async (action: IvrAction): Promise<void> => {
    switch (action.kind) {
      case 'play': {
        clearTimer();
        const source = await sourceOf(action.items);
        const generation = ++playGeneration;
        playing = true;
        void session.play(source).then((outcome) => {
          if (generation !== playGeneration) return;
          playing = false;
          if (outcome === 'ended') push({ type: 'played' }, { playGeneration: generation });
        });
        return;
      }
      case 'wait':
        clearTimer();
        const generation = timerGeneration;
        timer = setTimeout(() => push({ type: 'timeout' }, { timerGeneration: generation }), action.ms);
        return;
      case 'verify-pin': {
        const cfg = deps.mailboxConfig(action.mailbox);
        // An unknown mailbox answers like a wrong PIN: the IVR does not tell which mailboxes exist.
        const verdict = cfg === undefined ? 'wrong' : await deps.pins.verify(action.mailbox, cfg.pin, action.pin);
        log.info({ event: 'voicemail.login', mailbox: action.mailbox, verdict }, `voicemail login ${verdict}`);
        loggedIn ||= verdict === 'ok';
        push({ type: 'pin', verdict });
        return;
      }
      case 'load-messages': {
        const messages = await deps.store.list(action.mailbox);
        push({ type: 'messages', messages: messages.map((m) => ({ id: m.id, folder: m.folder, caller: m.caller, receivedAt: m.receivedAt, durationMs: m.durationMs })) });
        return;
      }
      case 'move':
        await deps.store.move(action.id, action.folder);
        deps.onChanged(mailbox());
        return;
      case 'delete':
        await deps.store.remove(action.id);
        deps.onChanged(mailbox());
        return;
      case 'record-greeting': {
        await deps.greetings.prepare(mailbox(), action.greeting);
        const file = takeFile(action.greeting);
        const writer = new WavFileWriter(file, { encoding: 'pcm16' });
        await writer.open();
        recording = true;
        const cfg = deps.mailboxConfig(mailbox());
        const rec = await recordFrom(session, (pcm) => writer.write(pcm), { maxMs: GREETING_MAX_MS, silenceMs: (cfg?.silence_seconds ?? 5) * 1000, stopDigits: '#' });
        recording = false;
        if (rec.samples < 4000) {
          await writer.abort();
          push({ type: 'recorded', ok: false });
        } else {
          await writer.close();
          takes.add(file);
          push({ type: 'recorded', ok: true });
        }
        return;
      }
      case 'keep-greeting': {
        const take = takeFile(action.greeting);
        const final = deps.greetings.file(mailbox(), action.greeting);
        await rename(take, final);
        await syncDirectory(path.dirname(final));
        takes.delete(take);
        log.info({ event: 'voicemail.greeting_recorded', mailbox: mailbox(), greeting: action.greeting }, 'greeting recorded');
        return;
      }
      case 'discard-greeting': {
        const take = takeFile(action.greeting);
        await unlink(take).catch(() => undefined);
        takes.delete(take);
        return;
      }
      case 'remove-greeting':
        push({ type: 'greeting-removed', existed: await deps.greetings.remove(mailbox(), action.greeting) });
        return;
      case 'set-pin': {
        const cfg = deps.mailboxConfig(mailbox());
        if (cfg !== undefined) await deps.pins.setPin(mailbox(), cfg.pin, action.pin);
        log.info({ event: 'voicemail.pin_changed', mailbox: mailbox() }, 'mailbox PIN changed by phone');
        return;
      }
      case 'hangup':
        ended ??= 'ivr';
        return;
    }
  };

  try {
    push({ type: 'start' });
    while (ended === undefined) {
      const item = queue.shift();
      if (item === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      if (item.playGeneration !== undefined && item.playGeneration !== playGeneration) continue;
      if (item.timerGeneration !== undefined && item.timerGeneration !== timerGeneration) continue;
      const actions = machine.handle(item.event);
      if (item.event.type === 'digit' && actions.length > 0) {
        clearTimer();
        stopPrompt();
      }
      for (const action of actions) {
        if (ended !== undefined) break;
        await execute(action);
      }
    }
  } catch (err) {
    log.error({ event: 'voicemail.ivr_failed', err }, `voicemail IVR failed: ${(err as Error).message}`);
    if (session.running) await session.play(deps.prompts.source(['error', 'goodbye']));
    ended ??= 'ivr';
  } finally {
    clearTimer();
    session.off('digit', onDigit);
    session.off('stopped', onStopped);
    for (const take of takes) await unlink(take).catch(() => undefined);
  }
  const result: RetrievalResult = { endedBy: ended, loggedIn };
  if (machine.mailbox !== undefined) result.mailbox = machine.mailbox;
  return result;
}
