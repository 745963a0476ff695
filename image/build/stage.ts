// Lays out the image tree that becomes the squashfs: the executable with its native
// addons beside it, the keys that will verify the next update, defaults and the
// service unit. Modes are set explicitly so the image does not depend on the umask.
import { chmodSync, constants, copyFileSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { keyId, loadPublicKey } from '../bundle/signing.ts';
import { IMAGE_ADDON_DIR, IMAGE_BINARY, IMAGE_DEFAULT_CONFIG, IMAGE_KEYS_DIR, IMAGE_PACKAGE_JSON, IMAGE_PHONE_TEMPLATES_DIR, IMAGE_PROMPTS_DIR, IMAGE_SYSTEMD_DIR } from '../layout.ts';
import type { NativeAddon } from './executable.ts';

export interface StageOptions {
  /** The image tree to create (replaced if present). */
  dir: string;
  executable: string;
  addons: readonly NativeAddon[];
  version: string;
  /** Public keys (PEM) the image trusts for the next update. */
  trustedKeys: readonly string[];
  /** image/files: default config, systemd units. */
  filesDir: string;
  /** provisioning/templates: phone configuration templates. */
  phoneTemplatesDir: string;
}

function copy(from: string, to: string, mode: number): void {
  mkdirSync(path.dirname(to), { recursive: true });
  // A reflink where the file system offers one: the executable is ~100 MB.
  copyFileSync(from, to, constants.COPYFILE_FICLONE);
  chmodSync(to, mode);
}

function write(to: string, text: string): void {
  mkdirSync(path.dirname(to), { recursive: true });
  writeFileSync(to, text);
  chmodSync(to, 0o644);
}

/** Sum of file sizes under `dir`: what an unpacked slot takes. */
export function treeSize(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? treeSize(p) : statSync(p).size;
  }
  return total;
}

function fixDirModes(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) fixDirModes(path.join(dir, entry.name));
}

export function stageImage(opts: StageOptions): { unpackedSize: number } {
  rmSync(opts.dir, { recursive: true, force: true });
  mkdirSync(opts.dir, { recursive: true });
  copy(opts.executable, path.join(opts.dir, IMAGE_BINARY), 0o755);
  for (const addon of opts.addons) copy(addon.source, path.join(opts.dir, IMAGE_ADDON_DIR, addon.name), 0o755);
  for (const file of opts.trustedKeys) {
    copy(file, path.join(opts.dir, IMAGE_KEYS_DIR, `${keyId(loadPublicKey(file))}.pub`), 0o644);
  }
  write(path.join(opts.dir, IMAGE_PACKAGE_JSON), `${JSON.stringify({ name: 'branchline', version: opts.version })}\n`);
  copy(path.join(opts.filesDir, 'default.yaml'), path.join(opts.dir, IMAGE_DEFAULT_CONFIG), 0o644);
  for (const unit of ['branchline.service', 'branchline-provision.service']) copy(path.join(opts.filesDir, unit), path.join(opts.dir, IMAGE_SYSTEMD_DIR, unit), 0o644);
  for (const t of readdirSync(opts.phoneTemplatesDir).sort()) copy(path.join(opts.phoneTemplatesDir, t), path.join(opts.dir, IMAGE_PHONE_TEMPLATES_DIR, t), 0o644);
  // Voice prompts arrive with voicemail; the folder is part of the layout already.
  mkdirSync(path.join(opts.dir, IMAGE_PROMPTS_DIR), { recursive: true });
  fixDirModes(opts.dir);
  return { unpackedSize: treeSize(opts.dir) };
}
