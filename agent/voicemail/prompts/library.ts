// Prompts in memory: every generated WAV of one voice, loaded at start (~2 MB),
// handed out as audio sources. A missing prompt plays as a short silence and is
// reported once, so a box built without espeak-ng still takes messages.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { PcmSource, SequenceSource, SilenceSource, type AudioSource } from '../../media/audio-source.ts';
import { readWavFile } from '../../media/wav.ts';

export class PromptLibrary {
  readonly #prompts = new Map<string, Int16Array>();
  readonly #reported = new Set<string>();
  readonly #logger: Logger | undefined;

  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  /** Loads every `<id>.wav` of `dir` (8 kHz mono). Returns how many; 0 when the folder is missing. */
  async load(dir: string): Promise<number> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      this.#logger?.error({ event: 'voicemail.prompts_missing', dir, err }, `no voicemail prompts in ${dir}: run node agent/voicemail/prompts/build.ts`);
      return 0;
    }
    for (const name of names) {
      if (!name.endsWith('.wav')) continue;
      const wav = await readWavFile(path.join(dir, name));
      if (wav.sampleRate !== 8000 || wav.channels !== 1) {
        this.#logger?.error({ event: 'voicemail.prompt_format', file: name, rate: wav.sampleRate }, 'voicemail prompt is not 8 kHz mono; skipped');
        continue;
      }
      this.#prompts.set(name.slice(0, -4), wav.samples);
    }
    return this.#prompts.size;
  }

  has(id: string): boolean {
    return this.#prompts.has(id);
  }

  samples(id: string): Int16Array | undefined {
    const s = this.#prompts.get(id);
    if (s === undefined && !this.#reported.has(id)) {
      this.#reported.add(id);
      this.#logger?.warn({ event: 'voicemail.prompt_unknown', prompt: id }, `voicemail prompt "${id}" is missing; playing silence`);
    }
    return s;
  }

  /** The prompts one after another. */
  source(ids: readonly string[]): AudioSource {
    return new SequenceSource(ids.map((id) => this.#one(id)));
  }

  #one(id: string): AudioSource {
    const s = this.samples(id);
    return s === undefined ? new SilenceSource(200) : new PcmSource(s);
  }
}
