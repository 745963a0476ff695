// The AT command channel over one byte stream: a writer, a line parser and an
// unsolicited-line router. Exactly one command is in flight; the next waits its turn.
// Each reply is matched to the command in flight: lines the command asked for (its
// `info` prefix), other non-URC lines, then a final result code. A command that gets
// no final result within its timeout fails with an error naming the command and the
// result codes it was waiting for. Lines that are unsolicited result codes (RING,
// +CLIP, caller ID, NO CARRIER outside a command...) go to the router at any time.
//
// A command can switch the stream to data (voice audio after CONNECT); the data
// handler then gets every byte until it says the data state has ended.

import { LineCardError } from '../types.ts';

export interface AtReply {
  /** The final result code (OK, CONNECT, VCON...). */
  final: string;
  /** Information lines the command produced. */
  lines: string[];
}

export interface AtCommandOptions {
  timeoutMs: number;
  /** Result codes that complete the command successfully (default: OK). */
  success?: readonly string[];
  /** Prefix of the information lines this command expects (e.g. "+CLCC:"). */
  info?: string;
  /**
   * The command makes or answers a call (ATD, ATA): BUSY, NO ANSWER, NO CARRIER and
   * NO DIALTONE are its failure results. For any other command they are unsolicited
   * (a cellular call ending while AT+CLCC is in flight).
   */
  progress?: boolean;
  /** On success the stream enters the data state with this handler, before another byte is parsed. */
  data?: DataHandler;
  /** Bytes to write instead of `command` + CR (a DLE code that ends the data state). */
  raw?: Buffer;
  /** Called once the command has been handed to the device. */
  onSent?: () => void;
}

/** A command answered with a failure result (ERROR, +CME ERROR, BUSY, NO CARRIER...). */
export class AtCommandError extends Error {
  readonly code = 'EATREPLY';
  readonly command: string;
  readonly final: string;

  constructor(command: string, final: string) {
    super(`${command} failed: ${final}`);
    this.name = 'AtCommandError';
    this.command = command;
    this.final = final;
  }
}

/** Returns how many bytes belonged to the data state when it ends, or undefined while it goes on. */
export type DataHandler = (bytes: Buffer) => number | undefined;

// V.250 final result codes and 27.007's CME/CMS errors end any command; the call
// progress results end only a command that makes or answers a call.
const FAILURE_FINALS = /^(ERROR|\+CME ERROR:.*|\+CMS ERROR:.*)$/;
const PROGRESS_FINALS = /^(NO CARRIER|BUSY|NO ANSWER|NO DIAL ?TONE)$/;
const SUCCESS_FINALS_DEFAULT = ['OK'];
// Lines that are always unsolicited, whatever is in flight: rings, caller ID, call
// waiting, vendor reports (^...), and call progress outside a call command.
const UNSOLICITED = /^(RING|\+CRING:.*|\+CLIP:.*|(DATE|TIME|NMBR|NAME|MESG|DDN_NMBR) *=.*|\+CCWA:.*|\^.*|NO CARRIER|BUSY|NO ANSWER|NO DIAL ?TONE)$/;

interface Pending {
  command: string;
  options: AtCommandOptions;
  lines: string[];
  resolve: (reply: AtReply) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
}

/** Longer than any line a modem sends: bytes without a line end past this are noise. */
const MAX_AT_LINE = 4096;

export class AtChannel {
  readonly #card: string;
  readonly #write: (bytes: Buffer) => void;
  readonly #onUnsolicited: (line: string) => void;
  readonly #drain: () => Promise<void>;
  readonly #queue: Pending[] = [];
  #inFlight: Pending | undefined;
  #buffer = '';
  #data: DataHandler | undefined;
  #closed: Error | undefined;
  /** A line ended with CR at the end of a read: an LF starting the next read belongs to it. */
  #skipLf = false;

  /** `drain` resolves when everything written so far has reached the device. */
  constructor(card: string, write: (bytes: Buffer) => void, onUnsolicited: (line: string) => void, drain: () => Promise<void> = async () => {}) {
    this.#card = card;
    this.#write = write;
    this.#onUnsolicited = onUnsolicited;
    this.#drain = drain;
  }

  /** Resolves when every byte written so far has gone to the device. */
  drained(): Promise<void> {
    return this.#drain();
  }

