// The upstream report of the update journal: each whole line once, in order, with an
// id derived from its bytes; a line still being written waits; a restart resumes where
// it stopped; a line sent again (position lost) carries the same id.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import { createLogger } from '../../agent/log/logger.ts';
import type { NewOutboxMessage } from '../../agent/sync/outbox.ts';
import { FIRMWARE_EVENT, JournalReporter } from '../../image/journal-reporter.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'branchline-journal-report-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function reporter(journal: string, sent: NewOutboxMessage[]): JournalReporter {
  return new JournalReporter({ journalFile: journal, stateDir: path.join(dir, 'state'), enqueue: async (m) => void sent.push(m), intervalMs: 60_000, logger: createLogger('silent') });
}

test('whole lines once, in order; a partial line waits; a restart resumes; ids are stable', async () => {
  const journal = path.join(dir, 'journal.jsonl');
  writeFileSync(journal, `${JSON.stringify({ hook: 'install-check', status: 'ok' })}\n${JSON.stringify({ hook: 'pre-install', status: 'ok' })}\n{"hook":"inst`);
  const sent: NewOutboxMessage[] = [];
  assert.equal(await reporter(journal, sent).flush(), 2);
  assert.deepEqual(sent.map((m) => [m.stream, m.type, (m.data as { hook: string }).hook]), [['events', FIRMWARE_EVENT, 'install-check'], ['events', FIRMWARE_EVENT, 'pre-install']]);
  assert.match(sent[0]?.id ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);

  appendFileSync(journal, 'all","status":"ok"}\nnot json, torn by a power cut\n');
  const again = reporter(journal, sent); // a new process: the position is on disk
  assert.equal(await again.flush(), 2);
  assert.deepEqual((sent[2]?.data as { hook: string }).hook, 'install');
  assert.deepEqual(sent[3]?.data, { unreadable: 'not json, torn by a power cut' });
  assert.equal(await again.flush(), 0);

  // Position lost: everything is sent again, with the same ids (the controller keeps one).
  rmSync(path.join(dir, 'state'), { recursive: true });
  const resent: NewOutboxMessage[] = [];
  assert.equal(await reporter(journal, resent).flush(), 4);
  assert.deepEqual(resent.map((m) => m.id), sent.map((m) => m.id));
});

test('a position that cannot be saved is logged and retried, never an unhandled failure', async () => {
  const journal = path.join(dir, 'journal-2.jsonl');
  writeFileSync(journal, `${JSON.stringify({ hook: 'commit', status: 'ok' })}\n`);
  const blocked = path.join(dir, 'not-a-dir');
  writeFileSync(blocked, 'a file where the state folder should be');
  const lines: string[] = [];
  const out = new PassThrough();
  out.on('data', (b: Buffer) => lines.push(b.toString()));
  const sent: NewOutboxMessage[] = [];
  const r = new JournalReporter({ journalFile: journal, stateDir: blocked, enqueue: async (m) => void sent.push(m), intervalMs: 60_000, logger: createLogger('warn', out) });
  r.start();
  await r.stop();
  assert.equal(sent.length, 1, 'the line was queued before the position failed');
  assert.ok(lines.some((l) => (JSON.parse(l) as { event?: string }).event === 'firmware.report_failed'), lines.join(''));
});
