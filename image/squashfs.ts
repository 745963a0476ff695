// The image is a squashfs file system (Debian squashfs-tools): one file, compressed,
// mountable read-only on a real A/B partition; in a slot tree of directories we unpack
// it. Both directions shell out to the Debian tools, run by path with argv (no shell).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type Compression = 'xz' | 'zstd' | 'gzip' | 'lz4';

export class SquashfsError extends Error {
  readonly code: 'ESQUASHFS_TOOL' | 'ESQUASHFS_FAILED';
  constructor(code: SquashfsError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface PackOptions {
  compression: Compression;
  /** Every timestamp in the image (SOURCE_DATE_EPOCH): same tree, same bytes. */
  mtime: number;
}

function toolError(tool: string, err: unknown): SquashfsError {
  const e = err as NodeJS.ErrnoException & { stderr?: string };
  if (e.code === 'ENOENT') return new SquashfsError('ESQUASHFS_TOOL', `${tool} is not installed (Debian package squashfs-tools)`, { cause: err });
  const why = (e.stderr ?? '').trim().split('\n').filter(Boolean).pop() ?? e.message;
  return new SquashfsError('ESQUASHFS_FAILED', `${tool} failed: ${why}`, { cause: err });
}

function compressionArgs(opts: PackOptions): string[] {
  switch (opts.compression) {
    case 'xz':
      // 1 MiB blocks: most of the image is one executable. The x86 BCJ filter would
      // save another 1 MB of 31 but doubles the time (mksquashfs tries with and without).
      return ['-comp', 'xz', '-b', '1M'];
    case 'zstd':
      return ['-comp', 'zstd', '-b', '1M', '-Xcompression-level', '15'];
    case 'gzip':
      return ['-comp', 'gzip', '-b', '1M'];
    case 'lz4':
      return ['-comp', 'lz4'];
  }
}

/** Packs `dir` into the squashfs file `out` (replacing it), owned by root, with fixed times. */
export async function packImage(dir: string, out: string, opts: PackOptions): Promise<void> {
  const args = [dir, out, '-noappend', '-all-root', '-no-xattrs', '-quiet', '-no-progress', '-mkfs-time', String(opts.mtime), '-all-time', String(opts.mtime), ...compressionArgs(opts)];
  try {
    await run('mksquashfs', args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw toolError('mksquashfs', err);
  }
}

/** Unpacks a squashfs file into `dest`, which must not exist yet. */
export async function unpackImage(image: string, dest: string): Promise<void> {
  try {
    await run('unsquashfs', ['-no-progress', '-quiet', '-no-xattrs', '-d', dest, image], { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw toolError('unsquashfs', err);
  }
}
