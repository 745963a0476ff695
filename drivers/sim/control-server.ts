// The control socket of a simulated card's PSTN (protocol: control-protocol.ts,
// docs/drivers.md). It lets a process outside the one hosting the card — an
// end-to-end test, `branchline sim call` — place calls into the card, answer the
// card's calls, play and record audio, and pull cables. It listens on loopback TCP
// or a Unix socket only: it is a test and demo instrument, not a remote API.

import { readFile, unlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { transcodeG711InPlace } from '../../agent/media/g711.ts';
import { ToneSource } from '../../agent/media/tone-generator.ts';
import { isQ850Cause } from '../q850.ts';
import type { AlarmKind, ChannelInfo } from '../types.ts';
import type { CallOutcome, CallSummary, ControlEvent, ControlRequest, ControlResponse } from './control-protocol.ts';
import { PROTOCOL_VERSION } from './control-protocol.ts';
import type { PstnCall } from './pstn-call.ts';
import type { SimPstn } from './pstn.ts';

/** The longest line either side of the control socket takes. */
export const MAX_CONTROL_LINE = 64 * 1024;
const KEEP_RELEASED_CALLS = 200;
const ALARMS: readonly AlarmKind[] = ['loss-of-signal', 'loss-of-frame', 'remote-alarm', 'ais', 'no-line-voltage', 'device-lost'];

export class ControlError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'ControlError';
    this.code = code;
  }
}

/** Where to listen: a Unix socket path (contains "/"), or host:port on loopback. */
export function parseControlAddress(text: string): { path: string } | { host: string; port: number } {
  if (text.includes('/')) return { path: text };
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(text);
  if (!m) throw new ControlError('ECONFIG', `control address ${JSON.stringify(text)} is neither host:port nor a socket path`);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  const port = Number(m[2]);
  if (!['127.0.0.1', '::1', 'localhost'].includes(host)) {
    throw new ControlError('ECONFIG', `control address ${text}: the control socket listens on loopback only (127.0.0.1, ::1, localhost)`);
  }
  if (port > 65535) throw new ControlError('ECONFIG', `control address ${text}: port out of range`);
  return { host, port };
}

export interface ControlServerOptions {
  /** Card name, for channel labels ("pstn/1/30"). */
  card: string;
  pstn: SimPstn;
  address: string;
  /** The card's channels as the card sees them, for `status`. */
  channels?: () => ChannelInfo[];
}

export class SimControlServer {
  readonly #card: string;
  readonly #pstn: SimPstn;
  readonly #address: string;
  readonly #channels: () => ChannelInfo[];
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #subscribers = new Set<net.Socket>();
  readonly #calls = new Map<string, PstnCall>();
  #unixPath: string | undefined;

  constructor(options: ControlServerOptions) {
    this.#card = options.card;
    this.#pstn = options.pstn;
    this.#address = options.address;
    this.#channels = options.channels ?? (() => []);
    this.#server = net.createServer((socket) => this.#connection(socket));
  }

  /** The address actually bound ("127.0.0.1:PORT" when port 0 was asked, or the socket path). */
  get address(): string {
    const a = this.#server.address();
    if (a && typeof a === 'object') return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    return this.#unixPath ?? this.#address;
  }

