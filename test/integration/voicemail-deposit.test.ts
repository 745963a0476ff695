// Leaving a message over real RTP: the caller's phone (an RtpSession on loopback)
// hears the greeting, skips it with # (RFC 4733), speaks an espeak-ng sentence,
// and the stored WAV is checked against what was said: duration, level and
// waveform correlation. Then the stop rules: silence, #, *, maximum length, too
// short, hang-up; a full mailbox; greetings chosen by reason.
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PcmSource } from '../../agent/media/audio-source.ts';
import { readWavFile, writeWavFile } from '../../agent/media/wav.ts';
import { afterBeep, bestCorrelation, listen, mailbox, rms, trimmedSpeech as speech, startVoicemail } from '../helpers/voicemail.ts';

const SENTENCE = 'Hello, this is Alice from accounting. Please call me back about the invoice before five today.';

test('a spoken message is stored whole: duration, level and waveform match what the caller said', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox() } });
  const said = await speech(SENTENCE);
  const { agent, phone } = await h.call();
  const heard = listen(phone);
  const result = h.vm.deposit(agent, { mailbox: '1001', reason: 'no-answer', caller: { number: '1002', name: 'Alice' } });
  await sleep(700); // part of the greeting
  const tone = afterBeep(phone);
  await phone.sendDigits('#'); // skip to the tone
  await tone;
  await phone.play(new PcmSource(said));
  const r = await result; // ends by itself after silence_seconds of quiet
  assert.equal(r.outcome, 'saved');
  assert.ok(r.outcome === 'saved');
  const message = r.message;

  // The file: µ-law WAV at its final name, nothing temporary left beside it.
  const wav = await readWavFile(message.file);
  assert.equal(wav.encoding, 'ulaw');
  assert.equal(wav.sampleRate, 8000);
  assert.deepEqual((await readdir(path.dirname(message.file))).filter((f) => f.endsWith('.tmp')), []);
  const saidMs = (said.length / 8000) * 1000;
  assert.ok(Math.abs(message.durationMs - saidMs) < 300, `stored ${message.durationMs} ms, said ${Math.round(saidMs)} ms`);
  assert.equal(Math.round((wav.samples.length / 8000) * 1000), message.durationMs);
  const levelDb = 20 * Math.log10(rms(wav.samples) / rms(said));
  assert.ok(Math.abs(levelDb) < 1, `level differs by ${levelDb.toFixed(2)} dB`);
  const { correlation } = bestCorrelation(said, wav.samples);
  assert.ok(correlation > 0.95, `correlation with the spoken source ${correlation.toFixed(3)}`);

  // The index and the bus.
  const stored = await h.vm.store.list('1001', 'INBOX');
  assert.equal(stored.length, 1);
  assert.equal(stored[0]?.caller, '1002');
  assert.equal(stored[0]?.callerName, 'Alice');
  assert.equal(stored[0]?.durationMs, message.durationMs);
  const deposited = h.events.find((e) => e.name === 'voicemail.deposited')?.payload as Record<string, unknown>;
  assert.deepEqual(
    { mailbox: deposited['mailbox'], caller: deposited['caller'], durationMs: deposited['durationMs'], file: deposited['file'] },
    { mailbox: '1001', caller: '1002', durationMs: message.durationMs, file: message.file },
  );
  await sleep(50);
  assert.deepEqual(h.events.filter((e) => e.name === 'voicemail.counts').at(-1)?.payload, { mailbox: '1001', newMessages: 1, oldMessages: 0 });
  // The caller heard the default greeting, the tone and "saved, goodbye".
  heard.stop();
  assert.ok(heard.samples().length > 8000 * 2);
});

test('# ends the recording at once; * erases and records again; hang-up keeps what was said', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox({ silence_seconds: 10 }) } });
  const said = await speech('Short note for you.');

  // #: saved with no trailing wait.
  {
    const { agent, phone } = await h.call();
    const result = h.vm.deposit(agent, { mailbox: '1001', reason: 'busy', caller: { number: '1003' } });
    await sleep(300);
    const tone = afterBeep(phone);
    await phone.sendDigits('#');
    await tone;
    await phone.play(new PcmSource(said));
    const before = performance.now();
    await phone.sendDigits('#');
    const r = await result;
    assert.equal(r.outcome, 'saved');
    assert.ok(performance.now() - before < 3000);
  }
  // *: the first take is erased, the second kept.
  {
    const { agent, phone } = await h.call();
    const result = h.vm.deposit(agent, { mailbox: '1001', reason: 'busy', caller: { number: '1004' } });
    await sleep(300);
    const tone = afterBeep(phone);
    await phone.sendDigits('#');
    await tone;
    await phone.play(new PcmSource(await speech('First take, wrong.')));
    const again = afterBeep(phone);
    await phone.sendDigits('*'); // "recording erased" and the tone again
    await again;
    await phone.play(new PcmSource(said));
    await phone.sendDigits('#');
    const r = await result;
    assert.equal(r.outcome, 'saved');
    assert.ok(r.outcome === 'saved');
    const wav = await readWavFile(r.message.file);
    assert.ok(bestCorrelation(said, wav.samples).correlation > 0.95);
  }
  // Hang-up mid-sentence: what was said so far is a message.
  {
    const { agent, phone } = await h.call();
    const result = h.vm.deposit(agent, { mailbox: '1001', reason: 'no-answer', caller: { number: '1005' } });
    await sleep(300);
    const tone = afterBeep(phone);
    await phone.sendDigits('#');
    await tone;
    void phone.play(new PcmSource(await speech(SENTENCE)));
    await sleep(2000);
    await agent.stop('caller hung up');
    const r = await result;
    assert.equal(r.outcome, 'saved');
    assert.ok(r.outcome === 'saved');
    assert.ok(r.message.durationMs > 1200 && r.message.durationMs < 2600, `kept ${r.message.durationMs} ms`);
  }
  assert.deepEqual((await h.vm.store.list('1001')).map((m) => m.caller), ['1003', '1004', '1005']);
});

