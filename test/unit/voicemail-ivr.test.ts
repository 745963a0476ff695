// The retrieval IVR state machine, key by key: what the caller hears and what
// happens to the mailbox for each menu path. Pure: no sockets, files or clocks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RetrievalMachine, type IvrAction, type MessageView } from '../../agent/voicemail/ivr/retrieval-machine.ts';

const now = new Date(2026, 10, 22, 15, 0);
const messages = (): MessageView[] => [
  { id: 'm1', folder: 'INBOX', caller: '1002', receivedAt: new Date(2026, 10, 22, 10, 5).getTime(), durationMs: 3000 },
  { id: 'm2', folder: 'INBOX', caller: '1003', receivedAt: new Date(2026, 10, 22, 11, 0).getTime(), durationMs: 3000 },
  { id: 'm3', folder: 'Old', caller: '5551234', receivedAt: new Date(2026, 10, 20, 9, 30).getTime(), durationMs: 3000 },
];

function played(actions: IvrAction[]): unknown[] {
  return actions.filter((a) => a.kind === 'play').flatMap((a) => (a.kind === 'play' ? a.items : []));
}

function kinds(actions: IvrAction[]): string[] {
  return actions.map((a) => a.kind);
}

/** Logged in to 1001 with three messages, at the main menu. */
function loggedIn(): RetrievalMachine {
  const m = new RetrievalMachine({ mailbox: '1001', pinAttempts: 3, now: () => now });
  m.handle({ type: 'start' });
  for (const d of '1234') m.handle({ type: 'digit', digit: d });
  assert.deepEqual(m.handle({ type: 'digit', digit: '#' }), [{ kind: 'verify-pin', mailbox: '1001', pin: '1234' }]);
  assert.deepEqual(m.handle({ type: 'pin', verdict: 'ok' }), [{ kind: 'load-messages', mailbox: '1001' }]);
  const intro = m.handle({ type: 'messages', messages: messages() });
  assert.deepEqual(played(intro), ['you-have', 'num-2', 'new-messages', 'and', 'num-1', 'old-message', 'main-menu']);
  return m;
}

test('own mailbox: asks only for the PIN; any mailbox: asks for the mailbox first', () => {
  const own = new RetrievalMachine({ mailbox: '1001', pinAttempts: 3, now: () => now });
  assert.deepEqual(played(own.handle({ type: 'start' })), ['enter-pin']);
  const any = new RetrievalMachine({ pinAttempts: 3, now: () => now });
  assert.deepEqual(played(any.handle({ type: 'start' })), ['enter-mailbox']);
  for (const d of '1002#') any.handle({ type: 'digit', digit: d });
  assert.equal(any.mailbox, '1002');
  assert.equal(any.mode, 'pin');
  for (const d of '9999') any.handle({ type: 'digit', digit: d });
  // The PIN ends by itself when no key comes within the digit timeout.
  assert.deepEqual(any.handle({ type: 'timeout' }), [{ kind: 'verify-pin', mailbox: '1002', pin: '9999' }]);
});

test('wrong PINs: asked again, then goodbye after pinAttempts; a locked mailbox ends the call', () => {
  const m = new RetrievalMachine({ mailbox: '1001', pinAttempts: 3, now: () => now });
  m.handle({ type: 'start' });
  for (let i = 1; i <= 2; i++) {
    for (const d of '0000#') m.handle({ type: 'digit', digit: d });
    assert.deepEqual(played(m.handle({ type: 'pin', verdict: 'wrong' })), ['login-incorrect', 'enter-pin']);
  }
  for (const d of '0000#') m.handle({ type: 'digit', digit: d });
  assert.deepEqual(played(m.handle({ type: 'pin', verdict: 'wrong' })), ['login-incorrect', 'goodbye']);
  assert.deepEqual(m.handle({ type: 'played' }), [{ kind: 'hangup' }]);

  const locked = new RetrievalMachine({ mailbox: '1001', pinAttempts: 3, now: () => now });
  locked.handle({ type: 'start' });
  for (const d of '1234#') locked.handle({ type: 'digit', digit: d });
  assert.deepEqual(played(locked.handle({ type: 'pin', verdict: 'locked' })), ['mailbox-locked', 'goodbye']);
  assert.deepEqual(locked.handle({ type: 'played' }), [{ kind: 'hangup' }]);
});

test('any-mailbox login: a wrong PIN asks for the mailbox again', () => {
  const m = new RetrievalMachine({ pinAttempts: 3, now: () => now });
  m.handle({ type: 'start' });
  for (const d of '1002#1111#') m.handle({ type: 'digit', digit: d });
  assert.deepEqual(played(m.handle({ type: 'pin', verdict: 'wrong' })), ['login-incorrect', 'enter-mailbox']);
  assert.equal(m.mailbox, undefined);
});

test('new messages play in order; one heard to the end becomes old', () => {
  const m = loggedIn();
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '1' })), ['first-message', { message: 'm1' }]);
  const after = m.handle({ type: 'played' });
  assert.deepEqual(after[0], { kind: 'move', id: 'm1', folder: 'Old' });
  assert.deepEqual(played(after), ['message-menu']);
  assert.equal(m.messages.find((x) => x.id === 'm1')?.folder, 'Old');
  assert.deepEqual(m.handle({ type: 'played' }), [{ kind: 'wait', ms: 6000 }]);
});

