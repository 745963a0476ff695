// A simulated card and its PSTN as a process of its own, driven over the control
// socket: end-to-end tests and demos that need a PSTN without an agent. The card's
// own side can answer and echo (`--answer echo`), so a call placed over the socket
// has someone to talk to.
//
//   node drivers/sim/main.ts --type e1 --control 127.0.0.1:0 [--signalling pri|cas]
//        [--spans N] [--ports N] [--numbers 5550100,5550101] [--name pstn]
//        [--answer echo|none] [--answer-after MS] [--time-scale X]
//
// Prints one JSON line when ready — {"control":"127.0.0.1:PORT","card":"pstn"} — and
// runs until SIGTERM/SIGINT.

import { parseArgs } from 'node:util';
import { FRAME_BYTES, LineCardError } from '../types.ts';
import { SimCard } from './sim-card.ts';

function fail(message: string): never {
  process.stderr.write(`sim: ${message}\n`);
  process.exit(2);
}

function positiveNumber(text: string | undefined, key: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) fail(`--${key}: expected a number, got ${JSON.stringify(text)}`);
  return n;
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        type: { type: 'string' },
        name: { type: 'string' },
        control: { type: 'string' },
        signalling: { type: 'string' },
        spans: { type: 'string' },
        ports: { type: 'string' },
        numbers: { type: 'string' },
        answer: { type: 'string' },
        'answer-after': { type: 'string' },
        'time-scale': { type: 'string' },
      },
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  const type = values.type;
  if (type !== 't1' && type !== 'e1' && type !== 'fxo') fail('--type must be t1, e1 or fxo');
  if (!values.control) fail('--control host:port or socket path is required');
  const signalling = values.signalling ?? 'pri';
  if (signalling !== 'pri' && signalling !== 'cas') fail('--signalling must be pri or cas');
  const answer = values.answer ?? 'echo';
  if (answer !== 'echo' && answer !== 'none') fail('--answer must be echo or none');
  const answerAfterMs = positiveNumber(values['answer-after'], 'answer-after', 200);

  const card = new SimCard({
    name: values.name ?? 'pstn',
    type,
    signalling,
    control: values.control,
    timeScale: positiveNumber(values['time-scale'], 'time-scale', 1),
    ...(values.spans !== undefined ? { spans: positiveNumber(values.spans, 'spans', 1) } : {}),
    ...(values.ports !== undefined ? { ports: positiveNumber(values.ports, 'ports', 4) } : {}),
    ...(values.numbers !== undefined ? { numbers: values.numbers.split(',') } : {}),
  });

  if (answer === 'echo') {
    // The card's side of a standalone process: pick up every call and talk back with what it hears.
    for (const ch of card.channels()) {
      card.onFrame(ch, (frame) => {
        if (frame.length === FRAME_BYTES) card.writeFrame(ch, Uint8Array.from(frame));
      });
    }
    card.on('incoming', ({ channel }) => {
      setTimeout(() => void card.answer(channel).catch(() => undefined), answerAfterMs);
    });
  }

  try {
    await card.start();
  } catch (err) {
    fail(err instanceof LineCardError ? err.message : String(err));
  }
  process.stdout.write(`${JSON.stringify({ control: card.controlAddress, card: card.name })}\n`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void card.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
