// The retrieval IVR as a pure state machine: events in (start, a key, "the prompt
// ended", "no key in time", the answer to something it asked for), actions out
// (play these prompts, wait for a key, check this PIN, load the messages, move or
// delete one, record a greeting, hang up). It never touches a socket, a file or a
// clock of its own, so every menu path is a unit test; ivr/driver.ts runs it over
// an RtpSession. Keys (docs/voicemail.md):
//
//   main menu     1 new messages   2 old   3 saved   0 mailbox options
//                 * repeat menu    # end
//   a message     5 replay   6 next   4 previous   7 delete   9 save
//                 3 date, time and caller   # skip (stays new)   * main menu   0 help
//   options       1 unavailable greeting   2 busy   3 name   4 temporary
//                 5 remove temporary greeting   6 change PIN   * back
//   after a take  1 keep   2 listen   3 record again   * cancel
//
// A new message becomes old when it has been played to its end or the listener
// moves on with 6; # skips it and it stays new.
import type { GreetingKind } from '../store/greetings.ts';
import { PIN_RE } from '../store/pins.ts';
import type { Folder } from '../store/types.ts';
import { sayCount, sayEnvelope, sayNumber } from '../prompts/speech.ts';

export interface MessageView {
  id: string;
  folder: Folder;
  caller: string;
  receivedAt: number;
  durationMs: number;
}

export type PlayItem = string | { message: string } | { tone: 'beep' } | { take: GreetingKind };

export type IvrAction =
  | { kind: 'play'; items: PlayItem[] }
  | { kind: 'wait'; ms: number }
  | { kind: 'verify-pin'; mailbox: string; pin: string }
  | { kind: 'load-messages'; mailbox: string }
  | { kind: 'move'; id: string; folder: 'Old' | 'Saved' }
  | { kind: 'delete'; id: string }
  | { kind: 'record-greeting'; greeting: GreetingKind }
  | { kind: 'keep-greeting'; greeting: GreetingKind }
  | { kind: 'discard-greeting'; greeting: GreetingKind }
  | { kind: 'remove-greeting'; greeting: GreetingKind }
  | { kind: 'set-pin'; pin: string }
  | { kind: 'hangup' };

export type IvrEvent =
  | { type: 'start' }
  | { type: 'digit'; digit: string }
  | { type: 'played' }
  | { type: 'timeout' }
  | { type: 'pin'; verdict: 'ok' | 'wrong' | 'locked' }
  | { type: 'messages'; messages: MessageView[] }
  | { type: 'recorded'; ok: boolean }
  | { type: 'greeting-removed'; existed: boolean };

export interface IvrOptions {
  /** Known mailbox (own mailbox by caller ID, or given by the dial plan); absent: ask for it. */
  mailbox?: string;
  pinAttempts: number;
  /** For "received today at…". */
  now: () => Date;
  /** How long to wait for a menu key, and between the keys of a PIN or number. */
  menuTimeoutMs?: number;
  digitTimeoutMs?: number;
}

type Mode = 'mailbox' | 'pin' | 'verifying' | 'loading' | 'main' | 'message' | 'options' | 'recording' | 'review' | 'new-pin' | 'confirm-pin' | 'busy' | 'closing';
/** What a prompt finishing leads to. */
type AfterPlay = 'wait' | 'hangup' | 'heard' | 'record' | 'advance' | 'main';

const GREETING_BY_KEY: Record<string, GreetingKind> = { '1': 'unavailable', '2': 'busy', '3': 'name', '4': 'temporary' };
const MAX_REPEATS = 3;

export class RetrievalMachine {
  readonly options: IvrOptions;
  #mode: Mode = 'mailbox';
  #after: AfterPlay = 'wait';
  #mailbox: string | undefined;
  readonly #askMailbox: boolean;
  #entry = '';
  #failures = 0;
  #repeats = 0;
  #messages: MessageView[] = [];
  #list: string[] = [];
  #index = 0;
  #greeting: GreetingKind = 'unavailable';
  #newPin = '';