  async start(): Promise<void> {
    const where = parseControlAddress(this.#address);
    if ('path' in where) {
      // A socket file left by a process that died; a live one would refuse the connect.
      await unlink(where.path).catch(() => undefined);
      this.#unixPath = where.path;
    }
    this.#pstn.on('call', this.#onDialled);
    this.#pstn.on('alarm', this.#onAlarm);
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      const done = (): void => {
        this.#server.off('error', reject);
        resolve();
      };
      if ('path' in where) this.#server.listen(where.path, done);
      else this.#server.listen(where.port, where.host, done);
    });
  }

  async stop(): Promise<void> {
    this.#pstn.off('call', this.#onDialled);
    this.#pstn.off('alarm', this.#onAlarm);
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if (this.#unixPath) await unlink(this.#unixPath).catch(() => undefined);
  }

  // ---- connections ----

  #connection(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (line) void this.#request(socket, line);
      }
      if (buffer.length > MAX_CONTROL_LINE) {
        this.#send(socket, { id: 0, ok: false, error: { code: 'EARGUMENT', message: `request line longer than ${MAX_CONTROL_LINE} bytes` } });
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.#subscribers.delete(socket);
    });
  }

  async #request(socket: net.Socket, line: string): Promise<void> {
    let request: ControlRequest;
    try {
      const parsed: unknown = JSON.parse(line);
      if (!parsed || typeof parsed !== 'object' || typeof (parsed as { op?: unknown }).op !== 'string') {
        throw new ControlError('EARGUMENT', 'a request is a JSON object with "id" and "op"');
      }
      request = parsed as ControlRequest;
    } catch (err) {
      const message = err instanceof ControlError ? err.message : `not JSON: ${(err as Error).message}`;
      this.#send(socket, { id: 0, ok: false, error: { code: 'EARGUMENT', message } });
      return;
    }
    const id = typeof request.id === 'number' ? request.id : 0;
    try {
      const result = await this.#handle(socket, request);
      this.#send(socket, { id, ok: true, result });
    } catch (err) {
      const code = err instanceof ControlError ? err.code : ((err as { code?: string }).code ?? 'EFAILED');
      this.#send(socket, { id, ok: false, error: { code, message: (err as Error).message } });
    }
  }

  async #handle(socket: net.Socket, r: ControlRequest): Promise<unknown> {
    switch (r.op) {
      case 'status':
        return {
          protocol: PROTOCOL_VERSION,
          card: this.#card,
          spans: Array.from({ length: this.#pstn.spanCount() }, (_, i) => ({ span: i + 1, alarms: this.#pstn.alarms(i + 1) })),
          // Busy channels only (an idle E1 would be 30 lines of nothing): "span/channel" → state.
          channels: Object.fromEntries(this.#channels().filter((c) => c.state !== 'idle').map((c) => [`${c.span}/${c.channel}`, c.state])),
          subscribers: this.#pstn.subscribers(),
          calls: this.#summaries(),
        };
      case 'subscribe':
        this.#subscribers.add(socket);
        return { subscribed: true };
      case 'calls':
        return this.#summaries();
      case 'call':
        return this.#call(r);
      case 'answer':
        this.#find(r.call).answer();
        return this.#summary(this.#find(r.call));
      case 'hangup': {
        const cause = r.cause ?? 16;
        if (!isQ850Cause(cause)) throw new ControlError('EARGUMENT', `cause ${String(r.cause)} is not a Q.850 cause (1-127)`);
        this.#find(r.call).hangup(cause);
        return this.#summary(this.#find(r.call));
      }
      case 'play': {
        const call = this.#find(r.call);
        if (r.audio !== undefined) call.playRaw(inLaw(await this.#audioFile(r.audio), call), r.loops ?? 1);
        else call.playSource(new ToneSource({ frequencies: [number(r.tone ?? 440, 'tone', 50, 3900)], levelDbm0: -13, cadenceMs: [] }));
        return { playing: true };
      }
      case 'stop-audio':
        this.#find(r.call).stopPlayback();
        return { playing: false };
      case 'record':
        this.#find(r.call).record();
        return { recording: true };
      case 'save-recording': {
        const bytes = this.#find(r.call).recorded();
        if (typeof r.file !== 'string' || r.file === '') throw new ControlError('EARGUMENT', 'save-recording needs "file"');
        await writeFile(r.file, bytes);
        return { file: r.file, bytes: bytes.length };
      }
      case 'digits': {
        if (typeof r.digits !== 'string' || !/^[0-9*#A-D]+$/.test(r.digits)) throw new ControlError('EARGUMENT', 'digits: expected 0-9 * # A-D');
        this.#find(r.call).sendDigits(r.digits);
        return { sent: r.digits };
      }
      case 'subscriber.add': {
        text(r.number, 'number', /^\+?[0-9]{2,15}$/);
        const subscriber = this.#pstn.addSubscriber({
          number: r.number,
          ...(r.name !== undefined ? { name: String(r.name) } : {}),
          ...(r.behaviour !== undefined ? { behaviour: oneOf(r.behaviour, 'behaviour', ['answer', 'ring', 'busy', 'reject'] as const) } : {}),
          ...(r.answer_after !== undefined ? { answerAfterMs: number(r.answer_after, 'answer_after', 0, 300) * 1000 } : {}),
          ...(r.audio !== undefined ? { audio: oneOf(r.audio, 'audio', ['echo', 'tone', 'silence'] as const) } : {}),
        });
        return subscriber;
      }
      case 'subscriber.remove':
        return { removed: this.#pstn.removeSubscriber(String(r.number)) };
      case 'cable.pull':
        this.#pstn.pullCable(this.#span(r.span));
        return { span: r.span, alarms: this.#pstn.alarms(r.span) };
      case 'cable.plug':
        this.#pstn.plugCable(this.#span(r.span));
        return { span: r.span };
      case 'alarm.raise':
        this.#pstn.raiseAlarm(this.#span(r.span), oneOf(r.alarm, 'alarm', ALARMS));
        return { span: r.span, alarms: this.#pstn.alarms(r.span) };
      case 'alarm.clear':
        this.#pstn.clearAlarm(this.#span(r.span), oneOf(r.alarm, 'alarm', ALARMS));
        return { span: r.span, alarms: this.#pstn.alarms(r.span) };
      default:
        throw new ControlError('EUNKNOWNOP', `unknown op ${JSON.stringify((r as { op: unknown }).op)}`);
    }
  }

  async #call(r: Extract<ControlRequest, { op: 'call' }>): Promise<unknown> {
    text(r.to, 'to', /^\+?[0-9*#]{1,32}$/);
    if (r.from !== undefined) text(r.from, 'from', /^\+?[0-9]{1,32}$/);
    if (r.span !== undefined) this.#span(r.span);
    const talk = r.talk === undefined ? undefined : number(r.talk, 'talk', 0, 3600);
    const answerTimeout = number(r.answer_timeout ?? 30, 'answer_timeout', 0.1, 600);
    const audio = r.audio !== undefined ? await this.#audioFile(r.audio) : undefined;
    const call = this.#pstn.placeCall({
      to: r.to,
      ...(r.from !== undefined ? { from: r.from } : {}),
      ...(r.name !== undefined ? { name: String(r.name) } : {}),
      ...(r.presentation !== undefined ? { presentation: oneOf(r.presentation, 'presentation', ['allowed', 'restricted', 'unavailable'] as const) } : {}),
      ...(r.span !== undefined ? { span: r.span } : {}),
    });
    this.#track(call);
    if (talk === undefined) {
      if (audio) call.once('answered', () => call.playRaw(inLaw(audio, call), Infinity));
      return this.#summary(call);
    }
    return this.#talk(call, audio, talk, answerTimeout);
  }

  /** Runs a whole call: wait for the answer, play, hang up; the outcome `branchline sim call` prints. */
  async #talk(call: PstnCall, audio: Uint8Array | undefined, talkSec: number, answerTimeoutSec: number): Promise<CallOutcome> {
    let answered = false;
    try {
      await call.until('connected', answerTimeoutSec * 1000);
      answered = true;
    } catch {
      // Released or never answered: reported in the outcome.
    }
    if (answered) {
      if (audio) call.playRaw(inLaw(audio, call), Infinity);
      else call.playSource(new ToneSource({ frequencies: [440], levelDbm0: -13, cadenceMs: [] }));
      await Promise.race([new Promise((r) => setTimeout(r, talkSec * 1000)), call.until('released', (talkSec + 1) * 1000).catch(() => undefined)]);
    }
    if (call.state !== 'released') {
      call.hangup();
      await call.until('released', 2000).catch(() => undefined);
    }
    const s = call.stats;
    const seconds = s.connectedAt !== undefined ? ((s.releasedAt ?? Date.now()) - s.connectedAt) / 1000 : 0;
    return {
      answered,
      channel: call.channel ? this.#label(call) : null,
      seconds: Math.round(seconds * 100) / 100,
      packets: { sent: s.framesSent, received: s.framesReceived, audible_received: s.audibleFramesReceived },
      cause: call.releaseCause ?? null,
      audio_both_ways: answered && s.framesSent > 0 && s.audibleFramesReceived > 0,
    };
  }

  // ---- events ----

  readonly #onDialled = (call: PstnCall): void => {
    this.#track(call);
    const event: ControlEvent = { event: 'call.dialled', call: call.id, to: call.to, channel: this.#label(call) };
    if (call.from.number !== undefined) event.from = call.from.number;
    this.#broadcast(event);
  };

  readonly #onAlarm = (e: { span: number; alarm: AlarmKind; active: boolean }): void => {
    this.#broadcast({ event: 'alarm', ...e });
  };

  #track(call: PstnCall): void {
    this.#calls.set(call.id, call);
    call.on('alerting', () => this.#broadcast({ event: 'call.alerting', call: call.id }));
    call.on('answered', () => this.#broadcast({ event: 'call.answered', call: call.id }));
    call.on('digits', (digits) => this.#broadcast({ event: 'call.digits', call: call.id, digits }));
    call.on('released', ({ cause, by }) => {
      this.#broadcast({ event: 'call.released', call: call.id, cause, by });
      this.#forgetOld();
    });
  }

  #forgetOld(): void {
    const released = [...this.#calls.values()].filter((c) => c.state === 'released');
    for (const c of released.slice(0, Math.max(0, released.length - KEEP_RELEASED_CALLS))) this.#calls.delete(c.id);
  }

  #broadcast(event: ControlEvent): void {
    const line = `${JSON.stringify(event)}\n`;
    for (const s of this.#subscribers) s.write(line);
  }

  #send(socket: net.Socket, response: ControlResponse): void {
    if (!socket.destroyed) socket.write(`${JSON.stringify(response)}\n`);
  }

  // ---- helpers ----

  #find(id: unknown): PstnCall {
    const call = typeof id === 'string' ? this.#calls.get(id) : undefined;
    if (!call) throw new ControlError('ENOCALL', `no call ${JSON.stringify(id)}`);
    return call;
  }

  #span(span: unknown): number {
    if (typeof span !== 'number' || !Number.isInteger(span) || span < 1 || span > this.#pstn.spanCount()) {
      throw new ControlError('EARGUMENT', `span: expected 1..${this.#pstn.spanCount()}, got ${JSON.stringify(span)}`);
    }
    return span;
  }

  async #audioFile(file: unknown): Promise<Uint8Array> {
    if (typeof file !== 'string' || file === '') throw new ControlError('EARGUMENT', 'audio: expected a file path');
    try {
      return await readFile(file);
    } catch (err) {
      throw new ControlError('EARGUMENT', `cannot read audio file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }

  #label(call: PstnCall): string {
    return call.channel ? `${this.#card}/${call.channel.span}/${call.channel.channel}` : '';
  }

  #summary(call: PstnCall): CallSummary {
    const s: CallSummary = {
      call: call.id,
      direction: call.direction,
      to: call.to,
      state: call.state,
      framesSent: call.stats.framesSent,
      framesReceived: call.stats.framesReceived,
      audibleFramesReceived: call.stats.audibleFramesReceived,
    };
    if (call.from.number !== undefined) s.from = call.from.number;
    if (call.channel) s.channel = this.#label(call);
    if (call.releaseCause !== undefined) s.cause = call.releaseCause;
    return s;
  }

  #summaries(): CallSummary[] {
    return [...this.#calls.values()].map((c) => this.#summary(c));
  }
}

/** Audio files are raw µ-law; an A-law span (E1) gets them transcoded. */
function inLaw(ulaw: Uint8Array, call: PstnCall): Uint8Array {
  if (call.law === 'PCMU') return ulaw;
  const copy = Uint8Array.from(ulaw);
  transcodeG711InPlace('PCMU', call.law, copy, 0, copy.length);
  return copy;
}

function number(value: unknown, key: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new ControlError('EARGUMENT', `${key}: expected a number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function text(value: unknown, key: string, pattern: RegExp): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw new ControlError('EARGUMENT', `${key}: ${JSON.stringify(value)} is not valid`);
  return value;
}

function oneOf<T extends string>(value: unknown, key: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new ControlError('EARGUMENT', `${key}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}
