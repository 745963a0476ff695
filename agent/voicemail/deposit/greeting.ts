// Which greeting a caller hears: the temporary greeting when one is recorded
// (it overrides everything: "I am away until Monday"); else the busy greeting for a
// busy callee, the unavailable greeting otherwise; else the default built from
// prompts: "The person at extension <name recording, or the number digit by
// digit> is on the phone / is not available. Please leave a message after the tone…"
import { PcmSource, SequenceSource, type AudioSource } from '../../media/audio-source.ts';
import { readWavFile } from '../../media/wav.ts';
import type { PromptLibrary } from '../prompts/library.ts';
import { sayDigits } from '../prompts/speech.ts';
import type { GreetingKind, Greetings } from '../store/greetings.ts';
import type { DepositReason } from '../store/types.ts';

async function recorded(greetings: Greetings, mailbox: string, kind: GreetingKind): Promise<AudioSource | undefined> {
  if (!(await greetings.has(mailbox, kind))) return undefined;
  try {
    return new PcmSource((await readWavFile(greetings.file(mailbox, kind))).samples);
  } catch {
    return undefined; // unreadable: fall back to the next choice
  }
}

export async function greetingFor(greetings: Greetings, prompts: PromptLibrary, mailbox: string, reason: DepositReason): Promise<{ source: AudioSource; kind: GreetingKind | 'default' }> {
  const temporary = await recorded(greetings, mailbox, 'temporary');
  if (temporary) return { source: temporary, kind: 'temporary' };
  const kind: GreetingKind = reason === 'busy' ? 'busy' : 'unavailable';
  const own = await recorded(greetings, mailbox, kind);
  if (own) return { source: own, kind };
  const name = await recorded(greetings, mailbox, 'name');
  const source = new SequenceSource([
    prompts.source(['greeting-person-at']),
    name ?? prompts.source(sayDigits(mailbox)),
    prompts.source([reason === 'busy' ? 'greeting-is-busy' : 'greeting-is-unavailable', 'leave-message']),
  ]);
  return { source, kind: 'default' };
}
