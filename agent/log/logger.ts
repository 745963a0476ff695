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
  return destination ? pino(options, destination) : pino(options);
}
