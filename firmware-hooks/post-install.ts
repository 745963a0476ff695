// post-install: does the unpacked slot hold a working Branchline of the promised
// version? Its own binary must run and say so, and it must carry the keys that will
// check the next update (without them the box could never update again).
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { keyRingFromDir } from '../image/bundle/signing.ts';
import { IMAGE_BINARY, IMAGE_KEYS_DIR, IMAGE_PACKAGE_JSON } from '../image/layout.ts';
import type { SlotTree } from '../image/slots/tree.ts';
import type { InstallPlan } from './install-check.ts';
import { ok, type HookResult } from './types.ts';

const run = promisify(execFile);

export class PostInstallError extends Error {
  readonly code: 'EPOSTINSTALL_MISSING' | 'EPOSTINSTALL_VERSION' | 'EPOSTINSTALL_NO_KEYS' | 'EPOSTINSTALL_RUN';
  constructor(code: PostInstallError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

export async function postInstall(tree: SlotTree, plan: InstallPlan): Promise<HookResult<void>> {
  const dir = tree.slotDir(plan.target);
  const want = plan.manifest.version;
  const binary = path.join(dir, IMAGE_BINARY);
  if (!existsSync(binary)) throw new PostInstallError('EPOSTINSTALL_MISSING', `slot ${plan.target} has no ${IMAGE_BINARY}`);
  try {
    accessSync(binary, constants.X_OK);
  } catch {
    throw new PostInstallError('EPOSTINSTALL_MISSING', `slot ${plan.target}: ${IMAGE_BINARY} is not executable`);
  }
  const pkgFile = path.join(dir, IMAGE_PACKAGE_JSON);
  const pkg = existsSync(pkgFile) ? (JSON.parse(readFileSync(pkgFile, 'utf8')) as { version?: unknown }) : {};
  if (pkg.version !== want) throw new PostInstallError('EPOSTINSTALL_VERSION', `slot ${plan.target}: ${IMAGE_PACKAGE_JSON} says ${String(pkg.version)}, the manifest ${want}`);
  const keys = keyRingFromDir(path.join(dir, IMAGE_KEYS_DIR));
  if (keys.size === 0) throw new PostInstallError('EPOSTINSTALL_NO_KEYS', `slot ${plan.target} carries no public key in ${IMAGE_KEYS_DIR}/: it could never verify another update`);
  let stdout: string;
  try {
    // A clean environment: the slot's binary must not depend on ours (NODE_OPTIONS…).
    ({ stdout } = await run(binary, ['--version'], { timeout: 20_000, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } }));
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const why = (e.stderr ?? '').trim().split('\n').filter(Boolean).slice(-1)[0] ?? e.message;
    throw new PostInstallError('EPOSTINSTALL_RUN', `slot ${plan.target}: ${IMAGE_BINARY} --version failed: ${why}`);
  }
  if (stdout.trim() !== `branchline ${want}`) {
    throw new PostInstallError('EPOSTINSTALL_VERSION', `slot ${plan.target}: the binary reports "${stdout.trim()}", expected "branchline ${want}"`);
  }
  const now = new Date().toISOString();
  tree.updateState((s) => {
    s.slots[plan.target] = { ...s.slots[plan.target], state: 'installed', installed_at: s.slots[plan.target].installed_at ?? now, reason: null };
  });
  return { outcome: ok(`slot ${plan.target} runs branchline ${want}; ${keys.size} trusted key(s) for the next update`, { keys: [...keys.keys()] }), value: undefined };
}
