// Flashable-image figures: bundle size and build time of the release build, cold start
// of the single executable to the first REGISTER answered, idle RSS, and the time of
// an A/B update from install-check to commit (with a running agent and a registered
// phone, the reboot played as the service unit plays it). Idle RSS is measured twice:
// as before, right after `update` wrote the binary (the headline figure), and once more
// with the binary dropped from the page cache first (`dd iflag=nocache`), as a box
// reads it after a boot: the kernel maps more or fewer of the file's pages per fault
// depending on how they came into the cache: written by unsquashfs (xz, 1 MiB blocks)
// they sit in large folios that this kernel maps whole, ~20 MB more (docs/benchmarks.md).
//
//   node bench/image.ts                     # release build (xz), about 2-4 minutes
//   node bench/image.ts --compression lz4   # a quick look (bigger bundle, faster)
//
// It prints figures, never pass/fail; one JSON line at the end.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import YAML from 'yaml';
import { nativeAddons } from '../image/build/executable.ts';
import { packBundle } from '../image/build/pack.ts';
import { loadOrCreateSigningKey } from '../image/build/signing-key.ts';
import { stageImage } from '../image/build/stage.ts';
import type { Compression } from '../image/squashfs.ts';
import { spawnAgent, type AgentProcess } from '../image/testkit/agent-process.ts';
import { registerOnce } from '../image/testkit/sip-register.ts';
import { REPO_ROOT } from '../test/helpers/agent.ts';
import { freeUdpTcpPort } from '../test/helpers/ports.ts';

const run = promisify(execFile);
const DOMAIN = 'branchline.test';
/** The environment the service unit gives the agent (image/files/branchline.service). */
const UNIT_ENV = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', MALLOC_ARENA_MAX: '2' };

const { values: args } = parseArgs({
  options: {
    compression: { type: 'string', default: 'xz' },
    starts: { type: 'string', default: '5' },
    'idle-seconds': { type: 'string', default: '10' },
  },
});
const compression = args.compression as Compression;
const starts = Number(args.starts);
const idleSeconds = Number(args['idle-seconds']);

const work = mkdtempSync(path.join(os.tmpdir(), 'branchline-bench-image-'));
const out = path.join(work, 'out');
const slots = path.join(work, 'slots');
const current = path.join(slots, 'current', 'bin', 'branchline');
const spawned: AgentProcess[] = [];
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

