// The startup scan: brings disk and index back to one story after a crash or a
// power cut at any step of a deposit or a deletion.
//
//   what is found                               what we do, and why
//   .<id>.wav.<hex>.tmp (recording, or written   removed: it was never renamed, so it may be
//     but not renamed)                           partial; the message was never acknowledged
//   pending row + <id>.wav present               indexed into INBOX: the rename happens only
//                                                after the file is complete and fsynced, so the
//                                                file is whole; the caller finished speaking
//                                                and the message must not be lost
//   pending row, no <id>.wav                     row dropped: no audio reached its final name
//   message row, no <id>.wav                     row dropped: a deletion unlinked the file and
//                                                stopped before deleting the row
//   <id>.wav with no row at all                  indexed into INBOX as "recovered" (the store
//                                                was replaced or restored): audio is never
//                                                thrown away by the scan
//   greetings/.take-* and greetings/.*.tmp       removed: a greeting being recorded or
//                                                reviewed when the call or the agent ended
// A WAV at its final name that does not decode (disk damage, not our sequence) is
// left alone and reported.
import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { readWavFile } from '../../media/wav.ts';
import { syncDirectory, type VoicemailStore } from './voicemail-store.ts';

export interface ReconcileReport {
  tempFilesRemoved: number;
  pendingIndexed: number;
  pendingDropped: number;
  rowsWithoutFile: number;
  filesIndexed: number;
  unreadable: string[];
}

const MESSAGE_FILE = /^([0-9a-z]+-[0-9a-f]+)\.wav$/;
const TEMP_FILE = /^\..*\.tmp$/;

async function durationOf(file: string): Promise<number | undefined> {
  try {
    const wav = await readWavFile(file);
    return (wav.samples.length * 1000) / wav.sampleRate;
  } catch {
    return undefined;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

export async function reconcile(store: VoicemailStore, logger?: Logger): Promise<ReconcileReport> {
  const report: ReconcileReport = { tempFilesRemoved: 0, pendingIndexed: 0, pendingDropped: 0, rowsWithoutFile: 0, filesIndexed: 0, unreadable: [] };
  const rows = await store.allRows();
  const known = new Set<string>();
  for (const row of rows) {
    known.add(row.file);
    const present = await exists(row.file);
    if (row.pending) {
      const duration = present ? await durationOf(row.file) : undefined;
      if (duration !== undefined) {
        await store.commitDeposit(row.id, duration);
        report.pendingIndexed++;
      } else {
        if (present) report.unreadable.push(row.file);
        else {
          await store.deleteRow(row.id);
          report.pendingDropped++;
        }
      }
    } else if (!present) {
      await store.deleteRow(row.id);
      report.rowsWithoutFile++;
    }
  }

  let mailboxes: string[] = [];
  try {
    mailboxes = (await readdir(store.root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    // no voicemail folder yet
  }
  for (const mailbox of mailboxes) {
    let dir: string;
    try {
      dir = store.mailboxDir(mailbox);
    } catch {
      continue; // not a mailbox folder
    }
    let removedHere = 0;
    for (const name of await readdir(dir)) {
      const file = path.join(dir, name);
      if (TEMP_FILE.test(name)) {
        await unlink(file).catch(() => undefined);
        removedHere++;
        continue;
      }
      const m = MESSAGE_FILE.exec(name);
      if (!m || known.has(file)) continue;
      const duration = await durationOf(file);
      if (duration === undefined) {
        report.unreadable.push(file);
        continue;
      }
      const info = await stat(file);
      await store.indexFound({ id: m[1] as string, mailbox, receivedAt: Math.round(info.mtimeMs), durationMs: duration });
      report.filesIndexed++;
    }
    if (removedHere > 0) await syncDirectory(dir);
    report.tempFilesRemoved += removedHere;
    const greetings = path.join(dir, 'greetings');
    const unfinished = (await readdir(greetings).catch(() => [] as string[])).filter((name) => name.startsWith('.take-') || TEMP_FILE.test(name));
    for (const name of unfinished) await unlink(path.join(greetings, name)).catch(() => undefined);
    report.tempFilesRemoved += unfinished.length;
  }
  const changed = report.tempFilesRemoved + report.pendingIndexed + report.pendingDropped + report.rowsWithoutFile + report.filesIndexed;
  if (changed > 0 || report.unreadable.length > 0) {
    logger?.warn({ event: 'voicemail.reconciled', ...report }, 'voicemail store repaired after an unclean stop');
  }
  return report;
}
