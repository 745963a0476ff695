// Voicemail between two real desk phones (baresip 1.0) through the agent, as a
// newcomer would try it: Alice calls Bob, Bob does not answer, Alice leaves a spoken
// message; Bob's lamp goes on (baresip's mwi module subscribes); Bob dials *97,
// enters his PIN with the keypad (RFC 4733), listens to the message and deletes it;
// the lamp goes off. The stored message is checked against what Alice's phone said.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseSync } from 'node:sqlite';
import { readWavFile, writeWavFile } from '../../agent/media/wav.ts';
import { startAgent } from '../helpers/agent.ts';
import { startBaresip, type BaresipHandle } from '../helpers/baresip.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { rms, trimmedSpeech } from '../helpers/voicemail.ts';

/**
 * Where `period` (one repetition of what the caller's phone loops) best lines up in
 * `recorded`, and how well: 10 ms RMS envelopes find the offset, then the samples
 * around it give the normalised correlation.
 */
function matchPeriodic(period: Int16Array, recorded: Int16Array, length: number): number {
  const step = 80;
  const env = (x: Int16Array): Float64Array => {
    const out = new Float64Array(Math.floor(x.length / step));
    for (let i = 0; i < out.length; i++) out[i] = rms(x.subarray(i * step, (i + 1) * step));
    return out;
  };
  const doubled = new Int16Array(period.length * 2);
  doubled.set(period);
  doubled.set(period, period.length);
  const ep = env(doubled);
  const er = env(recorded.subarray(0, length));
  let bestLag = 0;
  let best = -Infinity;
  for (let lag = 0; lag < period.length / step; lag++) {
    let dot = 0;
    let a = 0;
    let b = 0;
    for (let i = 0; i < er.length && i + lag < ep.length; i++) {
      dot += er[i]! * ep[i + lag]!;
      a += er[i]! * er[i]!;
      b += ep[i + lag]! * ep[i + lag]!;
    }
    const c = dot / Math.sqrt(a * b || 1);
    if (c > best) {
      best = c;
      bestLag = lag * step;
    }
  }
  let bestCorr = -1;
  for (let lag = Math.max(0, bestLag - step); lag <= bestLag + step; lag++) {
    let dot = 0;
    let a = 0;
    let b = 0;
    for (let i = 0; i < length && i < recorded.length; i++) {
      const s = doubled[(i + lag) % doubled.length]!;
      const r = recorded[i]!;
      dot += s * r;
      a += s * s;
      b += r * r;
    }
    bestCorr = Math.max(bestCorr, dot / Math.sqrt(a * b || 1));
  }
  return bestCorr;
}

function mwiEvents(phone: BaresipHandle): string[] {
  return phone.events().filter((e) => e['type'] === 'MWI_NOTIFY').map((e) => String(e['param'] ?? ''));
}

