// After unpacking a slot: every file's data on disk before the slot can be selected,
// and the big ones out of the page cache.
//
// unsquashfs writes without fsync, and a directory fsync does not cover file data: a
// power cut after the switch could boot a slot whose binary is half written. So each
// file is fsynced here.
//
// Dropping the cache: the agent's executable is ~120 MB of file pages. Freshly
// written, the kernel maps it into the agent in large folios (whole megabytes per
// fault), and an agent started right after an update showed ~22 MB more RSS of clean
// file pages than the same agent after a boot (docs/benchmarks.md, issue 7). Written
// back and dropped, the file is read again at the usual granularity. Node cannot
// posix_fadvise, so coreutils dd does it (oflag=nocache with count=0 drops the whole
// file; its pages are clean after the fsync, so dd need not sync again); that part is
// best-effort, the fsync is not.
import { execFile } from 'node:child_process';
import { closeSync, fsyncSync, lstatSync, openSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Files at least this big are also dropped from the page cache. */
const DROP_FROM_BYTES = 1024 * 1024;

function regularFiles(dir: string, out: Array<{ file: string; size: number }> = []): Array<{ file: string; size: number }> {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    const st = lstatSync(file);
    if (st.isDirectory()) regularFiles(file, out);
    else if (st.isFile()) out.push({ file, size: st.size });
  }
  return out;
}

/** fsyncs every regular file under `dir`; returns how many large files left the page cache. */
export async function settleUnpackedFiles(dir: string): Promise<{ synced: number; dropped: number }> {
  const files = regularFiles(dir);
  for (const { file } of files) {
    const fd = openSync(file, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  let dropped = 0;
  for (const { file, size } of files) {
    if (size < DROP_FROM_BYTES) continue;
    try {
      await run('dd', ['if=/dev/null', `of=${file}`, 'oflag=nocache', 'conv=notrunc', 'count=0', 'status=none']);
      dropped++;
    } catch {
      // No coreutils dd (or it refused): the file stays cached, which costs memory, not correctness.
    }
  }
  return { synced: files.length, dropped };
}
