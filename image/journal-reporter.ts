// Reports every line of the update journal upstream, as `firmware.hook` events through
// the site's outbox, including the lines other processes write (`slots boot`, `slots
// verify` run by the service manager around the agent). It remembers how far it got in
// the state folder; a line is reported at least once, and its message id is derived
// from its bytes so the controller stores it once.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { NewOutboxMessage } from '../agent/sync/outbox.ts';

export const FIRMWARE_EVENT = 'firmware.hook';

export interface JournalReporterOptions {
  journalFile: string;
  /** Where the position is kept (state_dir/firmware). */
  stateDir: string;
  enqueue: (msg: NewOutboxMessage) => Promise<unknown>;
  intervalMs: number;
  logger: Logger;
}

interface Position {
  journal: string;
  offset: number;
}

/** A UUID-shaped id from the line's bytes: the same line is the same message. */
function lineId(journal: string, offset: number, line: string): string {
  const h = createHash('sha256').update(`${journal}\0${offset}\0${line}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export class JournalReporter {
  readonly #o: JournalReporterOptions;
  readonly #positionFile: string;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;

  constructor(options: JournalReporterOptions) {
    this.#o = options;
    this.#positionFile = path.join(options.stateDir, 'journal-reported.json');
  }

  start(): void {
    this.#flushInBackground();
    this.#timer = setInterval(() => this.#flushInBackground(), this.#o.intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running?.catch(() => undefined);
  }

  /** On the timer: a failure (disk full, journal unreadable) is logged and the next round tries again. */
  #flushInBackground(): void {
    this.flush().catch((err: unknown) => this.#o.logger.warn({ event: 'firmware.report_failed', err }, 'could not report the update journal; retrying later'));
  }

  #position(): Position {
    try {
      const p = JSON.parse(readFileSync(this.#positionFile, 'utf8')) as Position;
      if (p.journal === this.#o.journalFile && Number.isInteger(p.offset)) return p;
    } catch {
      // none yet, or unreadable: start from the beginning (lines are deduplicated by id)
    }
    return { journal: this.#o.journalFile, offset: 0 };
  }

  /** Reports the lines written since the last call; resolves with how many. One run at a time. */
  flush(): Promise<number> {
    if (!this.#running) this.#running = this.#flush().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #flush(): Promise<number> {
    const file = this.#o.journalFile;
    if (!existsSync(file)) return 0;
    let pos = this.#position();
    const size = statSync(file).size;
    if (size < pos.offset) pos = { journal: file, offset: 0 }; // a new journal
    if (size === pos.offset) return 0;
    const buf = Buffer.alloc(size - pos.offset);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, pos.offset);
    } finally {
      closeSync(fd);
    }
    const text = buf.toString('utf8');
    // Only whole lines: a line being written is reported on the next round.
    const end = text.lastIndexOf('\n');
    if (end < 0) return 0;
    let offset = pos.offset;
    let reported = 0;
    for (const line of text.slice(0, end).split('\n')) {
      const bytes = Buffer.byteLength(line) + 1;
      if (line.trim()) {
        let data: unknown;
        try {
          data = JSON.parse(line);
        } catch {
          data = { unreadable: line.slice(0, 500) }; // torn by a power cut: still say so
        }
        try {
          await this.#o.enqueue({ stream: 'events', type: FIRMWARE_EVENT, data, id: lineId(file, offset, line) });
          reported++;
        } catch (err) {
          if ((err as { code?: string }).code !== 'SQLITE_CONSTRAINT') {
            this.#o.logger.warn({ event: 'firmware.report_failed', err: (err as Error).message }, 'could not queue an update step for the controller; retrying later');
            break;
          }
        }
      }
      offset += bytes;
      mkdirSync(this.#o.stateDir, { recursive: true });
      writeFileSync(this.#positionFile, JSON.stringify({ journal: file, offset }));
    }
    return reported;
  }
}
