// The mailbox IVR over real RTP with RFC 4733 keys: listen (the caller hears the
// stored message itself), save, delete, skip; own and any mailbox; PIN lockout;
// change PIN; record a greeting. What is checked is what the owner would notice:
// the audio heard and the mailbox afterwards.
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PcmSource } from '../../agent/media/audio-source.ts';
import { readWavFile, writeWavFile } from '../../agent/media/wav.ts';
import type { VoicemailHarness } from '../helpers/voicemail.ts';
import { afterBeep, bestCorrelation, listen, mailbox, startVoicemail, trimmedSpeech } from '../helpers/voicemail.ts';

async function storeMessage(h: VoicemailHarness, box: string, caller: string, samples: Int16Array): Promise<string> {
  const pending = await h.vm.store.beginDeposit({ mailbox: box, caller, reason: 'no-answer' });
  const written = await writeWavFile(pending.file, samples, { encoding: 'ulaw' });
  await h.vm.store.commitDeposit(pending.id, written.durationMs);
  return pending.id;
}

test('listen, save, delete: the owner hears each message and the mailbox ends as the keys said', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox() } });
  const a = await trimmedSpeech('Message A. The delivery arrives on Tuesday morning.');
  const b = await trimmedSpeech('Message B. Lunch is moved to one o clock.');
  const idA = await storeMessage(h, '1001', '1002', a);
  await sleep(5); // ids and times sort A before B
  const idB = await storeMessage(h, '1001', '1003', b);
  const fileA = (await h.vm.store.get(idA))!.file;

  const { agent, phone } = await h.call();
  const session = h.vm.retrieve(agent, { callerExtension: '1001' });
  await sleep(300);
  await phone.sendDigits('1234#'); // barges into "enter your PIN"
  await sleep(800);
  const heard = listen(phone);
  await phone.sendDigits('1'); // new messages: "first message", A
  await sleep(1500 + (a.length / 8));
  heard.stop();
  const first = bestCorrelation(a, heard.samples(), 16000);
  assert.ok(first.correlation > 0.9, `the owner heard message A (correlation ${first.correlation.toFixed(3)})`);
  assert.equal((await h.vm.store.get(idA))?.folder, 'Old', 'heard to the end: old');

  const heardB = listen(phone);
  await phone.sendDigits('6'); // next: "last message", B
  await sleep(1000);
  await phone.sendDigits('9'); // save B while it plays
  heardB.stop();
  await sleep(2500); // "message saved", "no more messages", counts, main menu
  assert.equal((await h.vm.store.get(idB))?.folder, 'Saved');

  await phone.sendDigits('2'); // old messages: A
  await sleep(600);
  await phone.sendDigits('7'); // delete A
  await sleep(1500);
  await phone.sendDigits('#'); // (main menu) end
  const result = await session;
  assert.deepEqual(result, { endedBy: 'ivr', loggedIn: true, mailbox: '1001' });
  assert.equal(await h.vm.store.get(idA), undefined);
  await assert.rejects(stat(fileA), { code: 'ENOENT' });
  assert.deepEqual(await h.vm.store.counts('1001'), { newMessages: 0, oldMessages: 1, total: 1 });
  await sleep(50);
  // MWI follows every change: A heard, B saved, A deleted.
  const counts = h.events.filter((e) => e.name === 'voicemail.counts').map((e) => e.payload);
  assert.deepEqual(counts, [
    { mailbox: '1001', newMessages: 1, oldMessages: 1 },
    { mailbox: '1001', newMessages: 0, oldMessages: 2 },
    { mailbox: '1001', newMessages: 0, oldMessages: 1 },
  ]);
});

test('skip (#) leaves a message new; any-mailbox login asks for the mailbox number', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox(), '1002': mailbox({ pin: '8642' }) } });
  const id = await storeMessage(h, '1002', '1001', await trimmedSpeech('Please skip me for now.'));
  const { agent, phone } = await h.call();
  const session = h.vm.retrieve(agent, { callerExtension: '3000' }); // a phone without a mailbox
  await sleep(300);
  await phone.sendDigits('1002#');
  await sleep(300);
  await phone.sendDigits('8642#');
  await sleep(800);
  await phone.sendDigits('1');
  await sleep(900);
  await phone.sendDigits('#'); // skip: no more messages, main menu
  await sleep(800);
  await phone.sendDigits('#');
  assert.deepEqual(await session, { endedBy: 'ivr', loggedIn: true, mailbox: '1002' });
  assert.equal((await h.vm.store.get(id))?.folder, 'INBOX');
});

