// An analog line (FXO) through a voice modem, ITU-T V.253 voice mode:
//   ATZ, ATE0                reset, no echo
//   AT+FCLASS=8              voice mode
//   AT+VCID=1                formatted caller ID (AT#CID=1 on modems without +VCID)
//   AT+VSM=4,8000            G.711 µ-law at 8 kHz (CX93001-class compression id 4)
// Inbound: RING, the caller ID block (DATE/TIME/NMBR/NAME), RING...; ATA → VCON.
// Outbound: ATDT<number> → VCON when the modem hears the far end pick up (or BUSY,
// NO ANSWER, NO CARRIER, NO DIALTONE). Any byte sent while dialling aborts it.
// Audio: AT+VTR → CONNECT starts full-duplex voice data, DLE-shielded both ways;
// we end it with DLE ETX (the modem answers DLE ETX, then OK). In the data state the
// modem reports DTMF digits and line events as DLE codes: `l` loop current
// interruption (the far end hung up), `b` busy tone, `d` dial tone — each means the
// call is over. Digits we send are generated in band (a modem cannot run AT+VTS in
// the data state). ATH puts the line back on hook.

import { dtmfTone } from '../../agent/media/tone-generator.ts';
import { encodeG711, FRAME_SAMPLES } from '../../agent/media/g711.ts';
import { Q850 } from '../q850.ts';
import { DTMF_DIGITS, FRAME_BYTES, FRAME_MS } from '../types.ts';
import { AtCommandError, type AtChannel } from './at-channel.ts';
import { VoiceCallerIdBlock } from './caller-id.ts';
import { DleDecoder, dleCode, dleEncode, ETX } from './dle.ts';
import { causeForResult, type Dialect, type DialectTimeouts, type LineHooks } from './dialect.ts';

const HANGUP_EVENTS = new Set(['l', 'b', 'd']);
const DIGIT_EVENT = /^[0-9*#A-D]$/;

/** One DTMF digit as µ-law frames: 100 ms of tone, 60 ms of silence. */
function digitFrames(digit: string): Uint8Array[] {
  const tone = dtmfTone(digit, 100);
  const pcm = new Int16Array(FRAME_SAMPLES);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 8; i++) {
    if (!tone.read(pcm)) pcm.fill(0);
    const frame = new Uint8Array(FRAME_BYTES);
    encodeG711('PCMU', pcm, frame);
    frames.push(frame);
  }
  return frames;
}

export class VoiceModemDialect implements Dialect {
  readonly audio = true;
  readonly reportsAlerting = false;
  readonly #at: AtChannel;
  readonly #hooks: LineHooks;
  readonly #timeouts: DialectTimeouts;
  readonly #callerId = new VoiceCallerIdBlock();
  #rings = 0;
  #offered = false;
  #ringTimer: NodeJS.Timeout | undefined;
  #dialling = false;
  #aborting = false;
  #inCall = false;
  #ended = false;
  #digitQueue: Uint8Array[] = [];
  #digitTimer: NodeJS.Timeout | undefined;
  #digitsDone: (() => void)[] = [];

  constructor(at: AtChannel, hooks: LineHooks, timeouts: DialectTimeouts) {
    this.#at = at;
    this.#hooks = hooks;
    this.#timeouts = timeouts;
  }

