// SIP message framing on a byte stream (TCP), RFC 3261 18.3 and RFC 5626 3.5.1.
//
// A stream carries: optional CRLFs between messages (a CRLFCRLF is a keep-alive
// "ping" to answer with one CRLF, a lone CRLF is a "pong" or padding and is
// ignored, 7.5), then a header block ending in CRLFCRLF, then exactly
// Content-Length bytes of body. Content-Length is mandatory on streams.
//
// The framer never holds more than maxMessageBytes of one message plus one read
// chunk: a header block that does not end within the limit, or a Content-Length
// that is missing, not a plain decimal, repeated, or too large, stops the framer
// for good with an error; the connection must then be closed, because where the
// next message starts is unknowable. Errors carry the header block when it is
// complete, so the stack can try to parse enough of it to answer 400/413/513.
//
// The framer is pure (no sockets): push bytes in, get frame events out.

const CR = 0x0d;
const LF = 0x0a;
const HEADER_END = Buffer.from('\r\n\r\n', 'latin1');
const DECIMAL = /^[0-9]+$/;
const IDLE_BUFFER_BYTES = 16 * 1024;

export type FramingFailure =
  | 'header-too-large'
  | 'missing-content-length'
  | 'invalid-content-length'
  | 'multiple-content-length'
  | 'message-too-large';

export class FramingError extends Error {
  readonly code = 'EFRAMING';
  readonly failure: FramingFailure;
  /** The status to answer with when the header block can be parsed; undefined: just close. */
  readonly status: number | undefined;
  readonly reasonPhrase: string;
  /** The complete header block (start line to CRLFCRLF), when one was received. */
  readonly header: Buffer | undefined;

  constructor(failure: FramingFailure, status: number | undefined, reasonPhrase: string, header: Buffer | undefined) {
    super(`SIP stream framing failed: ${failure}`);
    this.name = 'FramingError';
    this.failure = failure;
    this.status = status;
    this.reasonPhrase = reasonPhrase;
    this.header = header;
  }
}

export type FrameEvent =
  | { kind: 'message'; bytes: Buffer }
  | { kind: 'ping' }
  | { kind: 'error'; error: FramingError };

export interface StreamFramerOptions {
  /** Whole message (header block + body) limit in bytes. */
  maxMessageBytes: number;
}

type ContentLengthResult = { ok: true; length: number } | { ok: false; failure: FramingFailure; reason: string };

/** Finds the one Content-Length (or compact `l`) in a header block, unfolding continuation lines. */
export function readContentLength(headerBlock: string): ContentLengthResult {
  const lines = headerBlock.split('\r\n');
  const values: string[] = [];
  let current: string | undefined;
  const flush = (): void => {
    if (current === undefined) return;
    const colon = current.indexOf(':');
    if (colon > 0) {
      const name = current.slice(0, colon).trim().toLowerCase();
      if (name === 'content-length' || name === 'l') values.push(current.slice(colon + 1).trim());
    }
    current = undefined;
  };
  // Line 0 is the start line.
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if ((line.startsWith(' ') || line.startsWith('\t')) && current !== undefined) {
      current += ' ' + line.trim();
    } else {
      flush();
      current = line;
    }
  }
  flush();
  if (values.length === 0) return { ok: false, failure: 'missing-content-length', reason: 'Missing Content-Length' };
  if (values.length > 1) return { ok: false, failure: 'multiple-content-length', reason: 'Multiple Content-Length' };
  const text = values[0] ?? '';
  if (!DECIMAL.test(text)) return { ok: false, failure: 'invalid-content-length', reason: 'Invalid Content-Length' };
  // 1*DIGIT: leading zeros are legal; a number too long to be exact is simply too large.
  return { ok: true, length: text.length > 15 ? Number.POSITIVE_INFINITY : Number(text) };
}

export class StreamFramer {
  private readonly maxMessageBytes: number;
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  private end = 0;
  /** Where the CRLFCRLF search resumes, so trickled bytes are not rescanned. */
  private scanFrom = 0;
  /** Total length of the message being read once its header block is known; 0 while reading headers. */
  private need = 0;
  private failed = false;

  constructor(opts: StreamFramerOptions) {
    this.maxMessageBytes = opts.maxMessageBytes;
  }

  /** Bytes held for an incomplete message. */
  get bufferedBytes(): number {
    return this.end - this.start;
  }

  /** True once an error was returned; the stream cannot be resynchronised. */
  get isFailed(): boolean {
    return this.failed;
  }

