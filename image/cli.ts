// The image commands of `branchline`: bundle verify, update, slots. agent/cli.ts parses
// the command line once and hands the parsed values here; every outcome is one line
// on stderr (and a JSON object on stdout with --json) and an exit code a script can test.
import { ConfigError } from '../agent/config/load.ts';
import { loadAgentConfig } from '../provisioning/provisioned.ts';
import { noAgentCalls, StatusActiveCalls } from '../firmware-hooks/probes/active-calls.ts';
import { HookFailure } from '../firmware-hooks/types.ts';
import { bootStep, verifyStep } from './boot.ts';
import { BundleError } from './bundle/errors.ts';
import { keyRingFromFiles, KeyError, type KeyRing } from './bundle/signing.ts';
import { verifyBundle } from './bundle/verify.ts';
import { isVersion } from './bundle/version.ts';
import { ownImageKeys } from './runtime.ts';
import { formatSlots, slotsReport } from './slots/view.ts';
import { SlotTree, SlotTreeError } from './slots/tree.ts';
import { activeSlotKeys, installUpdate } from './update.ts';

export const EXIT = {
  ok: 0,
  /** A bundle refused, an update failed, a trial rolled back. */
  refused: 1,
  usage: 2,
  /** pre-reboot reached its deadline with calls up: retry later (EX_TEMPFAIL). */
  postponed: 75,
  /** The agent config is invalid (EX_CONFIG, as `start` uses). */
  config: 78,
} as const;

/** The options agent/cli.ts parses for these commands. */
export interface ImageOptions {
  slots?: string | undefined;
  key?: string[] | undefined;
  installed?: string | undefined;
  config?: string | undefined;
  deadline?: string | undefined;
  json?: boolean | undefined;
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

const stdio: Io = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };

export const imageUsage = `  bundle verify FILE [--key PUB]... [--slots DIR | --installed VERSION] [--json]
                                 check a bundle's signature, hash, architecture and version
  update --slots DIR FILE [--key PUB]... [--config FILE] [--deadline SECONDS]
                                 install a bundle into the inactive slot and select it
  slots --slots DIR [--json]     show the slots: active, committed, on trial, rolled back
  slots boot --slots DIR         before the agent starts: count a trial start, roll back a crash loop
  slots verify --slots DIR --config FILE [--deadline SECONDS] [--json]
                                 after it started: post-boot verify, then commit or roll back
`;

class UsageError extends Error {
  readonly code = 'EUSAGE';
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ');
}

