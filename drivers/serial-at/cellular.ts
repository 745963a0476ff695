// A cellular module (GSM/UMTS/LTE), 3GPP TS 27.007 voice calls:
//   ATE0, AT+CMEE=2          no echo, verbose +CME ERROR texts
//   AT+CLIP=1                caller ID with every RING (+CLIP: "number",type,,,"name",validity)
// Inbound: RING (or +CRING: VOICE) and +CLIP; ATA → OK.
// Outbound: ATD<number>; → OK as soon as the module has the number; the call's
// progress is read with AT+CLCC (stat 2 dialling, 3 alerting, 0 active) every
// 250 ms until it is answered; BUSY, NO ANSWER, NO CARRIER end it.
// ATH hangs up. DTMF: AT+VTS=<digit>, one digit per command. The module's audio
// leaves on its own PCM/analog pins, so this line has no audio path here.

import { Q850 } from '../q850.ts';
import type { CallerId } from '../types.ts';
import type { AtChannel } from './at-channel.ts';
import { parseClip, splitAtParams } from './caller-id.ts';
import type { Dialect, DialectTimeouts, LineHooks } from './dialect.ts';

const POLL_MS = 250;

export class CellularDialect implements Dialect {
  readonly audio = false;
  readonly reportsAlerting = true;
  readonly #at: AtChannel;
  readonly #hooks: LineHooks;
  readonly #timeouts: DialectTimeouts;
  #rings = 0;
  #offered = false;
  #inCall = false;
  #alerted = false;
  #answered = false;
  #ended = false;
  #poll: NodeJS.Timeout | undefined;
  #ringTimer: NodeJS.Timeout | undefined;

  constructor(at: AtChannel, hooks: LineHooks, timeouts: DialectTimeouts) {
    this.#at = at;
    this.#hooks = hooks;
    this.#timeouts = timeouts;
  }

  async init(): Promise<void> {
    const t = { timeoutMs: this.#timeouts.commandMs };
    await this.#at.command('ATE0', t);
    await this.#at.command('AT+CMEE=2', t);
    await this.#at.command('AT+CLIP=1', t);
  }

  unsolicited(line: string): void {
    if (line === 'RING' || /^\+CRING:\s*VOICE/.test(line)) {
      if (this.#inCall) return;
      this.#rings++;
      this.#armRingWatch();
      if (!this.#offered && this.#rings >= 2) this.#offer({ presentation: 'unavailable' });
      return;
    }
    const callerId = parseClip(line);
    if (callerId) {
      if (!this.#inCall && !this.#offered) {
        this.#armRingWatch();
        this.#offer(callerId);
      }
      return;
    }
    const cause = line === 'BUSY' ? Q850.USER_BUSY : line === 'NO ANSWER' ? Q850.NO_ANSWER : line === 'NO CARRIER' ? Q850.NORMAL_CLEARING : undefined;
    if (cause !== undefined && (this.#inCall || this.#offered)) this.#end(cause, 'remote');
  }

  async dial(number: string): Promise<void> {
    this.#startCall();
    await this.#at.command(`ATD${number};`, { timeoutMs: this.#timeouts.commandMs, progress: true }).catch((err: unknown) => {
      this.#ended = true;
      throw err;
    });
    const deadline = Date.now() + this.#timeouts.dialMs;
    this.#poll = setInterval(() => void this.#pollCall(deadline), POLL_MS);
  }

  async answer(): Promise<void> {
    this.#startCall();
    await this.#at.command('ATA', { timeoutMs: this.#timeouts.commandMs, progress: true });
  }

  async hangup(): Promise<void> {
    this.#ended = true;
    this.#stopTimers();
    try {
      await this.#at.command('ATH', { timeoutMs: this.#timeouts.commandMs });
    } finally {
      this.#inCall = false;
      this.#offered = false;
      this.#rings = 0;
    }
  }

  async sendDigits(digits: string): Promise<void> {
    for (const d of digits) await this.#at.command(`AT+VTS=${d}`, { timeoutMs: this.#timeouts.commandMs });
  }

  writeFrame(): boolean {
    return false;
  }

  reset(): void {
    this.#stopTimers();
    this.#inCall = false;
    this.#offered = false;
    this.#rings = 0;
  }

  // ---- internals ----

  #startCall(): void {
    this.#inCall = true;
    this.#alerted = false;
    this.#answered = false;
    this.#ended = false;
    clearTimeout(this.#ringTimer);
  }

  async #pollCall(deadline: number): Promise<void> {
    if (this.#ended || this.#at.busy) return;
    if (Date.now() > deadline) {
      this.#end(Q850.NO_ANSWER, 'network');
      return;
    }
    let lines: string[];
    try {
      ({ lines } = await this.#at.command('AT+CLCC', { timeoutMs: this.#timeouts.commandMs, info: '+CLCC:' }));
    } catch {
      // ERROR or a timeout: ask again on the next tick; a lost device is the card's business.
      return;
    }
    if (this.#ended) return;
    // +CLCC: <id>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>]; dir 0 = mobile originated.
    const ours = lines.map((l) => splitAtParams(l.replace(/^\+CLCC:\s*/, ''))).find((p) => p[1] === '0' && p[3] === '0');
    if (!ours) {
      // The call is gone without a result code (some modules say nothing).
      this.#end(Q850.NORMAL_CLEARING, 'remote');
      return;
    }
    const stat = ours[2];
    if ((stat === '3' || stat === '0') && !this.#alerted) {
      this.#alerted = true;
      this.#hooks.alerting();
    }
    if (stat === '0' && !this.#answered) {
      this.#answered = true;
      clearInterval(this.#poll);
      this.#poll = undefined;
      this.#hooks.answered();
    }
  }

  #end(cause: number, by: 'remote' | 'network'): void {
    if (this.#ended && this.#inCall) return;
    this.#ended = true;
    this.#stopTimers();
    const wasOffered = this.#offered && !this.#inCall;
    this.#offered = false;
    this.#rings = 0;
    if (this.#inCall || wasOffered) this.#hooks.ended(cause, by);
  }

  #offer(callerId: CallerId): void {
    this.#offered = true;
    this.#hooks.incoming(callerId);
  }

  #armRingWatch(): void {
    clearTimeout(this.#ringTimer);
    this.#ringTimer = setTimeout(() => {
      if (this.#offered && !this.#inCall) this.#end(Q850.NORMAL_CLEARING, 'remote');
      this.#rings = 0;
    }, this.#timeouts.ringGapMs);
  }

  #stopTimers(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
    clearTimeout(this.#ringTimer);
    this.#ringTimer = undefined;
  }
}