  /** Sends `command` (without the trailing CR) once every earlier command has its reply. */
  command(command: string, options: AtCommandOptions): Promise<AtReply> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      this.#queue.push({ command, options, lines: [], resolve, reject });
      this.#next();
    });
  }

  /** Whether a command is waiting for its reply. */
  get busy(): boolean {
    return this.#inFlight !== undefined;
  }

  /** The command in flight, if any (e.g. a dial to abort). */
  get inFlight(): string | undefined {
    return this.#inFlight?.command;
  }

  /**
   * Writes bytes outside the command protocol: a character that aborts a dial in
   * progress (V.250 §6.3.1), or DLE-shielded audio in the data state.
   */
  writeRaw(bytes: Buffer): void {
    if (!this.#closed) this.#write(bytes);
  }

  /** From now on every byte goes to `handler` until it reports the data state ended. */
  enterData(handler: DataHandler): void {
    this.#data = handler;
  }

  get inData(): boolean {
    return this.#data !== undefined;
  }

  /** Bytes from the device. */
  feed(bytes: Buffer): void {
    let rest: Buffer | undefined = bytes;
    if (this.#skipLf) {
      this.#skipLf = false;
      if (rest[0] === 0x0a) rest = rest.subarray(1);
    }
    if (this.#data) {
      const used = this.#data(rest);
      if (used === undefined) return;
      this.#data = undefined;
      rest = rest.subarray(used);
    }
    this.#buffer += rest.toString('latin1');
    let end: number;
    while ((end = this.#buffer.search(/[\r\n]/)) !== -1) {
      const line = this.#buffer.slice(0, end).trim();
      // CR LF is one line end: the LF must not reach a data state that starts after this line.
      let next = end + 1;
      if (this.#buffer[end] === '\r') {
        if (this.#buffer[next] === '\n') next++;
        else if (next === this.#buffer.length) this.#skipLf = true;
      }
      this.#buffer = this.#buffer.slice(next);
      if (line.length > 0) this.#line(line);
      // A CONNECT can switch to data mid-chunk: hand the rest of the chunk over.
      if (this.#data) {
        const tail = Buffer.from(this.#buffer, 'latin1');
        this.#buffer = '';
        if (tail.length > 0) this.feed(tail);
        return;
      }
    }
    // A device streaming garbage without line ends must not grow the buffer without end.
    if (this.#buffer.length > MAX_AT_LINE) this.#buffer = '';
  }

  /** The device is gone: every command waiting fails with EDEVICE. */
  close(reason: string): void {
    this.#closed = new LineCardError('EDEVICE', this.#card, reason);
    this.#data = undefined;
    this.#buffer = '';
    const pending = [...(this.#inFlight ? [this.#inFlight] : []), ...this.#queue.splice(0)];
    this.#inFlight = undefined;
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(new LineCardError('EDEVICE', this.#card, `${p.command}: ${reason}`));
    }
  }

  #line(line: string): void {
    const pending = this.#inFlight;
    if (pending) {
      if (line === pending.command) return; // the modem's echo of our own command
      if (pending.options.info && line.startsWith(pending.options.info)) {
        pending.lines.push(line);
        return;
      }
      const success = pending.options.success ?? SUCCESS_FINALS_DEFAULT;
      if (success.some((s) => line === s || line.startsWith(`${s} `))) return this.#finish(pending, undefined, line);
      if (FAILURE_FINALS.test(line) || (pending.options.progress && PROGRESS_FINALS.test(line))) {
        return this.#finish(pending, new AtCommandError(pending.command, line), line);
      }
      if (!UNSOLICITED.test(line)) {
        pending.lines.push(line);
        return;
      }
    }
    this.#onUnsolicited(line);
  }

  #finish(pending: Pending, err: Error | undefined, final: string): void {
    clearTimeout(pending.timer);
    this.#inFlight = undefined;
    if (!err && pending.options.data) this.#data = pending.options.data;
    if (err) pending.reject(err);
    else pending.resolve({ final, lines: pending.lines });
    this.#next();
  }

  #next(): void {
    if (this.#inFlight || this.#closed) return;
    const pending = this.#queue.shift();
    if (!pending) return;
    this.#inFlight = pending;
    const awaited = [...(pending.options.success ?? SUCCESS_FINALS_DEFAULT), 'ERROR'].join(' or ');
    pending.timer = setTimeout(() => {
      if (this.#inFlight !== pending) return;
      this.#inFlight = undefined;
      pending.reject(new LineCardError('ETIMEOUT', this.#card, `no reply to ${pending.command} within ${pending.options.timeoutMs} ms (waiting for ${awaited})`));
      this.#next();
    }, pending.options.timeoutMs);
    this.#write(pending.options.raw ?? Buffer.from(`${pending.command}\r`, 'latin1'));
    pending.options.onSent?.();
  }
}