test('PIN lockout: three wrong PINs end the call; five across calls lock the mailbox, even for the right PIN', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox() }, settings: { pin_attempts: 3, lockout: { failures: 5, duration: 600 } } });
  const attempt = async (pins: string[]): Promise<{ endedBy: string; loggedIn: boolean }> => {
    const { agent, phone } = await h.call();
    const session = h.vm.retrieve(agent, { callerExtension: '1001' });
    await sleep(300);
    for (const pin of pins) {
      await phone.sendDigits(`${pin}#`);
      await sleep(1200);
    }
    const result = await session;
    await agent.stop();
    await phone.stop();
    return result;
  };
  const first = await attempt(['0000', '1111', '2222']);
  assert.deepEqual({ endedBy: first.endedBy, loggedIn: first.loggedIn }, { endedBy: 'ivr', loggedIn: false });
  assert.equal(await h.vm.pins.isLocked('1001'), false);
  const started = performance.now();
  const second = await attempt(['3333', '4444']);
  // The fifth failure locks: the IVR says so and ends the call without a third try.
  assert.deepEqual({ endedBy: second.endedBy, loggedIn: second.loggedIn }, { endedBy: 'ivr', loggedIn: false });
  assert.ok(performance.now() - started < 10_000, 'no third PIN was asked for');
  assert.equal(await h.vm.pins.isLocked('1001'), true);
  const third = await attempt(['1234']);
  assert.deepEqual({ endedBy: third.endedBy, loggedIn: third.loggedIn }, { endedBy: 'ivr', loggedIn: false });
});

test('change PIN and record the name greeting by phone; the name is then used in the default greeting', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox() } });
  const name = await trimmedSpeech('Bob Smith');
  const { agent, phone } = await h.call();
  const session = h.vm.retrieve(agent, { callerExtension: '1001' });
  await sleep(300);
  await phone.sendDigits('1234#');
  await sleep(800);
  await phone.sendDigits('0'); // options
  await sleep(300);
  await phone.sendDigits('6');
  await sleep(300);
  await phone.sendDigits('4321#');
  await sleep(300);
  await phone.sendDigits('4321#');
  await sleep(500);
  const tone = afterBeep(phone);
  await phone.sendDigits('3'); // record your name
  await tone;
  await phone.play(new PcmSource(name));
  await phone.sendDigits('#');
  await sleep(400);
  await phone.sendDigits('1'); // keep
  await sleep(400);
  await phone.sendDigits('*'); // main menu
  await sleep(400);
  await phone.sendDigits('#');
  assert.equal((await session).loggedIn, true);
  await agent.stop();
  await phone.stop();

  const greeting = await readWavFile(h.vm.greetings.file('1001', 'name'));
  assert.ok(bestCorrelation(name, greeting.samples).correlation > 0.9);
  assert.equal(await h.vm.pins.verify('1001', '1234', '1234'), 'wrong');
  assert.equal(await h.vm.pins.verify('1001', '1234', '4321'), 'ok');
  // An administrator who changes the config PIN resets the phone-set one.
  assert.equal(await h.vm.pins.verify('1001', '5678', '5678'), 'ok');

  // A caller now hears "The person at extension" + Bob's own recording.
  const call = await h.call();
  const heard = listen(call.phone);
  const deposit = h.vm.deposit(call.agent, { mailbox: '1001', reason: 'no-answer', caller: { number: '1002' } });
  await sleep(3500);
  heard.stop();
  await call.agent.stop();
  await deposit;
  assert.ok(bestCorrelation(name, heard.samples(), 16000).correlation > 0.9, 'the recorded name is in the greeting');
});

test('a key pressed during "goodbye" does not cut it short or keep the call open', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox() } });
  const { agent, phone } = await h.call();
  const heard = listen(phone);
  const session = h.vm.retrieve(agent, { callerExtension: '1001' });
  await sleep(300);
  await phone.sendDigits('1234#');
  await sleep(800);
  await phone.sendDigits('#'); // end
  const pressed = performance.now();
  await phone.sendDigits('5'); // ignored: the goodbye plays to its end, then the IVR ends
  assert.deepEqual(await session, { endedBy: 'ivr', loggedIn: true, mailbox: '1001' });
  assert.ok(performance.now() - pressed < 3000);
  heard.stop();
  const goodbye = h.vm.prompts.samples('goodbye')!;
  // The last audio the caller heard is the whole goodbye prompt.
  assert.ok(bestCorrelation(goodbye, heard.samples().subarray(-goodbye.length - 4000), 4000).correlation > 0.9);
});