  constructor(options: IvrOptions) {
    this.options = options;
    this.#mailbox = options.mailbox;
    this.#askMailbox = options.mailbox === undefined;
  }

  get mode(): string {
    return this.#mode;
  }

  get mailbox(): string | undefined {
    return this.#mailbox;
  }

  /** Messages as the machine believes them to be (after its own moves and deletes). */
  get messages(): readonly MessageView[] {
    return this.#messages;
  }

  handle(event: IvrEvent): IvrAction[] {
    switch (event.type) {
      case 'start':
        return this.#mailbox === undefined ? this.#ask('mailbox', ['enter-mailbox']) : this.#ask('pin', ['enter-pin']);
      case 'played':
        return this.#played();
      case 'timeout':
        return this.#timeout();
      case 'digit':
        return this.#digit(event.digit);
      case 'pin':
        return this.#pinVerdict(event.verdict);
      case 'messages':
        this.#messages = [...event.messages].sort((a, b) => a.receivedAt - b.receivedAt);
        return this.#mainMenu(true);
      case 'recorded':
        if (!event.ok) return this.#say('options', ['message-too-short', 'options-menu']);
        return this.#say('review', ['review-menu']);
      case 'greeting-removed':
        return this.#say('options', [event.existed ? 'greeting-removed' : 'no-temporary-greeting', 'options-menu']);
    }
  }

  // ---- building blocks -------------------------------------------------------

