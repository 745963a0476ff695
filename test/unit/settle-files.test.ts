import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { settleUnpackedFiles } from '../../image/settle-files.ts';

/** Resident bytes of a file in the page cache (util-linux fincore). */
function residentBytes(file: string): number {
  const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  return Number(out.trim());
}

test('every unpacked file is synced; the big ones leave the page cache', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'settle-'));
  try {
    mkdirSync(path.join(dir, 'bin'));
    const big = path.join(dir, 'bin', 'branchline');
    writeFileSync(big, Buffer.alloc(8 * 1024 * 1024, 7));
    writeFileSync(path.join(dir, 'config.yaml'), 'site: {}\n');
    assert.ok(residentBytes(big) > 0, 'a file just written is in the page cache');
    const result = await settleUnpackedFiles(dir);
    assert.deepEqual(result, { synced: 2, dropped: 1 });
    assert.equal(residentBytes(big), 0, 'the executable was dropped from the page cache');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
