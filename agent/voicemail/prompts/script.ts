// The checked-in prompt script (script-en.txt): `id = text` lines.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DEFAULT_SCRIPT = fileURLToPath(new URL('./script-en.txt', import.meta.url));

export class PromptScriptError extends Error {
  readonly code = 'EPROMPTSCRIPT';
}

/** Prompt id → text, in file order. Throws PromptScriptError naming the line of a bad entry. */
export function parsePromptScript(text: string, file = 'prompt script'): Map<string, string> {
  const prompts = new Map<string, string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^([a-z0-9][a-z0-9-]*)\s*=\s*(.+)$/.exec(line);
    if (!m) throw new PromptScriptError(`${file}:${i + 1}: expected "id = text"`);
    const [, id, spoken] = m as unknown as [string, string, string];
    if (prompts.has(id)) throw new PromptScriptError(`${file}:${i + 1}: prompt "${id}" is defined twice`);
    prompts.set(id, spoken);
  });
  return prompts;
}

export function readPromptScript(file = DEFAULT_SCRIPT): Map<string, string> {
  return parsePromptScript(readFileSync(file, 'utf8'), file);
}