  push(chunk: Buffer): FrameEvent[] {
    if (this.failed) return [];
    this.append(chunk);
    const events: FrameEvent[] = [];
    for (;;) {
      const event = this.next();
      if (event === undefined) break;
      events.push(event);
      if (event.kind === 'error') {
        this.failed = true;
        this.release();
        break;
      }
    }
    if (this.start === this.end) {
      // Idle connections should not pin a large buffer left by one big message.
      if (this.buf.length > IDLE_BUFFER_BYTES) this.buf = Buffer.alloc(0);
      this.start = 0;
      this.end = 0;
      this.scanFrom = 0;
    }
    return events;
  }

  private release(): void {
    this.buf = Buffer.alloc(0);
    this.start = 0;
    this.end = 0;
    this.scanFrom = 0;
  }

  private append(chunk: Buffer): void {
    const held = this.end - this.start;
    if (this.end + chunk.length > this.buf.length) {
      const needed = held + chunk.length;
      if (needed <= this.buf.length && this.start > 0) {
        this.buf.copy(this.buf, 0, this.start, this.end);
      } else {
        const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(this.buf.length * 2, this.maxMessageBytes + chunk.length), 4096));
        this.buf.copy(grown, 0, this.start, this.end);
        this.buf = grown;
      }
      this.scanFrom -= this.start;
      this.start = 0;
      this.end = held;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
  }

  private next(): FrameEvent | undefined {
    if (this.need === 0) {
      const keepalive = this.skipKeepalives();
      if (keepalive !== undefined) return keepalive === 'wait' ? undefined : { kind: 'ping' };
      if (this.start === this.end) return undefined;
      const header = this.findHeaderEnd();
      if (header === undefined) return undefined;
      if (header.kind === 'error') return header;
      this.need = header.total;
    }
    if (this.end - this.start < this.need) return undefined;
    const bytes = Buffer.from(this.buf.subarray(this.start, this.start + this.need));
    this.start += this.need;
    this.scanFrom = this.start;
    this.need = 0;
    return { kind: 'message', bytes };
  }

  /**
   * Consumes CRLFs before a message. Returns 'ping' after consuming one CRLFCRLF,
   * 'wait' when the bytes so far could still become a ping, undefined when a message starts.
   */
  private skipKeepalives(): 'ping' | 'wait' | undefined {
    const b = this.buf;
    while (this.start < this.end) {
      const avail = this.end - this.start;
      const c0 = b[this.start];
      if (c0 === LF) {
        this.start += 1; // a bare LF between messages: padding
        continue;
      }
      if (c0 !== CR) break;
      if (avail < 2) return 'wait';
      if (b[this.start + 1] !== LF) break; // CR not followed by LF: let the parser reject it
      if (avail < 3) return 'wait';
      if (b[this.start + 2] !== CR) {
        this.start += 2; // lone CRLF: a pong, ignored
        continue;
      }
      if (avail < 4) return 'wait';
      if (b[this.start + 3] === LF) {
        this.start += 4;
        this.scanFrom = this.start;
        return 'ping';
      }
      this.start += 2;
    }
    this.scanFrom = Math.max(this.scanFrom, this.start);
    return undefined;
  }

  private findHeaderEnd(): { kind: 'ok'; total: number } | { kind: 'error'; error: FramingError } | undefined {
    const view = this.buf.subarray(0, this.end);
    const at = view.indexOf(HEADER_END, Math.max(this.scanFrom, this.start));
    if (at < 0) {
      if (this.end - this.start > this.maxMessageBytes) {
        return { kind: 'error', error: new FramingError('header-too-large', undefined, 'Message Too Large', undefined) };
      }
      this.scanFrom = Math.max(this.start, this.end - 3);
      return undefined;
    }
    const headerBytes = at + 4 - this.start;
    const header = (): Buffer => Buffer.from(this.buf.subarray(this.start, at + 4));
    if (headerBytes > this.maxMessageBytes) {
      return { kind: 'error', error: new FramingError('header-too-large', 513, 'Message Too Large', header()) };
    }
    const cl = readContentLength(this.buf.toString('latin1', this.start, at));
    if (!cl.ok) return { kind: 'error', error: new FramingError(cl.failure, 400, cl.reason, header()) };
    if (headerBytes + cl.length > this.maxMessageBytes) {
      return { kind: 'error', error: new FramingError('message-too-large', 413, 'Request Entity Too Large', header()) };
    }
    return { kind: 'ok', total: headerBytes + cl.length };
  }
}