  async init(): Promise<void> {
    const t = { timeoutMs: this.#timeouts.commandMs };
    await this.#at.command('ATZ', t);
    await this.#at.command('ATE0', t);
    await this.#at.command('AT+FCLASS=8', t);
    try {
      await this.#at.command('AT+VCID=1', t);
    } catch (err) {
      if (!(err instanceof AtCommandError)) throw err;
      await this.#at.command('AT#CID=1', t); // Rockwell-family modems
    }
    await this.#at.command('AT+VSM=4,8000', t);
  }

  unsolicited(line: string): void {
    if (this.#inCall) return;
    if (line === 'RING') {
      this.#rings++;
      this.#armRingWatch();
      if (!this.#offered && (this.#callerId.seen || this.#rings >= 2)) this.#offer();
      return;
    }
    if (this.#callerId.take(line) && this.#callerId.hasName && !this.#offered) this.#offer();
  }

  async dial(number: string): Promise<void> {
    this.#startCall();
    this.#dialling = true;
    let sent!: () => void;
    const whenSent = new Promise<void>((resolve) => (sent = resolve));
    const dialled = this.#at.command(`ATDT${number}`, { timeoutMs: this.#timeouts.dialMs, success: ['VCON'], progress: true, onSent: () => sent() });
    dialled.then(
      async () => {
        this.#dialling = false;
        if (this.#ended) return;
        try {
          await this.#startAudio();
          this.#hooks.answered();
        } catch (err) {
          this.#lineFailed(err);
        }
      },
      (err: unknown) => {
        this.#dialling = false;
        if (this.#aborting || this.#ended) return;
        this.#lineFailed(err);
      },
    );
    // A command refused before it was written (the device went away) must not leave us waiting.
    await Promise.race([whenSent, dialled.then(() => undefined)]);
    // No reply comes until the far end answers: the number is dialled once the device has it.
    await this.#at.drained();
  }

  async answer(): Promise<void> {
    this.#startCall();
    await this.#at.command('ATA', { timeoutMs: this.#timeouts.commandMs, success: ['VCON'], progress: true });
    await this.#startAudio();
  }

  async hangup(): Promise<void> {
    this.#ended = true;
    this.#stopRingWatch();
    this.#stopDigits();
    const t = { timeoutMs: this.#timeouts.commandMs };
    try {
      if (this.#dialling) {
        this.#aborting = true;
        this.#at.writeRaw(Buffer.from('\r')); // any character aborts dialling (V.250 §6.3.1)
        // The modem answers the abort with NO CARRIER; if it says nothing, ATH below still goes after the dial's timeout.
        const deadline = Date.now() + this.#timeouts.commandMs;
        while (this.#dialling && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      }
      if (this.#at.inData) {
        await this.#at.command('<DLE><ETX>', { ...t, raw: dleCode(ETX), success: ['OK', 'VCON'] });
      } else if (this.#offered && !this.#inCall) {
        // An analog line rejects a ringing call by picking up and hanging up again.
        await this.#at.command('ATA', { ...t, success: ['VCON'], progress: true }).catch(() => undefined);
      }
      await this.#at.command('ATH', t);
    } finally {
      this.#inCall = false;
      this.#offered = false;
      this.#rings = 0;
      this.#aborting = false;
      this.#callerId.reset();
    }
  }

  async sendDigits(digits: string): Promise<void> {
    if (!this.#at.inData || !DTMF_DIGITS.test(digits)) return;
    for (const d of digits) this.#digitQueue.push(...digitFrames(d));
    this.#digitTimer ??= setInterval(() => this.#playDigit(), FRAME_MS);
    await new Promise<void>((resolve) => this.#digitsDone.push(resolve));
  }

  writeFrame(frame: Uint8Array): boolean {
    if (!this.#at.inData || this.#ended) return false;
    // In-band digits own the line while they play.
    if (this.#digitQueue.length > 0) return true;
    this.#at.writeRaw(dleEncode(frame));
    return true;
  }

  reset(): void {
    this.#stopRingWatch();
    this.#stopDigits();
    this.#inCall = false;
    this.#offered = false;
    this.#dialling = false;
    this.#rings = 0;
    this.#callerId.reset();
  }

  // ---- internals ----

  #startCall(): void {
    this.#inCall = true;
    this.#ended = false;
    this.#stopRingWatch();
  }

  async #startAudio(): Promise<void> {
    const decoder = new DleDecoder(
      (frame) => this.#hooks.frame(frame),
      (code) => this.#event(code),
    );
    await this.#at.command('AT+VTR', { timeoutMs: this.#timeouts.commandMs, success: ['CONNECT'], data: (bytes) => decoder.feed(bytes) });
  }

  #event(code: string): void {
    if (DIGIT_EVENT.test(code)) this.#hooks.digits(code);
    else if (HANGUP_EVENTS.has(code) && !this.#ended) {
      this.#ended = true;
      this.#hooks.ended(Q850.NORMAL_CLEARING, 'remote');
    }
  }

  #lineFailed(err: unknown): void {
    this.#ended = true;
    if (err instanceof AtCommandError) this.#hooks.ended(causeForResult(err.final), 'remote');
    else this.#hooks.ended(Q850.RECOVERY_ON_TIMER_EXPIRY, 'network');
  }

  #offer(): void {
    this.#offered = true;
    this.#hooks.incoming(this.#callerId.callerId());
  }

  #armRingWatch(): void {
    this.#stopRingWatch();
    this.#ringTimer = setTimeout(() => {
      // The rings stopped before anyone answered: the caller gave up.
      const offered = this.#offered;
      this.#offered = false;
      this.#rings = 0;
      this.#callerId.reset();
      if (offered && !this.#inCall) this.#hooks.ended(Q850.NORMAL_CLEARING, 'remote');
    }, this.#timeouts.ringGapMs);
  }

  #stopRingWatch(): void {
    clearTimeout(this.#ringTimer);
    this.#ringTimer = undefined;
  }

  #playDigit(): void {
    const frame = this.#digitQueue.shift();
    if (frame && this.#at.inData) this.#at.writeRaw(dleEncode(frame));
    if (this.#digitQueue.length === 0) this.#stopDigits();
  }

  #stopDigits(): void {
    clearInterval(this.#digitTimer);
    this.#digitTimer = undefined;
    this.#digitQueue = [];
    for (const done of this.#digitsDone.splice(0)) done();
  }
}