function seconds(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback * 1000;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--deadline must be a number of seconds, got "${value}"`);
  return n * 1000;
}

function needSlots(values: ImageOptions): SlotTree {
  if (!values.slots) throw new UsageError('missing --slots DIR');
  return SlotTree.open(values.slots);
}

/** --key files, else the given slot tree's active keys, else the running image's. */
function trustedKeys(values: ImageOptions, tree: SlotTree | null): KeyRing {
  if (values.key && values.key.length > 0) return keyRingFromFiles(values.key);
  if (tree) return activeSlotKeys(tree);
  return ownImageKeys();
}

async function bundleVerify(args: string[], values: ImageOptions, io: Io): Promise<number> {
  const file = args[0];
  if (!file || args.length > 1) throw new UsageError('usage: branchline bundle verify FILE');
  if (values.installed !== undefined && !isVersion(values.installed)) throw new UsageError(`--installed "${values.installed}" is not a version`);
  const tree = values.slots ? SlotTree.open(values.slots) : null;
  let installed: string | null = values.installed ?? null;
  if (tree && installed === null) {
    const active = tree.boot.selected();
    installed = active ? tree.readState().slots[active].version : null;
  }
  try {
    const v = await verifyBundle(file, { keys: trustedKeys(values, tree), architecture: process.arch, installedVersion: installed });
    const m = v.manifest;
    if (values.json) io.out(`${JSON.stringify({ ok: true, file, key_id: v.keyId, installed, manifest: m })}\n`);
    else {
      const against = installed ? `newer than the installed ${installed}` : 'no installed version compared (use --slots DIR or --installed VERSION)';
      io.out(`ok: branchline ${m.version} for ${m.architecture}, installs over ${m.min_version} or later, signed by key ${v.keyId}; ${against}\n`);
    }
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof BundleError)) throw err;
    if (values.json) io.out(`${JSON.stringify({ ok: false, file, code: err.code, reason: err.message })}\n`);
    io.err(`refused: ${oneLine(err.message)}\n`);
    return EXIT.refused;
  }
}

async function update(args: string[], values: ImageOptions, io: Io): Promise<number> {
  const file = args[0];
  if (!file || args.length > 1) throw new UsageError('usage: branchline update --slots DIR FILE');
  if (!values.slots) throw new UsageError('missing --slots DIR');
  const tree = SlotTree.open(values.slots, { create: true });
  const config = values.config ? loadAgentConfig(values.config) : null;
  const options = {
    tree,
    bundle: file,
    calls: config ? new StatusActiveCalls(config) : noAgentCalls,
    callDeadlineMs: seconds(values.deadline, 300),
    stateDir: config ? config.state_dir : null,
  };
  const result = await installUpdate(values.key && values.key.length > 0 ? { ...options, keys: keyRingFromFiles(values.key) } : options);
  if (values.json) io.out(`${JSON.stringify(result)}\n`);
  if (result.status === 'flashed') {
    io.err(`installed branchline ${result.version} into slot ${result.slot} (first install, committed)\n`);
  } else {
    io.err(
      `installed branchline ${result.version} into slot ${result.slot}; it starts next, on trial ` +
        `(fallback: slot ${result.previous?.slot} ${result.previous?.version}). Restart the agent; post-boot verify commits it or rolls it back.\n`,
    );
  }
  return EXIT.ok;
}

async function slots(args: string[], values: ImageOptions, io: Io): Promise<number> {
  const sub = args[0];
  const tree = needSlots(values);
  if (sub === undefined || sub === 'show') {
    const report = slotsReport(tree);
    io.out(values.json ? `${JSON.stringify(report)}\n` : `${formatSlots(report)}\n`);
    return EXIT.ok;
  }
  if (sub === 'boot') {
    const r = await bootStep(tree);
    if (r.action === 'rolled-back') io.err(`rolled back to slot ${r.slot} (${r.version}): ${r.reason}\n`);
    else if (r.action === 'trial') io.err(`slot ${r.slot} on trial: start ${r.boots} of ${r.maxBoots}\n`);
    if (values.json) io.out(`${JSON.stringify(r)}\n`);
    return EXIT.ok; // the agent must start either way: from the trial slot or the fallback
  }
  if (sub === 'verify') {
    if (!values.config) throw new UsageError('missing --config FILE (the agent config to verify against)');
    const r = await verifyStep(tree, loadAgentConfig(values.config), seconds(values.deadline, 30));
    if (values.json) io.out(`${JSON.stringify(r)}\n`);
    if (r.action === 'none') {
      io.err(`${r.detail}\n`);
      return EXIT.ok;
    }
    if (r.action === 'committed') {
      io.err(`committed slot ${r.slot} (${r.version})${r.updateMs === null ? '' : `; update took ${(r.updateMs / 1000).toFixed(1)} s from install-check to commit`}\n`);
      return EXIT.ok;
    }
    io.err(`rolled back to slot ${r.slot} (${r.version}); restart the agent. ${oneLine(r.reason)}\n`);
    return EXIT.refused;
  }
  throw new UsageError(`unknown slots command "${sub}" (show, boot, verify)`);
}

/** Runs `command` (bundle, update, slots) with the positionals after it; returns the exit code. */
export async function runImageCommand(command: string, args: string[], values: ImageOptions, io: Io = stdio): Promise<number> {
  try {
    switch (command) {
      case 'bundle':
        if (args[0] !== 'verify') throw new UsageError('usage: branchline bundle verify FILE');
        return await bundleVerify(args.slice(1), values, io);
      case 'update':
        return await update(args, values, io);
      case 'slots':
        return await slots(args, values, io);
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${err.message}\n\n${imageUsage}`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return EXIT.config;
    }
    if (err instanceof HookFailure) {
      const what = err.hook === 'install-check' ? 'refused' : `${err.hook} failed`;
      if (err.code === 'EHOOK_POSTPONED') {
        io.err(`postponed: ${oneLine(err.outcome.detail)}\n`);
        return EXIT.postponed;
      }
      io.err(`${what}: ${oneLine(err.outcome.detail)}\n`);
      return EXIT.refused;
    }
    if (err instanceof BundleError || err instanceof SlotTreeError || err instanceof KeyError) {
      io.err(`refused: ${oneLine(err.message)}\n`);
      return EXIT.refused;
    }
    throw err;
  }
}
