// Numbers, times and dates as prompt sequences, and the prompt script's format.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePromptScript, PromptScriptError, readPromptScript } from '../../agent/voicemail/prompts/script.ts';
import { sayCount, sayDay, sayDigits, sayEnvelope, sayNumber, sayOrdinal, sayTime } from '../../agent/voicemail/prompts/speech.ts';
import { messageSummaryBody, eventPackage } from '../../agent/voicemail/mwi/message-summary.ts';

test('cardinal numbers', () => {
  assert.deepEqual(sayNumber(0), ['num-0']);
  assert.deepEqual(sayNumber(13), ['num-13']);
  assert.deepEqual(sayNumber(40), ['num-40']);
  assert.deepEqual(sayNumber(241), ['num-2', 'hundred', 'num-40', 'num-1']);
  assert.deepEqual(sayNumber(1005), ['num-1', 'thousand', 'num-5']);
  assert.throws(() => sayNumber(-1), RangeError);
  assert.throws(() => sayNumber(1.5), RangeError);
});

test('ordinals, digits, counts', () => {
  assert.deepEqual(sayOrdinal(3), ['ord-3']);
  assert.deepEqual(sayOrdinal(21), ['num-20', 'ord-1']);
  assert.deepEqual(sayOrdinal(30), ['ord-30']);
  assert.throws(() => sayOrdinal(32), RangeError);
  assert.deepEqual(sayDigits('+1 (555) 0*#'), ['num-1', 'num-5', 'num-5', 'num-5', 'num-0', 'star', 'pound']);
  assert.deepEqual(sayCount(0, 'new-message', 'new-messages'), ['no', 'new-messages']);
  assert.deepEqual(sayCount(1, 'new-message', 'new-messages'), ['num-1', 'new-message']);
});

test('times and days', () => {
  assert.deepEqual(sayTime(new Date(2026, 0, 1, 0, 0)), ['num-12', 'oclock', 'am']);
  assert.deepEqual(sayTime(new Date(2026, 0, 1, 22, 5)), ['num-10', 'oh', 'num-5', 'pm']);
  assert.deepEqual(sayTime(new Date(2026, 0, 1, 12, 45)), ['num-12', 'num-40', 'num-5', 'pm']);
  const now = new Date(2026, 2, 4, 9, 0);
  assert.deepEqual(sayDay(new Date(2026, 2, 4, 1, 0), now), ['today']);
  assert.deepEqual(sayDay(new Date(2026, 2, 3, 23, 0), now), ['yesterday']);
  assert.deepEqual(sayDay(new Date(2026, 1, 23, 8, 0), now), [`day-${new Date(2026, 1, 23).getDay()}`, 'month-2', 'num-20', 'ord-3']);
  assert.deepEqual(sayEnvelope(new Date(2026, 2, 4, 8, 0), '', now), ['received', 'today', 'at', 'num-8', 'oclock', 'am', 'from', 'unknown-caller']);
});

test('every prompt the speech functions and menus name is in the checked-in script', () => {
  const script = readPromptScript();
  const needed = new Set<string>();
  for (let n = 0; n <= 9999; n += 7) sayNumber(n).forEach((id) => needed.add(id));
  for (let n = 0; n < 100; n++) sayNumber(n).forEach((id) => needed.add(id));
  for (let d = 1; d <= 31; d++) sayOrdinal(d).forEach((id) => needed.add(id));
  for (let m = 0; m < 12; m++) for (let h = 0; h < 24; h++) sayEnvelope(new Date(2026, m, 1 + h, h, h * 2), '0123456789*#', new Date(2027, 0, 1)).forEach((id) => needed.add(id));
  for (const id of needed) assert.ok(script.has(id), `prompt ${id} is missing from script-en.txt`);
});

test('the prompt script format: id = text; bad lines and duplicates are errors naming the line', () => {
  assert.deepEqual([...parsePromptScript('# c\n\na-b = Hello there\n')], [['a-b', 'Hello there']]);
  assert.throws(() => parsePromptScript('x\n'), (e: unknown) => e instanceof PromptScriptError && /:1: expected/.test(e.message));
  assert.throws(() => parsePromptScript('a = 1\na = 2\n'), /:2: prompt "a" is defined twice/);
});

test('RFC 3842 message-summary body', () => {
  assert.equal(messageSummaryBody('sip:1001@b.test', { newMessages: 2, oldMessages: 8 }), 'Messages-Waiting: yes\r\nMessage-Account: sip:1001@b.test\r\nVoice-Message: 2/8 (0/0)\r\n');
  assert.match(messageSummaryBody('sip:1001@b.test', { newMessages: 0, oldMessages: 1 }), /^Messages-Waiting: no\r\n/);
  assert.equal(eventPackage('Message-Summary ; id=3'), 'message-summary');
  assert.equal(eventPackage(undefined), undefined);
});