  #say(mode: Mode, items: PlayItem[], after: AfterPlay = 'wait'): IvrAction[] {
    this.#mode = mode;
    this.#after = after;
    return [{ kind: 'play', items }];
  }

  #ask(mode: Mode, items: PlayItem[]): IvrAction[] {
    this.#entry = '';
    this.#repeats = 0;
    return this.#say(mode, items);
  }

  #goodbye(items: PlayItem[] = ['goodbye']): IvrAction[] {
    return this.#say('closing', items, 'hangup');
  }

  #count(folder: Folder): number {
    return this.#messages.filter((m) => m.folder === folder).length;
  }

  #intro(): PlayItem[] {
    const saved = this.#count('Saved');
    return [
      'you-have',
      ...sayCount(this.#count('INBOX'), 'new-message', 'new-messages'),
      'and',
      ...sayCount(this.#count('Old'), 'old-message', 'old-messages'),
      ...(saved > 0 ? ['and', ...sayCount(saved, 'saved-message', 'saved-messages')] : []),
    ];
  }

  #mainMenu(withIntro: boolean, before: PlayItem[] = []): IvrAction[] {
    this.#repeats = 0;
    return this.#say('main', [...before, ...(withIntro ? this.#intro() : []), 'main-menu']);
  }

  #current(): MessageView | undefined {
    const id = this.#list[this.#index];
    return this.#messages.find((m) => m.id === id);
  }

  #playCurrent(): IvrAction[] {
    const current = this.#current();
    if (current === undefined) return this.#mainMenu(true, ['no-more-messages']);
    const last = this.#list.length - 1;
    const label = this.#index === 0 ? ['first-message'] : this.#index === last ? ['last-message'] : ['message-number', ...sayNumber(this.#index + 1)];
    this.#repeats = 0;
    return this.#say('message', [...label, { message: current.id }], 'heard');
  }

  #openFolder(folder: Folder): IvrAction[] {
    this.#list = this.#messages.filter((m) => m.folder === folder).map((m) => m.id);
    this.#index = 0;
    if (this.#list.length === 0) return this.#say('main', ['no-messages-in-folder', 'main-menu']);
    return this.#playCurrent();
  }

  /** INBOX → Old once a message has been heard. */
  #markHeard(): IvrAction[] {
    const current = this.#current();
    if (current === undefined || current.folder !== 'INBOX') return [];
    current.folder = 'Old';
    return [{ kind: 'move', id: current.id, folder: 'Old' }];
  }

  #next(): IvrAction[] {
    this.#index++;
    return this.#playCurrent();
  }

  // ---- events ----------------------------------------------------------------

  #played(): IvrAction[] {
    switch (this.#after) {
      case 'wait':
        return [{ kind: 'wait', ms: this.#isEntry() ? (this.options.digitTimeoutMs ?? 6000) : (this.options.menuTimeoutMs ?? 6000) }];
      case 'hangup':
        return [{ kind: 'hangup' }];
      case 'heard': {
        const moves = this.#markHeard();
        return [...moves, ...this.#say('message', ['message-menu'])];
      }
      case 'record':
        this.#mode = 'recording';
        return [{ kind: 'record-greeting', greeting: this.#greeting }];
      case 'advance':
        return this.#playCurrent();
      case 'main':
        return this.#mainMenu(true);
    }
  }

  #isEntry(): boolean {
    return this.#mode === 'mailbox' || this.#mode === 'pin' || this.#mode === 'new-pin' || this.#mode === 'confirm-pin';
  }

  #timeout(): IvrAction[] {
    if (this.#isEntry() && this.#entry !== '') return this.#submit();
    if (++this.#repeats >= MAX_REPEATS) return this.#goodbye();
    const repeats = this.#repeats;
    let actions: IvrAction[];
    switch (this.#mode) {
      case 'mailbox':
        actions = this.#say('mailbox', ['enter-mailbox']);
        break;
      case 'pin':
        actions = this.#say('pin', ['enter-pin']);
        break;
      case 'new-pin':
        actions = this.#say('new-pin', ['enter-new-pin']);
        break;
      case 'confirm-pin':
        actions = this.#say('confirm-pin', ['reenter-pin']);
        break;
      case 'main':
        actions = this.#say('main', ['main-menu']);
        break;
      case 'message':
        actions = this.#say('message', ['message-menu']);
        break;
      case 'options':
        actions = this.#say('options', ['options-menu']);
        break;
      case 'review':
        actions = this.#say('review', ['review-menu']);
        break;
      default:
        return [];
    }
    this.#repeats = repeats;
    return actions;
  }

  #digit(digit: string): IvrAction[] {
    if (this.#isEntry()) {
      if (digit === '#') return this.#submit();
      if (digit === '*') {
        this.#entry = '';
        return [{ kind: 'wait', ms: this.options.digitTimeoutMs ?? 6000 }];
      }
      if (this.#entry.length < 15) this.#entry += digit;
      return [{ kind: 'wait', ms: this.options.digitTimeoutMs ?? 6000 }];
    }
    switch (this.#mode) {
      case 'main':
        return this.#mainKey(digit);
      case 'message':
        return this.#messageKey(digit);
      case 'options':
        return this.#optionsKey(digit);
      case 'review':
        return this.#reviewKey(digit);
      default:
        return []; // keys while we are checking, loading, recording or closing
    }
  }

  #submit(): IvrAction[] {
    const entry = this.#entry;
    this.#entry = '';
    switch (this.#mode) {
      case 'mailbox':
        if (entry === '') return this.#say('mailbox', ['enter-mailbox']);
        this.#mailbox = entry;
        return this.#ask('pin', ['enter-pin']);
      case 'pin':
        this.#mode = 'verifying';
        return [{ kind: 'verify-pin', mailbox: this.#mailbox as string, pin: entry }];
      case 'new-pin':
        if (!PIN_RE.test(entry)) return this.#say('options', ['pin-invalid', 'options-menu']);
        this.#newPin = entry;
        return this.#ask('confirm-pin', ['reenter-pin']);
      case 'confirm-pin':
        if (entry !== this.#newPin) return this.#say('options', ['pins-differ', 'options-menu']);
        return [{ kind: 'set-pin', pin: entry }, ...this.#say('options', ['pin-changed', 'options-menu'])];
      default:
        return [];
    }
  }

  #pinVerdict(verdict: 'ok' | 'wrong' | 'locked'): IvrAction[] {
    if (verdict === 'ok') {
      this.#mode = 'loading';
      return [{ kind: 'load-messages', mailbox: this.#mailbox as string }];
    }
    if (verdict === 'locked') return this.#goodbye(['mailbox-locked', 'goodbye']);
    if (++this.#failures >= this.options.pinAttempts) return this.#goodbye(['login-incorrect', 'goodbye']);
    if (this.#askMailbox) {
      this.#mailbox = undefined;
      return this.#ask('mailbox', ['login-incorrect', 'enter-mailbox']);
    }
    return this.#ask('pin', ['login-incorrect', 'enter-pin']);
  }

  #mainKey(digit: string): IvrAction[] {
    switch (digit) {
      case '1':
        return this.#openFolder('INBOX');
      case '2':
        return this.#openFolder('Old');
      case '3':
        return this.#openFolder('Saved');
      case '0':
        return this.#say('options', ['options-menu']);
      case '*':
        return this.#mainMenu(true);
      case '#':
        return this.#goodbye();
      default:
        return this.#say('main', ['invalid-choice', 'main-menu']);
    }
  }

  #messageKey(digit: string): IvrAction[] {
    const current = this.#current();
    if (current === undefined) return this.#mainMenu(true);
    switch (digit) {
      case '5':
        return this.#playCurrent();
      case '6':
        return [...this.#markHeard(), ...this.#next()];
      case '#':
        return this.#next();
      case '4':
        if (this.#index > 0) this.#index--;
        return this.#playCurrent();
      case '7':
        this.#messages = this.#messages.filter((m) => m.id !== current.id);
        this.#list.splice(this.#index, 1);
        return [{ kind: 'delete', id: current.id }, ...this.#say('message', ['message-deleted'], 'advance')];
      case '9':
        current.folder = 'Saved';
        this.#index++;
        return [{ kind: 'move', id: current.id, folder: 'Saved' }, ...this.#say('message', ['message-saved-folder'], 'advance')];
      case '3':
        return this.#say('message', [...sayEnvelope(new Date(current.receivedAt), current.caller, this.options.now()), 'message-menu']);
      case '*':
        return this.#mainMenu(true);
      case '0':
        return this.#say('message', ['message-menu']);
      default:
        return this.#say('message', ['invalid-choice', 'message-menu']);
    }
  }

  #optionsKey(digit: string): IvrAction[] {
    const greeting = GREETING_BY_KEY[digit];
    if (greeting !== undefined) {
      this.#greeting = greeting;
      return this.#say('options', ['record-after-tone', { tone: 'beep' }], 'record');
    }
    switch (digit) {
      case '5':
        this.#mode = 'busy';
        return [{ kind: 'remove-greeting', greeting: 'temporary' }];
      case '6':
        return this.#ask('new-pin', ['enter-new-pin']);
      case '*':
        return this.#mainMenu(true);
      default:
        return this.#say('options', ['invalid-choice', 'options-menu']);
    }
  }

  #reviewKey(digit: string): IvrAction[] {
    switch (digit) {
      case '1':
        return [{ kind: 'keep-greeting', greeting: this.#greeting }, ...this.#say('options', ['greeting-saved', 'options-menu'])];
      case '2':
        return this.#say('review', [{ take: this.#greeting }, 'review-menu']);
      case '3':
        return this.#say('review', ['record-after-tone', { tone: 'beep' }], 'record');
      case '*':
        return [{ kind: 'discard-greeting', greeting: this.#greeting }, ...this.#say('options', ['cancelled', 'options-menu'])];
      default:
        return this.#say('review', ['invalid-choice', 'review-menu']);
    }
  }
}
