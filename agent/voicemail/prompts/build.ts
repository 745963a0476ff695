// Build step: the prompt script → 8 kHz 16-bit WAV prompts with espeak-ng.
//   node agent/voicemail/prompts/build.ts [--out DIR] [--voice en-us]
// Only prompts whose text or voice changed are regenerated (manifest.json keeps
// what each file was made from), so running it on every start costs ~50 ms.
// espeak-ng speaks at 22,050 Hz; we resample to 8 kHz ourselves (windowed sinc)
// rather than depend on sox on the appliance build host.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeWav, writeWavFile } from '../../media/wav.ts';
import { readPromptScript, DEFAULT_SCRIPT } from './script.ts';

const run = promisify(execFile);

export const DEFAULT_PROMPTS_DIR = fileURLToPath(new URL('../../../generated/prompts', import.meta.url));
export const DEFAULT_VOICE = 'en-us';
const MANIFEST = 'manifest.json';

export class PromptBuildError extends Error {
  readonly code = 'EPROMPTBUILD';
}

/** Band-limited resampling (Blackman-windowed sinc, cutoff just under the lower Nyquist). */
export function resample(input: Int16Array, fromRate: number, toRate: number): Int16Array {
  if (fromRate === toRate) return input.slice();
  const ratio = fromRate / toRate;
  const cutoff = Math.min(1, toRate / fromRate) * 0.92; // of the input Nyquist
  const half = 24; // taps each side, in input samples scaled by the ratio
  const width = Math.ceil(half * Math.max(1, ratio));
  const out = new Int16Array(Math.floor(input.length / ratio));
  for (let n = 0; n < out.length; n++) {
    const centre = n * ratio;
    const first = Math.max(0, Math.ceil(centre - width));
    const last = Math.min(input.length - 1, Math.floor(centre + width));
    let acc = 0;
    let norm = 0;
    for (let k = first; k <= last; k++) {
      const x = k - centre;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * cutoff * x) / (Math.PI * cutoff * x);
      const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / width) + 0.08 * Math.cos((2 * Math.PI * x) / width);
      const h = sinc * w;
      acc += input[k]! * h;
      norm += h;
    }
    out[n] = Math.max(-32768, Math.min(32767, Math.round(norm === 0 ? 0 : acc / norm)));
  }
  return out;
}

/** Cuts leading and trailing near-silence, keeping 30 ms either side, so concatenated prompts flow. */
export function trimSilence(samples: Int16Array, rate: number, threshold = 300): Int16Array {
  let start = 0;
  while (start < samples.length && Math.abs(samples[start]!) < threshold) start++;
  let end = samples.length;
  while (end > start && Math.abs(samples[end - 1]!) < threshold) end--;
  const keep = Math.round(rate * 0.03);
  return samples.slice(Math.max(0, start - keep), Math.min(samples.length, end + keep));
}

async function speak(text: string, voice: string): Promise<Int16Array> {
  let stdout: Buffer;
  try {
    ({ stdout } = await run('espeak-ng', ['-v', voice, '-s', '155', '--stdout', text], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new PromptBuildError('espeak-ng is not installed (Debian package espeak-ng): voicemail prompts cannot be generated');
    throw new PromptBuildError(`espeak-ng failed on "${text}": ${e.message}`);
  }
  const wav = decodeWav(stdout);
  return trimSilence(resample(wav.samples, wav.sampleRate, 8000), 8000);
}

export interface BuildResult {
  dir: string;
  generated: number;
  unchanged: number;
  removed: number;
}

/** Generates every prompt of `script` into `outDir/<voice>/` that is missing or out of date. */
export async function buildPrompts(options: { outDir?: string; voice?: string; script?: string } = {}): Promise<BuildResult> {
  const voice = options.voice ?? DEFAULT_VOICE;
  const dir = path.join(options.outDir ?? DEFAULT_PROMPTS_DIR, voice);
  await mkdir(dir, { recursive: true });
  const prompts = readPromptScript(options.script ?? DEFAULT_SCRIPT);
  let manifest: Record<string, string> = {};
  try {
    manifest = JSON.parse(await readFile(path.join(dir, MANIFEST), 'utf8')) as Record<string, string>;
  } catch {
    // first build, or a damaged manifest: regenerate everything
  }
  const next: Record<string, string> = {};
  const todo: Array<[string, string]> = [];
  for (const [id, text] of prompts) {
    const digest = createHash('sha256').update(`${voice}\n${text}`).digest('hex').slice(0, 16);
    next[id] = digest;
    if (manifest[id] !== digest) todo.push([id, text]);
  }
  // Two at a time: espeak-ng is single-threaded and the build machine may be small.
  const queue = [...todo];
  const worker = async (): Promise<void> => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      const [id, text] = item;
      await writeWavFile(path.join(dir, `${id}.wav`), await speak(text, voice), { fsync: false });
    }
  };
  await Promise.all([worker(), worker()]);
  let removed = 0;
  for (const id of Object.keys(manifest)) {
    if (next[id] === undefined) {
      await rm(path.join(dir, `${id}.wav`), { force: true });
      removed++;
    }
  }
  await writeFile(path.join(dir, MANIFEST), `${JSON.stringify(next, null, 1)}\n`);
  return { dir, generated: todo.length, unchanged: prompts.size - todo.length, removed };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const started = performance.now();
  buildPrompts({ outDir: opt('--out'), voice: opt('--voice') }).then(
    (r) => console.error(`prompts: ${r.generated} generated, ${r.unchanged} unchanged, ${r.removed} removed in ${r.dir} (${Math.round(performance.now() - started)} ms)`),
    (err: unknown) => {
      console.error(`prompts: ${(err as Error).message}`);
      process.exitCode = 1;
    },
  );
}