function memory(pid: number): { rss: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

function config(stateDir: string, port: number): string {
  const file = path.join(work, `config-${path.basename(stateDir)}.yaml`);
  writeFileSync(
    file,
    YAML.stringify({
      site: { id: 'bench-image' },
      state_dir: stateDir,
      log: { level: 'info' },
      sip: { domain: DOMAIN, udp: `127.0.0.1:${port}`, tcp: `127.0.0.1:${port}`, auth: { algorithms: ['MD5'] } },
      extensions: [{ number: '1001', password: 'secret1001' }],
    }),
  );
  return file;
}

async function coldStart(binary: string, argsBefore: string[]): Promise<{ firstAnswerMs: number; registeredMs: number; agent: AgentProcess; port: number; configFile: string }> {
  const port = await freeUdpTcpPort();
  const configFile = config(mkdtempSync(path.join(work, 'state-')), port);
  const agent = spawnAgent(binary, [...argsBefore, 'start', '--config', configFile], { cwd: work, env: UNIT_ENV });
  spawned.push(agent);
  const times = await registerOnce({ host: '127.0.0.1', port, domain: DOMAIN, user: '1001', password: 'secret1001', timeoutMs: 30_000 });
  return { firstAnswerMs: times.firstAnswerAt - agent.spawnedAt, registeredMs: times.registeredAt - agent.spawnedAt, agent, port, configFile };
}

async function main(): Promise<void> {
  const load = os.loadavg()[0] ?? 0;
  if (load > 0.5) process.stderr.write(`warning: load average ${load.toFixed(2)}: figures will move with the other work on this machine\n`);

  // 1. The release build, exactly as `npm run build:image` runs it (into a temp out dir).
  const t0 = performance.now();
  const build = await run(process.execPath, [path.join(REPO_ROOT, 'image/build/build.ts'), '--compression', compression, '--out', out, '--version', '0.1.0'], { maxBuffer: 1 << 24 });
  const buildMs = performance.now() - t0;
  const report = JSON.parse(build.stdout) as { bundle: string; bundle_bytes: number; unpacked_bytes: number; js_bytes: number; ms: Record<string, number> };
  const pub = path.join(out, 'keys', 'signing.pub');
  await run(process.execPath, [path.join(REPO_ROOT, 'agent/cli.ts'), 'update', '--slots', slots, report.bundle, '--key', pub]);

  // 2. Cold start to the first REGISTER answered (warm page cache), fresh store each time.
  const firsts: number[] = [];
  const registered: number[] = [];
  for (let i = 0; i < starts; i++) {
    const r = await coldStart(current, []);
    firsts.push(r.firstAnswerMs);
    registered.push(r.registeredMs);
    await r.agent.stop();
  }
  const source = await coldStart(process.execPath, [path.join(REPO_ROOT, 'agent/cli.ts')]);
  const sourceFirst = source.firstAnswerMs;

  // 3. Idle RSS, one phone registered, after idle-seconds.
  const idle = await coldStart(current, []);
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const exeMem = memory(idle.agent.pid);
  const srcMem = memory(source.agent.pid);
  await source.agent.stop();

  // 4. An update 0.1.0 → 0.1.1 (same compression) with the agent running and a phone registered.
  const key = loadOrCreateSigningKey(path.join(out, 'keys', 'signing.key'), { create: false });
  const stage = path.join(work, 'stage');
  const exe = path.join(slots, 'slots', 'a', 'bin', 'branchline');
  const { unpackedSize } = stageImage({ dir: stage, executable: exe, addons: nativeAddons(REPO_ROOT), version: '0.1.1', trustedKeys: [key.publicFile], filesDir: path.join(REPO_ROOT, 'image/files'), phoneTemplatesDir: path.join(REPO_ROOT, 'provisioning/templates') });
  const next = path.join(out, 'branchline-0.1.1.bundle');
  await packBundle({ stageDir: stage, imageFile: path.join(work, 'next.squashfs'), bundleFile: next, version: '0.1.1', minVersion: '0.1.0', architecture: process.arch as 'x64', node: process.versions.node, unpackedSize, compression, signingKey: key.privateKey, mtime: 0 });
  await run(current, ['update', '--slots', slots, next, '--config', idle.configFile]);
  await idle.agent.stop();
  await run(current, ['slots', 'boot', '--slots', slots]);
  const booted = spawnAgent(current, ['start', '--config', idle.configFile], { cwd: work, env: UNIT_ENV });
  spawned.push(booted);
  const verify = await run(current, ['slots', 'verify', '--slots', slots, '--config', idle.configFile, '--deadline', '30', '--json']);
  const committed = JSON.parse(verify.stdout) as { action: string; updateMs: number | null };
  await booted.stop();
  // 5. Idle RSS again, the executable read afresh from disk (as after a boot): the
  // file-backed figure of step 3 depends on how the kernel caches the binary, and
  // `update` has just written it (docs/benchmarks.md, Image). Nothing runs from it now.
  // Written back first: the kernel does not drop dirty pages.
  await run('sync', [current]);
  await run('dd', [`if=${current}`, 'iflag=nocache', 'count=0', 'status=none']);
  const fresh = await coldStart(current, []);
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const freshMem = memory(fresh.agent.pid);
  await fresh.agent.stop();

  const journal = readFileSync(path.join(slots, 'journal.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { hook: string; version: string; ms: number });
  const steps = Object.fromEntries(journal.filter((e) => e.version === '0.1.1').map((e) => [e.hook, e.ms]));

  const figures = {
    load_average: Number(load.toFixed(2)),
    compression,
    bundle_bytes: report.bundle_bytes,
    unpacked_bytes: report.unpacked_bytes,
    js_bytes: report.js_bytes,
    build_ms: Math.round(buildMs),
    build_steps_ms: report.ms,
    cold_start_first_answer_ms: { median: Math.round(median(firsts)), all: firsts.map(Math.round) },
    cold_start_registered_ms: { median: Math.round(median(registered)), all: registered.map(Math.round) },
    cold_start_first_answer_from_sources_ms: Math.round(sourceFirst),
    idle_rss_bytes: exeMem,
    idle_rss_binary_read_afresh_bytes: freshMem,
    idle_rss_from_sources_bytes: srcMem,
    update: { result: committed.action, install_check_to_commit_ms: committed.updateMs, steps_ms: steps },
  };
  process.stdout.write(
    [
      `bundle (${compression}):                 ${mb(report.bundle_bytes)} (${mb(report.unpacked_bytes)} unpacked; agent JS ${mb(report.js_bytes)})`,
      `build time:                       ${(buildMs / 1000).toFixed(1)} s (executable ${(report.ms['executable']! / 1000).toFixed(1)} s, pack ${(report.ms['pack']! / 1000).toFixed(1)} s)`,
      `cold start → first REGISTER answered: median ${Math.round(median(firsts))} ms of ${starts} (${firsts.map(Math.round).join(', ')}); registered (200) ${Math.round(median(registered))} ms; from sources ${Math.round(sourceFirst)} ms`,
      `idle RSS after ${idleSeconds} s, 1 phone:    ${mb(exeMem.rss)} (anon ${mb(exeMem.anon)}, file-backed ${mb(exeMem.file)}); from sources ${mb(srcMem.rss)} (anon ${mb(srcMem.anon)})`,
      `  the same, binary read afresh:    ${mb(freshMem.rss)} (anon ${mb(freshMem.anon)}, file-backed ${mb(freshMem.file)})`,
      `update install-check → commit:    ${committed.updateMs === null ? committed.action : `${(committed.updateMs / 1000).toFixed(1)} s`} (${Object.entries(steps).map(([k, v]) => `${k} ${v} ms`).join(', ')}; agent stop/start between pre-reboot and verify)`,
      JSON.stringify(figures),
      '',
    ].join('\n'),
  );
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const agent of spawned) await agent.stop(2000);
    rmSync(work, { recursive: true, force: true });
  });
