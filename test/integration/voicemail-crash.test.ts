// Power cut at any instant of a deposit: a child process leaves a message over real
// RTP into a real store (files + SQLite) and is killed with SIGKILL at each step of
// the durable write sequence, then at random instants. A fresh start on the same
// state directory must find either no message or one whole message — never a
// pending row, a temporary file, a row without audio or audio without a row.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readWavFile, writeWavFile } from '../../agent/media/wav.ts';
import type { DepositStep } from '../../agent/voicemail/deposit/deposit.ts';
import { killNow, track, waitExit } from '../helpers/proc.ts';
import { bestCorrelation, mailbox, startVoicemail, trimmedSpeech, type VoicemailHarness } from '../helpers/voicemail.ts';

const CHILD = fileURLToPath(new URL('../fixtures/voicemail/deposit-child.ts', import.meta.url));

function startChild(stateDir: string, speechFile: string, stopAt: DepositStep | 'none'): { child: ChildProcess; line(text: string): Promise<void> } {
  const child = track(spawn(process.execPath, [CHILD, stateDir, speechFile, stopAt], { stdio: ['ignore', 'pipe', 'inherit'] }));
  let out = '';
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of waiters) if (out.includes(w.text)) w.resolve();
  });
  return {
    child,
    line: (text) =>
      new Promise<void>((resolve, reject) => {
        if (out.includes(text)) return resolve();
        const timer = setTimeout(() => reject(new Error(`child never printed "${text}" (stdout: ${out})`)), 30_000);
        waiters.push({ text, resolve: () => (clearTimeout(timer), resolve()) });
        child.once('exit', (code) => reject(new Error(`child exited (${code}) before "${text}" (stdout: ${out})`)));
      }),
  };
}

/** The invariant after any crash and the startup scan: disk and index tell one story. */
async function assertConsistent(h: VoicemailHarness): Promise<number> {
  const rows = await h.vm.store.allRows();
  assert.deepEqual(rows.filter((r) => r.pending), [], 'no pending deposit survives the scan');
  const dir = h.vm.store.mailboxDir('1001');
  const files = await readdir(dir).catch(() => [] as string[]);
  assert.deepEqual(files.filter((f) => f.endsWith('.tmp')), [], 'no temporary file survives the scan');
  const wavs = files.filter((f) => f.endsWith('.wav')).map((f) => path.join(dir, f)).sort();
  assert.deepEqual(rows.map((r) => r.file).sort(), wavs, 'every row has its file and every file its row');
  for (const row of rows) {
    const wav = await readWavFile(row.file);
    assert.equal(Math.round((wav.samples.length * 1000) / 8000), row.durationMs, 'the indexed duration is the file’s');
  }
  return rows.length;
}

test('kill -9 at each step of a deposit leaves no message or a whole one', async (t) => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-crash-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const said = await trimmedSpeech('This message is being recorded when the power fails.');
  const speechFile = path.join(work, 'speech.wav');
  await writeWavFile(speechFile, said);

  const expect: Record<DepositStep, { messages: number; report: Partial<VoicemailHarness['report']> }> = {
    'pending-committed': { messages: 0, report: { pendingDropped: 1 } },
    recording: { messages: 0, report: { pendingDropped: 1, tempFilesRemoved: 1 } },
    renamed: { messages: 1, report: { pendingIndexed: 1 } },
    indexed: { messages: 1, report: { pendingIndexed: 0, pendingDropped: 0, tempFilesRemoved: 0 } },
  };
  for (const step of Object.keys(expect) as DepositStep[]) {
    const stateDir = path.join(work, step);
    const { child, line } = startChild(stateDir, speechFile, step);
    t.after(() => killNow(child));
    await line(`AT ${step}`);
    child.kill('SIGKILL');
    assert.equal((await waitExit(child)).signal, 'SIGKILL');

    const h = await startVoicemail(t, { stateDir, mailboxes: { '1001': mailbox() } });
    for (const [key, value] of Object.entries(expect[step].report)) {
      assert.equal(h.report[key as keyof typeof h.report], value, `${step}: ${key}`);
    }
    assert.equal(await assertConsistent(h), expect[step].messages, `${step}: messages after restart`);
    if (expect[step].messages === 1) {
      const [message] = await h.vm.store.list('1001', 'INBOX');
      const wav = await readWavFile(message!.file);
      assert.ok(bestCorrelation(said, wav.samples).correlation > 0.95, `${step}: the message is the whole recording`);
      assert.equal(message!.caller, '1002');
    }
    await h.close();
  }
});

test('kill -9 at random instants of deposits: always consistent after the scan', async (t) => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'bl-vm-crash-'));
  t.after(() => rm(work, { recursive: true, force: true }));
  const said = await trimmedSpeech('Random power cut test message.');
  const speechFile = path.join(work, 'speech.wav');
  await writeWavFile(speechFile, said);
  const stateDir = path.join(work, 'state');
  const outcomes: number[] = [];
  // Each run kills somewhere between "recording started" and a little after the
  // end of speech (where close, rename and index happen), and adds to the same
  // mailbox: earlier whole messages must survive later crashes.
  const speechMs = (said.length / 8000) * 1000;
  for (let i = 0; i < 6; i++) {
    const { child, line } = startChild(stateDir, speechFile, 'none');
    t.after(() => killNow(child));
    await line('RECORDING');
    const delay = speechMs * 0.5 + Math.random() * (speechMs * 0.5 + 400);
    await new Promise((r) => setTimeout(r, delay));
    child.kill('SIGKILL');
    await waitExit(child);
    const h = await startVoicemail(undefined, { stateDir, mailboxes: { '1001': mailbox() } });
    outcomes.push(await assertConsistent(h));
    await h.close();
  }
  // Messages only ever accumulate (0 or +1 per run).
  for (let i = 1; i < outcomes.length; i++) assert.ok(outcomes[i]! - outcomes[i - 1]! <= 1 && outcomes[i]! >= outcomes[i - 1]!, `messages per run: ${outcomes}`);
});