test('Alice leaves Bob a message, Bob’s lamp lights, Bob listens and deletes it, the lamp goes off', async (t) => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-baresip-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  // Alice's phone loops speech with a pause: whatever moment the tone comes, she is speaking soon after.
  const speech = await trimmedSpeech('Hi Bob, it is Alice. The delivery came early, call me back.');
  const period = new Int16Array(speech.length + 8000);
  period.set(speech);
  const loop = new Int16Array(period.length * 8);
  for (let i = 0; i < 8; i++) loop.set(period, i * period.length);
  const aliceAudio = path.join(work, 'alice.wav');
  await writeWavFile(aliceAudio, loop, { fsync: false });

  const rtp = 43000 + Math.floor(Math.random() * 300) * 2;
  const agent = await startAgent({
    extensions: [],
    logLevel: process.env['VM_DEBUG'] ? 'debug' : 'info',
    extraConfig: {
      sip: { auth: { algorithms: ['MD5'] } },
      media: { bind_address: '127.0.0.1', port_range: { min: rtp, max: rtp + 40 } },
      extensions: [
        { number: '1001', name: 'Alice', password: 'alice-1001-secret', voicemail: { pin: '4821' } },
        { number: '1002', name: 'Bob', password: 'bob-1002-secret', ring_timeout: 5, voicemail: { pin: '7315', max_message_seconds: 10, silence_seconds: 3 } },
      ],
    },
  });
  t.after(() => agent.cleanup());
  const registrar = `127.0.0.1:${agent.udpPort}`;
  const alice = await startBaresip({ account: { user: '1001', password: 'alice-1001-secret', registrar, domain: agent.domain }, audioFile: aliceAudio });
  t.after(() => alice.cleanup());
  // Bob's phone sends a quiet line for the whole test: baresip 1.0 stops its RTP clock
  // when its audio file ends, and keys pressed after that reuse one RTP timestamp,
  // which RFC 4733 receivers (ours included) take for the same key press.
  const bobAudio = path.join(work, 'bob.wav');
  await writeWavFile(bobAudio, new Int16Array(8000 * 120), { fsync: false });
  const bob = await startBaresip({ account: { user: '1002', password: 'bob-1002-secret', registrar, domain: agent.domain }, audioFile: bobAudio, mwi: true });
  t.after(() => bob.cleanup());
  await alice.waitForEvent((e) => e['type'] === 'REGISTER_OK', 5000);
  await bob.waitForEvent((e) => e['type'] === 'REGISTER_OK', 5000);
  await bob.waitForEvent((e) => e['type'] === 'MWI_NOTIFY', 10_000);
  assert.match(mwiEvents(bob).at(-1) ?? '', /Messages-Waiting: no/);

  // Alice calls; Bob's phone rings and nobody answers; voicemail takes the call.
  assert.equal((await alice.command('dial', `sip:1002@${agent.domain}`)).ok, true);
  await bob.waitForEvent((e) => e['type'] === 'CALL_INCOMING', 5000);
  await alice.waitForEvent((e) => e['type'] === 'CALL_ESTABLISHED', 15_000);
  // Greeting, tone, then max_message_seconds (10 s) of recording end the call.
  await alice.waitForEvent((e) => e['type'] === 'CALL_CLOSED', 40_000);

  const db = new DatabaseSync(path.join(agent.stateDir, 'branchline.sqlite'), { readOnly: true });
  const rows = db.prepare("SELECT mailbox, folder, caller, duration_ms, file FROM voicemail_messages").all() as Array<{ mailbox: string; folder: string; caller: string; duration_ms: number; file: string }>;
  db.close();
  assert.equal(rows.length, 1);
  assert.deepEqual({ mailbox: rows[0]!.mailbox, folder: rows[0]!.folder, caller: rows[0]!.caller }, { mailbox: '1002', folder: 'INBOX', caller: '1001' });
  assert.ok(Math.abs(rows[0]!.duration_ms - 10_000) <= 100, `stored ${rows[0]!.duration_ms} ms (maximum length 10 s)`);
  const stored = await readWavFile(path.join(agent.stateDir, 'voicemail', rows[0]!.file));
  const correlation = matchPeriodic(period, stored.samples, Math.min(stored.samples.length, period.length));
  assert.ok(correlation > 0.9, `the message is what Alice's phone said (correlation ${correlation.toFixed(3)})`);

  // The lamp lights.
  await bob.waitForEvent((e) => e['type'] === 'MWI_NOTIFY' && /Messages-Waiting: yes/.test(String(e['param'])), 10_000);
  assert.match(mwiEvents(bob).at(-1) ?? '', /Voice-Message: 1\/0/);

  // Bob calls his mailbox, logs in, listens, deletes.
  const bobCallsBefore = bob.events().filter((e) => e['type'] === 'CALL_CLOSED').length;
  assert.equal((await bob.command('dial', `sip:*97@${agent.domain}`)).ok, true);
  await bob.waitForEvent((e) => e['type'] === 'CALL_ESTABLISHED', 10_000);
  await sleep(800);
  for (const key of '7315#') {
    await bob.command('sndcode', key);
    await sleep(250);
  }
  await sleep(1500);
  await bob.command('sndcode', '1'); // new messages: plays it
  await sleep(1500 + 10_000);
  await bob.command('sndcode', '7'); // delete
  await sleep(2000);
  await bob.command('sndcode', '#');
  await sleep(300);
  await bob.command('sndcode', '#'); // main menu: goodbye
  for (let waited = 0; bob.events().filter((e) => e['type'] === 'CALL_CLOSED').length <= bobCallsBefore; waited += 200) {
    if (waited > 15_000) assert.fail(`the IVR did not hang up: ${JSON.stringify(agent.logs().slice(-30))}`);
    await sleep(200);
  }

  if (process.env['VM_DEBUG']) console.log(agent.logs().filter((l) => String(l['time']) > '').map((l) => JSON.stringify(l)).join('\n'));
  const db2 = new DatabaseSync(path.join(agent.stateDir, 'branchline.sqlite'), { readOnly: true });
  assert.equal((db2.prepare('SELECT COUNT(*) AS n FROM voicemail_messages').get() as { n: number }).n, 0, 'the message is deleted');
  db2.close();
  // The lamp goes off: the last NOTIFY says no new messages.
  const lastYes = mwiEvents(bob).findLastIndex((m) => /Messages-Waiting: yes/.test(m));
  await bob.waitForEvent(() => mwiEvents(bob).slice(lastYes + 1).some((m) => /Messages-Waiting: no/.test(m)), 10_000);
  assert.match(mwiEvents(bob).at(-1) ?? '', /Voice-Message: 0\/0/);
});