test('maximum length stops the recording; a too-short one is discarded with no file and no row', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox({ max_message_seconds: 5, silence_seconds: 10 }), '1002': mailbox({ min_message_seconds: 3 }) } });
  const said = await speech(SENTENCE);
  {
    const { agent, phone } = await h.call();
    const result = h.vm.deposit(agent, { mailbox: '1001', reason: 'no-answer', caller: { number: '2000' } });
    await sleep(300);
    const tone = afterBeep(phone);
    await phone.sendDigits('#');
    await tone;
    void phone.play(new PcmSource(said, 3));
    const r = await result;
    assert.equal(r.outcome, 'saved');
    assert.ok(r.outcome === 'saved');
    assert.ok(Math.abs(r.message.durationMs - 5000) <= 40, `stopped at ${r.message.durationMs} ms`);
  }
  {
    const { agent, phone } = await h.call();
    const result = h.vm.deposit(agent, { mailbox: '1002', reason: 'no-answer', caller: { number: '2000' } });
    await sleep(300);
    const tone = afterBeep(phone);
    await phone.sendDigits('#');
    await tone;
    await phone.play(new PcmSource(await speech('Hi.')));
    await phone.sendDigits('#');
    assert.deepEqual(await result, { outcome: 'too-short' });
    assert.deepEqual(await h.vm.store.list('1002'), []);
    assert.deepEqual((await h.vm.store.counts('1002')).total, 0);
    assert.deepEqual(await readdir(h.vm.store.mailboxDir('1002')), []);
  }
});

test('a full mailbox takes no message; 0 asks for the operator; * logs the owner in', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox({ max_messages: 1 }), '1002': mailbox() } });
  const said = await speech('This is message number one, please call back.');
  {
    const { agent, phone } = await h.call();
    const result = h.vm.deposit(agent, { mailbox: '1001', reason: 'no-answer', caller: { number: '3000' } });
    await sleep(300);
    const tone = afterBeep(phone);
    await phone.sendDigits('#');
    await tone;
    await phone.play(new PcmSource(said));
    assert.equal((await result).outcome, 'saved');
  }
  {
    const { agent } = await h.call();
    assert.deepEqual(await h.vm.deposit(agent, { mailbox: '1001', reason: 'no-answer', caller: { number: '3001' } }), { outcome: 'full' });
  }
  {
    const { agent, phone } = await h.call();
    const result = h.vm.deposit(agent, { mailbox: '1002', reason: 'busy', caller: { number: '3002' } });
    await sleep(300);
    await phone.sendDigits('0');
    assert.deepEqual(await result, { outcome: 'operator' });
  }
  {
    const { agent, phone } = await h.call();
    const result = h.vm.deposit(agent, { mailbox: '1002', reason: 'busy', caller: { number: '3003' } });
    await sleep(300);
    await phone.sendDigits('*');
    await sleep(300);
    await phone.sendDigits('1234#');
    await sleep(800);
    await phone.sendDigits('#'); // main menu: end
    assert.deepEqual(await result, { outcome: 'login' });
  }
});

test('greetings: the temporary one overrides; busy and unavailable by reason; else the default', async (t) => {
  const h = await startVoicemail(t, { mailboxes: { '1001': mailbox() } });
  const busy = new Int16Array(4000).fill(3000);
  const unavailable = new Int16Array(4000).fill(-3000);
  const { greetingFor } = await import('../../agent/voicemail/deposit/greeting.ts');
  const first = (await greetingFor(h.vm.greetings, h.vm.prompts, '1001', 'busy')).kind;
  assert.equal(first, 'default');
  await writeWavFile(await h.vm.greetings.prepare('1001', 'busy'), busy);
  await writeWavFile(await h.vm.greetings.prepare('1001', 'unavailable'), unavailable);
  assert.equal((await greetingFor(h.vm.greetings, h.vm.prompts, '1001', 'busy')).kind, 'busy');
  assert.equal((await greetingFor(h.vm.greetings, h.vm.prompts, '1001', 'no-answer')).kind, 'unavailable');
  await writeWavFile(await h.vm.greetings.prepare('1001', 'temporary'), busy);
  assert.equal((await greetingFor(h.vm.greetings, h.vm.prompts, '1001', 'busy')).kind, 'temporary');
  assert.equal(await h.vm.greetings.remove('1001', 'temporary'), true);
  assert.equal((await stat(h.vm.greetings.file('1001', 'busy'))).isFile(), true);

  // Over RTP: the caller hears the recorded busy greeting (a constant level), then the tone.
  const { agent, phone } = await h.call();
  const heard = listen(phone);
  const result = h.vm.deposit(agent, { mailbox: '1001', reason: 'busy', caller: { number: '4000' } });
  await sleep(1200);
  heard.stop();
  await agent.stop();
  assert.equal((await result).outcome, 'hangup');
  const samples = heard.samples();
  assert.ok(samples.slice(0, 3000).every((v) => Math.abs(v - 3000) < 200), 'the busy greeting is what plays first');
});
