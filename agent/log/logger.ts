import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/types.ts';

export type { Logger };

// Secrets must never reach a log line, whatever a caller passes in.
const redactPaths = [
  'password',
  '*.password',
  'extensions[*].password',
  'authorization',
  '*.authorization',
  'ha1',
  '*.ha1',
];

/** One JSON line per event on stdout (or the given stream); child loggers carry context. */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level,
    base: undefined,
    redact: { paths: redactPaths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // stdout is written synchronously, one write(2) per line. pino's own default for
  // stdout is asynchronous: each line goes to libuv's thread pool and back, which on
  // an agent pinned to one core is two context switches per line and measured ~20 µs
  // of CPU per line against ~4 µs written here (a call logs about ten lines at info;
  // docs/decisions/0011). A line is also out before anything that follows it, even
  // on a crash. The cost: a stalled reader of stdout (a full pipe) stalls the agent,
  // as it would stall the asynchronous writer's memory instead.
  return pino(options, destination ?? pino.destination({ dest: 1, sync: true }));
}
