// The whole life of the flashable image, with the real single executable: the
// documented build makes a signed bundle; a slot tree is flashed with it; the agent
// runs from the slot and a phone (SIPp) registers; a second bundle installs, boots and
// commits; a broken third one fails post-boot verify, rolls back, and the previous
// version serves the phone again. The executable is built once for the whole file
// (lz4 instead of xz to keep the suite fast; same code path otherwise).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { readBundleParts } from '../../image/bundle/read.ts';
import { nativeAddons } from '../../image/build/executable.ts';
import { packBundle } from '../../image/build/pack.ts';
import { loadOrCreateSigningKey } from '../../image/build/signing-key.ts';
import { stageImage } from '../../image/build/stage.ts';
import type { SlotsReport } from '../../image/slots/view.ts';
import { spawnAgent, type AgentProcess } from '../../image/testkit/agent-process.ts';
import { REPO_ROOT } from '../helpers/agent.ts';
import { freeUdpTcpPort } from '../helpers/ports.ts';
import { assertAllSucceeded, runSipp, SIPP_AGENT_CONFIG, writeUsersFile } from '../helpers/sipp.ts';

const execFileP = promisify(execFile);
const DOMAIN = 'branchline.test';

let dir: string;
let out: string;
let slots: string;
let configFile: string;
let usersFile: string;
let sipPort: number;
let phonePort: number;
let bundle010: string;
let bundle020: string;
let bundle030broken: string;
const agents: AgentProcess[] = [];

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; never throws on a non-zero exit (the exit code is what we test). */
async function runCmd(file: string, args: string[], timeoutMs = 120_000): Promise<Ran> {
  try {
    const { stdout, stderr } = await execFileP(file, args, { cwd: dir, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

/** The installed executable, through the boot pointer, as the service unit runs it. */
const current = (): string => path.join(slots, 'current', 'bin', 'branchline');
const branchline = (args: string[], timeoutMs?: number): Promise<Ran> => runCmd(current(), args, timeoutMs);

async function slotsReport(): Promise<SlotsReport> {
  const r = await branchline(['slots', '--slots', slots, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as SlotsReport;
}

function startAgentFromSlot(): AgentProcess {
  const agent = spawnAgent(current(), ['start', '--config', configFile], { cwd: dir });
  agents.push(agent);
  return agent;
}

async function register(): Promise<void> {
  const r = await runSipp({
    scenario: 'register-auth',
    remote: `127.0.0.1:${sipPort}`,
    usersFile,
    calls: 1,
    localPort: phonePort,
    authUri: DOMAIN,
    set: { domain: DOMAIN, expires: 600 },
    timeoutMs: 15_000,
  });
  assertAllSucceeded(r, 1, { allowRetransmissions: true });
}

async function registrations(): Promise<string[]> {
  const r = await branchline(['status', '--config', configFile, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { registrations: Array<{ extension: string }> }).registrations.map((x) => x.extension);
}

/** What a reboot does on a slot tree: stop the agent, run the boot step, start from `current`. */
async function reboot(running: AgentProcess, opts: { brokenBefore?: boolean } = {}): Promise<AgentProcess> {
  const stopped = await running.stop();
  // The stand-in for a broken agent (sleep) dies of the signal; a real agent exits 0.
  if (!opts.brokenBefore) assert.equal(stopped, 0, 'the agent stops cleanly on SIGTERM');
  const boot = await branchline(['slots', 'boot', '--slots', slots]);
  assert.equal(boot.code, 0, boot.stderr);
  return startAgentFromSlot();
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'branchline-image-'));
  out = path.join(dir, 'out');
  slots = path.join(dir, 'slots');
  sipPort = await freeUdpTcpPort();
  phonePort = await freeUdpTcpPort();
  configFile = path.join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    YAML.stringify({
      site: { id: 'image-test' },
      state_dir: path.join(dir, 'state'),
      log: { level: 'info' },
      sip: { domain: DOMAIN, udp: `127.0.0.1:${sipPort}`, tcp: `127.0.0.1:${sipPort}`, ...SIPP_AGENT_CONFIG.sip },
      extensions: [{ number: '1001', password: 'secret1001' }],
    }),
  );
  usersFile = await writeUsersFile(path.join(dir, 'users.csv'), [{ user: '1001', password: 'secret1001' }]);

  // The documented build (npm run build:image runs this script), fast compression.
  const build = await runCmd(process.execPath, [path.join(REPO_ROOT, 'image/build/build.ts'), '--version', '0.1.0', '--compression', 'lz4', '--out', out], 300_000);
  assert.equal(build.code, 0, `build failed: ${build.stderr}`);
  bundle010 = (JSON.parse(build.stdout) as { bundle: string }).bundle;
});

after(async () => {
  for (const a of agents) await a.stop(2000);
  rmSync(dir, { recursive: true, force: true });
});

describe('flashable image', () => {
  it('builds a signed bundle that verifies with the build key and is refused once altered', async () => {
    assert.equal(path.basename(bundle010), `branchline-0.1.0-${process.arch}.bundle`);
    const pub = path.join(out, 'keys', 'signing.pub');
    const good = await runCmd(process.execPath, [path.join(REPO_ROOT, 'agent/cli.ts'), 'bundle', 'verify', bundle010, '--key', pub]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, new RegExp(`^ok: branchline 0\\.1\\.0 for ${process.arch}, installs over 0\\.0\\.0 or later, signed by key [0-9a-f]{16}`));

    const parts = await readBundleParts(bundle010);
    const bytes = readFileSync(bundle010);
    bytes[parts.image.offset + 1000] = (bytes[parts.image.offset + 1000] as number) ^ 1;
    const bad = path.join(dir, 'tampered.bundle');
    writeFileSync(bad, bytes);
    const refused = await runCmd(process.execPath, [path.join(REPO_ROOT, 'agent/cli.ts'), 'bundle', 'verify', bad, '--key', pub]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^refused: image sha256 [0-9a-f]{16}… does not match the signed [0-9a-f]{16}…: the image was altered\n$/);
  });

  it('flashes the bundle into an empty slot tree; the executable runs every command from its slot', async () => {
    const flash = await runCmd(process.execPath, [path.join(REPO_ROOT, 'agent/cli.ts'), 'update', '--slots', slots, bundle010, '--key', path.join(out, 'keys', 'signing.pub')]);
    assert.equal(flash.code, 0, flash.stderr);
    assert.equal((await branchline(['--version'])).stdout, 'branchline 0.1.0\n');
    assert.equal((await branchline(['check-config', '--config', configFile])).stdout, 'config ok\n');
    // The slot's own keys verify bundles: no --key needed from the executable.
    const verify = await branchline(['bundle', 'verify', bundle010]);
    assert.equal(verify.code, 0, verify.stderr);
    const tooOld = await branchline(['bundle', 'verify', bundle010, '--slots', slots]);
    assert.equal(tooOld.code, 1);
    assert.equal(tooOld.stderr, 'refused: version 0.1.0 is not newer than the installed 0.1.0 (anti-rollback)\n');
    const report = await slotsReport();
    assert.deepEqual([report.active, report.slots[0]?.state, report.slots[0]?.version], ['a', 'committed', '0.1.0']);

    // The next two releases, made from the executable now installed: 0.2.0 as built,
    // and a broken 0.3.0 whose agent starts but never answers SIP.
    const key = loadOrCreateSigningKey(path.join(out, 'keys', 'signing.key'), { create: false });
    const exe = path.join(slots, 'slots', 'a', 'bin', 'branchline');
    const make = async (version: string, broken: boolean): Promise<string> => {
      const stage = path.join(dir, `stage-${version}`);
      const { unpackedSize } = stageImage({ dir: stage, executable: exe, addons: nativeAddons(REPO_ROOT), version, trustedKeys: [key.publicFile], filesDir: path.join(REPO_ROOT, 'image/files'), phoneTemplatesDir: path.join(REPO_ROOT, 'provisioning/templates') });
      if (broken) {
        renameSync(path.join(stage, 'bin/branchline'), path.join(stage, 'bin/branchline.real'));
        writeFileSync(path.join(stage, 'bin/branchline'), '#!/bin/sh\n[ "$1" = start ] && exec sleep 3600\nexec "$(dirname "$0")/branchline.real" "$@"\n');
        chmodSync(path.join(stage, 'bin/branchline'), 0o755);
      }
      const file = path.join(out, `branchline-${version}.bundle`);
      await packBundle({ stageDir: stage, imageFile: path.join(dir, `${version}.squashfs`), bundleFile: file, version, minVersion: '0.1.0', architecture: process.arch as 'x64', node: process.versions.node, unpackedSize, compression: 'lz4', signingKey: key.privateKey, mtime: 0 });
      rmSync(stage, { recursive: true, force: true });
      return file;
    };
    bundle020 = await make('0.2.0', false);
    bundle030broken = await make('0.3.0', true);
  });

  it('runs the agent from the slot and registers a phone; 0.2.0 installs, boots, passes verify and commits', async () => {
    let agent = startAgentFromSlot();
    await agent.waitFor((l) => l['event'] === 'agent.ready', 20_000);
    await register();
    assert.deepEqual(await registrations(), ['1001']);

    const update = await branchline(['update', '--slots', slots, bundle020, '--config', configFile]);
    assert.equal(update.code, 0, update.stderr);
    assert.match(update.stderr, /installed branchline 0\.2\.0 into slot b; it starts next, on trial \(fallback: slot a 0\.1\.0\)/);
    assert.ok(agent.running(), 'the update does not disturb the running agent');

    agent = await reboot(agent);
    await agent.waitFor((l) => l['event'] === 'agent.ready', 20_000);
    assert.equal((await branchline(['--version'])).stdout, 'branchline 0.2.0\n');
    const verify = await branchline(['slots', 'verify', '--slots', slots, '--config', configFile, '--deadline', '20']);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stderr, /^committed slot b \(0\.2\.0\); update took [0-9.]+ s from install-check to commit\n$/);
    const report = await slotsReport();
    assert.equal(report.active, 'b');
    assert.equal(report.trial, null);
    assert.deepEqual(report.slots.map((s) => [s.name, s.state, s.version]), [
      ['a', 'committed', '0.1.0'],
      ['b', 'committed', '0.2.0'],
    ]);
    assert.deepEqual(await registrations(), ['1001'], 'the phone is still registered after the update');
  });

  it('a broken 0.3.0 fails post-boot verify, rolls back, and 0.2.0 serves the phone again', async () => {
    let agent = agents.at(-1) as AgentProcess;
    const update = await branchline(['update', '--slots', slots, bundle030broken, '--config', configFile]);
    assert.equal(update.code, 0, update.stderr);

    agent = await reboot(agent); // the broken agent: runs, never listens
    const verify = await branchline(['slots', 'verify', '--slots', slots, '--config', configFile, '--deadline', '3']);
    assert.equal(verify.code, 1);
    assert.match(verify.stderr, /^rolled back to slot b \(0\.2\.0\); restart the agent\. post-boot verify failed: SIP is not answering: no answer from 127\.0\.0\.1:\d+ within \d+ ms\n$/);
    const report = await slotsReport();
    assert.equal(report.active, 'b');
    assert.deepEqual(report.slots.map((s) => [s.name, s.state, s.version]), [
      ['a', 'rolled-back', '0.3.0'],
      ['b', 'committed', '0.2.0'],
    ]);
    assert.match(report.slots[0]?.reason ?? '', /SIP is not answering/);

    // The service manager restarts the agent: it comes back from slot b.
    agent = await reboot(agent, { brokenBefore: true });
    await agent.waitFor((l) => l['event'] === 'agent.ready', 20_000);
    assert.equal((await branchline(['--version'])).stdout, 'branchline 0.2.0\n');
    assert.deepEqual(await registrations(), ['1001'], 'the binding survived both switches');
    await register();

    const hooks = readFileSync(path.join(slots, 'journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { hook: string; status: string; version: string | null });
    const broken = hooks.filter((h) => h.version === '0.3.0').map((h) => `${h.hook}:${h.status}`);
    assert.deepEqual(broken, ['install-check:ok', 'pre-install:ok', 'install:ok', 'post-install:ok', 'pre-reboot:ok', 'switch:ok', 'boot:ok', 'post-boot-verify:failed', 'rollback:ok']);
  });
});
