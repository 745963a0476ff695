// A modem emulator on a real pseudo-terminal pair: socat links two ptys
// (`pty,raw,echo=0,link=...`); the driver under test opens one end as its serial
// device, the emulator the other. The emulator answers AT commands the way a V.253
// voice modem or a 27.007 cellular module does, keeps every byte the driver wrote
// (tests assert them exactly), and acts as the far end of the line: rings with
// caller ID, answers or refuses calls, sends and receives audio, hangs up. Killing
// socat is a device unplugged; starting it again on the same links plugs it back.

import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SerialPort } from 'serialport';
import { DtmfDetector } from '../../agent/media/dtmf-detector.ts';
import { decodeG711, encodeG711, FRAME_SAMPLES } from '../../agent/media/g711.ts';
import { DLE, ETX, dleEncode } from '../../drivers/serial-at/dle.ts';
import { isRunning, track, waitExit } from './proc.ts';

export type EmulatedKind = 'voice-modem' | 'cellular';

export interface ModemEmulatorOptions {
  kind: EmulatedKind;
  /** A voice modem that lacks AT+VCID and only knows AT#CID (Rockwell family). */
  vcid?: boolean;
  /** Pause between RINGs (a real line: 6 s; tests: much less). */
  ringIntervalMs?: number;
}

type LineState = 'idle' | 'ringing' | 'dialling' | 'connected' | 'data';

export interface EmulatorEvents {
  /** The driver dialled this number. */
  dial: [string];
  answered: [];
  hungup: [];
  command: [string];
}

const AUDIBLE_PEAK = 100;

export class ModemEmulator extends EventEmitter<EmulatorEvents> {
  readonly kind: EmulatedKind;
  readonly dir: string;
  /** The device path the driver opens. */
  readonly hostPath: string;
  readonly modemPath: string;
  readonly #vcid: boolean;
  readonly #ringIntervalMs: number;
  #socat: ChildProcess | undefined;
  #port: SerialPort | undefined;
  #received: Buffer[] = [];
  #commands: string[] = [];
  #line = '';
  #echo = true;
  state: LineState = 'idle';
  #ringTimer: NodeJS.Timeout | undefined;
  #callerId: { number?: string; name?: string; withheld?: boolean } = {};
  #audioTimer: NodeJS.Timeout | undefined;
  #dleHalf = false;
  #rx = { bytes: 0, frames: 0, audible: 0 };
  #frame = new Uint8Array(160);
  #frameFill = 0;
  #digits = '';
  #detector = new DtmfDetector((e) => (this.#digits += e.digit));
  #pcm = new Int16Array(FRAME_SAMPLES);
  /** Cellular: the outbound call's +CLCC stat (2 dialling, 3 alerting, 0 active). */
  #clccStat = 2;
  #dialled = '';

  private constructor(options: ModemEmulatorOptions) {
    super();
    this.kind = options.kind;
    this.#vcid = options.vcid ?? true;
    this.#ringIntervalMs = options.ringIntervalMs ?? 150;
    this.dir = mkdtempSync(path.join(tmpdir(), 'modem-'));
    this.hostPath = path.join(this.dir, 'host');
    this.modemPath = path.join(this.dir, 'modem');
  }

  static async start(options: ModemEmulatorOptions): Promise<ModemEmulator> {
    const emulator = new ModemEmulator(options);
    await emulator.plug();
    return emulator;
  }