test('skip (#) leaves a message new; next (6) marks it heard; previous (4) goes back; replay (5)', () => {
  const m = loggedIn();
  m.handle({ type: 'digit', digit: '1' });
  // Pressed while m1 plays: skipped, still new.
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '#' })), ['last-message', { message: 'm2' }]);
  assert.equal(m.messages.find((x) => x.id === 'm1')?.folder, 'INBOX');
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '4' })), ['first-message', { message: 'm1' }]);
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '5' })), ['first-message', { message: 'm1' }]);
  const next = m.handle({ type: 'digit', digit: '6' });
  assert.deepEqual(next[0], { kind: 'move', id: 'm1', folder: 'Old' });
  assert.deepEqual(played(next), ['last-message', { message: 'm2' }]);
  // Past the last one: back to the main menu with the new counts.
  m.handle({ type: 'played' });
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '6' })), ['no-more-messages', 'you-have', 'no', 'new-messages', 'and', 'num-3', 'old-messages', 'main-menu']);
});

test('delete (7) removes the message and plays the next; save (9) moves it to Saved', () => {
  const m = loggedIn();
  m.handle({ type: 'digit', digit: '1' });
  const del = m.handle({ type: 'digit', digit: '7' });
  assert.deepEqual(kinds(del), ['delete', 'play']);
  assert.deepEqual(del[0], { kind: 'delete', id: 'm1' });
  assert.deepEqual(played(del), ['message-deleted']);
  assert.deepEqual(played(m.handle({ type: 'played' })), ['first-message', { message: 'm2' }]);
  const save = m.handle({ type: 'digit', digit: '9' });
  assert.deepEqual(save[0], { kind: 'move', id: 'm2', folder: 'Saved' });
  assert.deepEqual(played(m.handle({ type: 'played' })), ['no-more-messages', 'you-have', 'no', 'new-messages', 'and', 'num-1', 'old-message', 'and', 'num-1', 'saved-message', 'main-menu']);
  assert.deepEqual(
    m.messages.map((x) => [x.id, x.folder]).sort(),
    [
      ['m2', 'Saved'],
      ['m3', 'Old'],
    ],
  );
});

test('envelope (3): day, time and caller spoken by concatenation', () => {
  const m = loggedIn();
  m.handle({ type: 'digit', digit: '2' }); // old messages: m3, two days ago
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '3' })), [
    'received', 'day-5', 'month-11', 'ord-20', 'at', 'num-9', 'num-30', 'am',
    'from', 'num-5', 'num-5', 'num-5', 'num-1', 'num-2', 'num-3', 'num-4', 'message-menu',
  ]);
});

test('an empty folder says so and stays in the main menu; unknown keys say invalid', () => {
  const m = loggedIn();
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '3' })), ['no-messages-in-folder', 'main-menu']);
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '8' })), ['invalid-choice', 'main-menu']);
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '#' })), ['goodbye']);
  assert.deepEqual(m.handle({ type: 'played' }), [{ kind: 'hangup' }]);
});

test('no key at a menu: the menu is repeated, then goodbye', () => {
  const m = loggedIn();
  m.handle({ type: 'played' });
  assert.deepEqual(played(m.handle({ type: 'timeout' })), ['main-menu']);
  m.handle({ type: 'played' });
  assert.deepEqual(played(m.handle({ type: 'timeout' })), ['main-menu']);
  m.handle({ type: 'played' });
  assert.deepEqual(played(m.handle({ type: 'timeout' })), ['goodbye']);
});

test('record a greeting: tone, record, review, listen, keep', () => {
  const m = loggedIn();
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '0' })), ['options-menu']);
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '2' })), ['record-after-tone', { tone: 'beep' }]);
  assert.deepEqual(m.handle({ type: 'played' }), [{ kind: 'record-greeting', greeting: 'busy' }]);
  assert.deepEqual(played(m.handle({ type: 'recorded', ok: true })), ['review-menu']);
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '2' })), [{ take: 'busy' }, 'review-menu']);
  const keep = m.handle({ type: 'digit', digit: '1' });
  assert.deepEqual(keep[0], { kind: 'keep-greeting', greeting: 'busy' });
  assert.deepEqual(played(keep), ['greeting-saved', 'options-menu']);
  // Cancel discards the take; a recording with nothing in it is refused.
  m.handle({ type: 'digit', digit: '4' });
  m.handle({ type: 'played' });
  assert.deepEqual(played(m.handle({ type: 'recorded', ok: false })), ['message-too-short', 'options-menu']);
  m.handle({ type: 'digit', digit: '3' });
  m.handle({ type: 'played' });
  m.handle({ type: 'recorded', ok: true });
  assert.deepEqual(m.handle({ type: 'digit', digit: '*' })[0], { kind: 'discard-greeting', greeting: 'name' });
  assert.deepEqual(m.handle({ type: 'digit', digit: '5' }), [{ kind: 'remove-greeting', greeting: 'temporary' }]);
  assert.deepEqual(played(m.handle({ type: 'greeting-removed', existed: false })), ['no-temporary-greeting', 'options-menu']);
});

test('change PIN: entered twice; a mismatch or a bad PIN changes nothing', () => {
  const m = loggedIn();
  m.handle({ type: 'digit', digit: '0' });
  assert.deepEqual(played(m.handle({ type: 'digit', digit: '6' })), ['enter-new-pin']);
  for (const d of '4321#') m.handle({ type: 'digit', digit: d });
  assert.equal(m.mode, 'confirm-pin');
  for (const d of '4321') m.handle({ type: 'digit', digit: d });
  const done = m.handle({ type: 'digit', digit: '#' });
  assert.deepEqual(done[0], { kind: 'set-pin', pin: '4321' });
  assert.deepEqual(played(done), ['pin-changed', 'options-menu']);

  m.handle({ type: 'digit', digit: '6' });
  for (const d of '12#') m.handle({ type: 'digit', digit: d });
  assert.equal(m.mode, 'options');
  m.handle({ type: 'digit', digit: '6' });
  for (const d of '5555#5556#') m.handle({ type: 'digit', digit: d });
  assert.equal(m.mode, 'options');
});
