// Secrets on disk (device identity, controller-issued credentials, phone passwords):
// written whole or not at all, readable only by the agent's user. A power cut leaves
// either the old file or the new one, never a torn one.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

export const SECRET_FILE_MODE = 0o600;

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes `data` to `file` atomically with mode 0600 (temp file, fsync, rename, fsync
 * folder). `mode` 0640 lets a group read it (the broker reading the controller's files).
 */
export function writeSecretFile(file: string, data: string | Buffer, mode: 0o600 | 0o640 = SECRET_FILE_MODE): void {
  const dir = path.dirname(file);
  mkdirSync(dir, { recursive: true, mode: mode === 0o600 ? 0o700 : 0o750 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  // The mode is set at creation: the secret is never readable by others, not even briefly.
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
  fsyncDir(dir);
}