  /** Everything the driver wrote, in order, as one string (latin1). */
  written(): string {
    return Buffer.concat(this.#received).toString('latin1');
  }

  commands(): string[] {
    return [...this.#commands];
  }

  clearWritten(): void {
    this.#received = [];
    this.#commands = [];
  }

  framesReceived(): number {
    return this.#rx.frames;
  }

  audibleFramesReceived(): number {
    return this.#rx.audible;
  }

  digitsReceived(): string {
    return this.#digits;
  }

  dialled(): string {
    return this.#dialled;
  }

  // ---- the far end ----

  /** A caller rings the line: RING, caller ID, RING... until answered or stopRinging(). */
  ring(callerId: { number?: string; name?: string; withheld?: boolean }): void {
    this.#callerId = callerId;
    this.#dialled = '';
    this.state = 'ringing';
    let count = 0;
    const ringOnce = (): void => {
      if (this.state !== 'ringing') return;
      this.#send('\r\nRING\r\n');
      if (this.kind === 'cellular') this.#send(`\r\n${this.#clip()}\r\n`);
      else if (count === 0) this.#send(this.#vcidBlock());
      count++;
      this.#ringTimer = setTimeout(ringOnce, this.#ringIntervalMs);
    };
    ringOnce();
  }

  stopRinging(): void {
    clearTimeout(this.#ringTimer);
    if (this.state === 'ringing') this.state = 'idle';
  }

  /** The called party answers the driver's outbound call. */
  answerCall(): void {
    if (this.state !== 'dialling') throw new Error(`emulator: nothing to answer (state ${this.state})`);
    if (this.kind === 'cellular') this.#clccStat = 0;
    else this.#send('\r\nVCON\r\n');
    this.state = 'connected';
    this.emit('answered');
  }

  /** The called party is busy. */
  busy(): void {
    if (this.state !== 'dialling') throw new Error(`emulator: nothing to refuse (state ${this.state})`);
    this.state = 'idle';
    this.#send('\r\nBUSY\r\n');
  }

  /** The far end hangs up. */
  hangupRemote(): void {
    this.stopAudio();
    if (this.state === 'ringing') return this.stopRinging();
    if (this.kind === 'cellular') {
      this.state = 'idle';
      this.#send('\r\nNO CARRIER\r\n');
      return;
    }
    // A voice modem in the data state reports the loop current interruption in band.
    if (this.state === 'data') this.#write(Buffer.from([DLE, 'l'.charCodeAt(0)]));
    else if (this.state === 'connected' || this.state === 'dialling') this.#send('\r\nNO CARRIER\r\n');
  }

  /** Sends a 1 kHz tone as voice data, paced at 20 ms, while in the data state. */
  startAudio(): void {
    this.stopAudio();
    const pcm = new Int16Array(FRAME_SAMPLES);
    let phase = 0;
    this.#audioTimer = setInterval(() => {
      if (this.state !== 'data') return;
      for (let i = 0; i < FRAME_SAMPLES; i++) pcm[i] = Math.round(6000 * Math.sin((2 * Math.PI * 1000 * phase++) / 8000));
      const frame = new Uint8Array(160);
      encodeG711('PCMU', pcm, frame);
      this.#write(dleEncode(frame));
    }, 20);
  }

  stopAudio(): void {
    clearInterval(this.#audioTimer);
    this.#audioTimer = undefined;
  }

  /** Sends a DTMF digit event in the data state (the modem detected a digit). */
  sendDigitEvent(digit: string): void {
    this.#write(Buffer.from([DLE, digit.charCodeAt(0)]));
  }

  /** Writes arbitrary bytes to the driver (an unsolicited line, garbage). */
  sendRaw(text: string): void {
    this.#send(text);
  }

  // ---- the device ----

  /** Device unplugged: socat dies, both ptys vanish. */
  async unplug(): Promise<void> {
    this.stopAudio();
    this.stopRinging();
    const socat = this.#socat;
    this.#socat = undefined;
    const port = this.#port;
    this.#port = undefined;
    if (socat && isRunning(socat)) {
      socat.kill('SIGTERM');
      await waitExit(socat);
    }
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  /** Plugged (back) in: a fresh modem (echo on, idle) on the same device path. */
  async plug(): Promise<void> {
    const socat = track(
      spawn('socat', [`pty,raw,echo=0,link=${this.modemPath}`, `pty,raw,echo=0,link=${this.hostPath}`], { stdio: ['ignore', 'ignore', 'pipe'] }),
    );
    let stderr = '';
    socat.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    this.#socat = socat;
    const deadline = Date.now() + 5000;
    while (!(existsSync(this.modemPath) && existsSync(this.hostPath))) {
      if (!isRunning(socat)) throw new Error(`socat exited: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`socat did not create its ptys within 5 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    this.#echo = true;
    this.state = 'idle';
    this.#line = '';
    this.clearWritten();
    const port = new SerialPort({ path: this.modemPath, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on('data', (bytes: Buffer) => this.#input(bytes));
    port.on('error', () => undefined);
    this.#port = port;
  }

  async close(): Promise<void> {
    await this.unplug();
    rmSync(this.dir, { recursive: true, force: true });
  }

  // ---- what the driver sends ----

  #input(bytes: Buffer): void {
    this.#received.push(Buffer.from(bytes));
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.state === 'data') {
        this.#dataByte(b);
        continue;
      }
      if (this.state === 'dialling' && this.kind === 'voice-modem') {
        // Any character aborts dialling.
        this.state = 'idle';
        this.#send('\r\nNO CARRIER\r\n');
        continue;
      }
      const ch = String.fromCharCode(b);
      if (ch === '\r') {
        const command = this.#line.trim();
        this.#line = '';
        if (this.#echo) this.#send(`${command}\r`);
        if (command) this.#command(command);
      } else if (ch !== '\n') {
        this.#line += ch;
      }
    }
  }

  #dataByte(b: number): void {
    if (this.#dleHalf) {
      this.#dleHalf = false;
      if (b === DLE) return this.#audioByte(DLE);
      if (b === ETX) {
        // End of voice data from the driver: confirm as a modem does, back to command mode.
        this.state = 'connected';
        this.stopAudio();
        this.#write(Buffer.from([DLE, ETX]));
        this.#send('\r\nOK\r\n');
      }
      return;
    }
    if (b === DLE) this.#dleHalf = true;
    else this.#audioByte(b);
  }

  #audioByte(b: number): void {
    this.#rx.bytes++;
    this.#frame[this.#frameFill++] = b;
    if (this.#frameFill < 160) return;
    this.#frameFill = 0;
    this.#rx.frames++;
    decodeG711('PCMU', this.#frame, this.#pcm);
    let peak = 0;
    for (const s of this.#pcm) peak = Math.max(peak, Math.abs(s));
    if (peak > AUDIBLE_PEAK) this.#rx.audible++;
    this.#detector.push(this.#pcm);
  }

  #command(command: string): void {
    this.#commands.push(command);
    this.emit('command', command);
    const ok = (): void => this.#send('\r\nOK\r\n');
    const error = (): void => this.#send('\r\nERROR\r\n');
    const upper = command.toUpperCase();
    if (upper === 'ATZ') {
      this.#echo = true;
      return ok();
    }
    if (upper === 'ATE0') {
      this.#echo = false;
      return ok();
    }
    if (upper === 'ATH' || upper === 'ATH0') {
      const wasInCall = this.state !== 'idle';
      this.state = 'idle';
      this.#dialled = '';
      this.stopAudio();
      ok();
      if (wasInCall) this.emit('hungup');
      return;
    }
    if (upper === 'ATA') {
      if (this.state !== 'ringing') return this.#send('\r\nNO CARRIER\r\n');
      clearTimeout(this.#ringTimer);
      this.state = 'connected';
      this.emit('answered');
      return this.kind === 'cellular' ? ok() : this.#send('\r\nVCON\r\n');
    }
    if (this.kind === 'voice-modem') return this.#voiceCommand(upper, ok, error);
    return this.#cellularCommand(command, upper, ok, error);
  }

  #voiceCommand(upper: string, ok: () => void, error: () => void): void {
    if (upper === 'AT+FCLASS=8' || upper === 'AT#CID=1' || upper === 'AT+VSM=4,8000') return ok();
    if (upper === 'AT+VCID=1') return this.#vcid ? ok() : error();
    if (upper.startsWith('ATDT')) {
      this.#dialled = upper.slice(4);
      this.state = 'dialling';
      this.emit('dial', this.#dialled);
      return;
    }
    if (upper === 'AT+VTR') {
      if (this.state !== 'connected') return error();
      this.state = 'data';
      this.#frameFill = 0;
      return this.#send('\r\nCONNECT\r\n');
    }
    error();
  }

  #cellularCommand(command: string, upper: string, ok: () => void, error: () => void): void {
    if (upper === 'AT+CMEE=2' || upper === 'AT+CLIP=1') return ok();
    const dial = /^ATD([+0-9*#]+);$/.exec(command);
    if (dial) {
      this.#dialled = dial[1]!;
      this.state = 'dialling';
      this.#clccStat = 2;
      ok();
      setTimeout(() => {
        if (this.state === 'dialling') this.#clccStat = 3;
      }, 30);
      this.emit('dial', this.#dialled);
      return;
    }
    if (upper === 'AT+CLCC') {
      if (this.state === 'dialling' || this.state === 'connected') {
        const dir = this.#dialled ? 0 : 1;
        this.#send(`\r\n+CLCC: 1,${dir},${this.#clccStat},0,0,"${this.#dialled}",129\r\n`);
      }
      return ok();
    }
    const vts = /^AT\+VTS=("?)([0-9*#A-D])\1$/.exec(upper);
    if (vts) {
      if (this.state !== 'connected') return this.#send('\r\n+CME ERROR: operation not allowed\r\n');
      this.#digits += vts[2];
      return ok();
    }
    error();
  }

  #clip(): string {
    const c = this.#callerId;
    if (c.withheld) return '+CLIP: "",128,"",,"",1';
    return `+CLIP: "${c.number ?? ''}",129,"",,"${c.name ?? ''}",0`;
  }

  #vcidBlock(): string {
    const c = this.#callerId;
    const number = c.withheld ? 'P' : (c.number ?? 'O');
    const name = c.withheld ? 'P' : (c.name ?? 'O');
    return `\r\nDATE = 1122\r\nTIME = 0930\r\nNMBR = ${number}\r\nNAME = ${name}\r\n`;
  }

  #send(text: string): void {
    this.#write(Buffer.from(text, 'latin1'));
  }

  #write(bytes: Buffer): void {
    this.#port?.write(bytes);
  }
}
