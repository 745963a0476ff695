// Where an idle agent's memory goes. Starts the agent (the single executable, or its
// esbuild bundle under plain node so that V8 flags can be tried), registers one phone,
// waits, and reads /proc: RSS split into anonymous memory (V8 heap, malloc) and pages
// of the mapped executable. The bundle runs also report V8's own view (heap, external,
// array buffers) from a preload, so heap and native memory can be told apart.
//
//   node bench/idle-memory.ts --binary SLOT/bin/branchline --bundle WORK/branchline.cjs
//
// SLOT is an unpacked image (bin/branchline with node_sqlite3.node beside it);
// WORK/branchline.cjs is the bundle the build injected. Prints figures, never pass/fail.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { spawnAgent } from '../image/testkit/agent-process.ts';
import { registerOnce } from '../image/testkit/sip-register.ts';
import { freeUdpTcpPort } from '../test/helpers/ports.ts';

const { values: args } = parseArgs({
  options: {
    binary: { type: 'string' },
    bundle: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
  },
});
if (!args.binary && !args.bundle) {
  process.stderr.write('usage: node bench/idle-memory.ts --binary SLOT/bin/branchline [--bundle WORK/branchline.cjs] [--seconds 10] [--runs 3]\n');
  process.exit(2);
}
const seconds = Number(args.seconds);
const runs = Number(args.runs);
const work = mkdtempSync(path.join(os.tmpdir(), 'branchline-idle-mem-'));
const DOMAIN = 'branchline.test';
const mb = (b: number): string => (b / 1048576).toFixed(1);

// Loaded with --require into the bundle runs: V8's figures after the idle time.
const PRELOAD = `
const v8 = require('node:v8');
setTimeout(() => {
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size]));
  require('node:fs').writeFileSync(process.env.BL_MEM_OUT, JSON.stringify({ ...m, spaces }));
}, Number(process.env.BL_MEM_AFTER_MS)).unref();
`;
const preload = path.join(work, 'preload.cjs');
writeFileSync(preload, PRELOAD);

// The bundle finds its native addon beside process.execPath and its package.json one
// folder up, as the executable does in its slot: give this node such a slot.
let bundleNode = process.execPath;
if (args.bundle) {
  if (!args.binary) throw new Error('--bundle needs --binary too: the slot it names holds the native addon');
  const slotBin = path.join(work, 'slot', 'bin');
  mkdirSync(slotBin, { recursive: true });
  bundleNode = path.join(slotBin, 'node');
  copyFileSync(process.execPath, bundleNode);
  copyFileSync(path.join(path.dirname(args.binary), 'node_sqlite3.node'), path.join(slotBin, 'node_sqlite3.node'));
  copyFileSync(path.join(path.dirname(args.binary), '..', 'package.json'), path.join(work, 'slot', 'package.json'));
}

function proc(pid: number): Record<string, number> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') };
}

interface Variant {
  name: string;
  /** 'binary' runs the executable; 'bundle' runs node [flags] --require preload bundle. */
  kind: 'binary' | 'bundle';
  flags?: string[];
  env?: Record<string, string>;
}

async function measure(v: Variant): Promise<Record<string, number>> {
  const port = await freeUdpTcpPort();
  const stateDir = mkdtempSync(path.join(work, 'state-'));
  const config = path.join(stateDir, 'config.yaml');
  writeFileSync(
    config,
    YAML.stringify({
      site: { id: 'idle' },
      state_dir: stateDir,
      log: { level: 'info' },
      sip: { domain: DOMAIN, udp: `127.0.0.1:${port}`, tcp: `127.0.0.1:${port}`, auth: { algorithms: ['MD5'] } },
      extensions: [{ number: '1001', password: 'secret1001' }],
      mqtt: { embedded: { listen: `127.0.0.1:${await freeUdpTcpPort()}` } },
    }),
  );
  const out = path.join(stateDir, 'v8.json');
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', BL_MEM_OUT: out, BL_MEM_AFTER_MS: String(seconds * 1000), ...v.env };
  const agent =
    v.kind === 'binary'
      ? spawnAgent(args.binary as string, ['start', '--config', config], { cwd: work, env })
      : spawnAgent(bundleNode, [...(v.flags ?? []), '--require', preload, args.bundle as string, 'start', '--config', config], { cwd: work, env });
  try {
    await registerOnce({ host: '127.0.0.1', port, domain: DOMAIN, user: '1001', password: 'secret1001', timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, seconds * 1000 + 300));
    const m = proc(agent.pid);
    if (v.kind === 'bundle') {
      const v8 = JSON.parse(readFileSync(out, 'utf8')) as Record<string, number>;
      return { ...m, heapUsed: v8['heapUsed'] ?? NaN, heapTotal: v8['heapTotal'] ?? NaN, external: v8['external'] ?? NaN, arrayBuffers: v8['arrayBuffers'] ?? NaN };
    }
    return m;
  } finally {
    await agent.stop();
  }
}

const variants: Variant[] = [];
if (args.binary) {
  variants.push({ name: 'executable', kind: 'binary' }, { name: 'executable, MALLOC_ARENA_MAX=2', kind: 'binary', env: { MALLOC_ARENA_MAX: '2' } });
}
if (args.bundle) {
  const base = ['--max-semi-space-size=4'];
  variants.push(
    { name: 'bundle (as built)', kind: 'bundle', flags: base },
    { name: 'bundle, MALLOC_ARENA_MAX=2', kind: 'bundle', flags: base, env: { MALLOC_ARENA_MAX: '2' } },
    { name: 'bundle, --max-old-space-size=64', kind: 'bundle', flags: [...base, '--max-old-space-size=64'] },
    { name: 'bundle, --max-semi-space-size=1', kind: 'bundle', flags: ['--max-semi-space-size=1'] },
    { name: 'bundle, --v8-pool-size=1, MALLOC_ARENA_MAX=2', kind: 'bundle', flags: [...base, '--v8-pool-size=1'], env: { MALLOC_ARENA_MAX: '2' } },
    { name: 'bundle, --lite-mode (no JIT: reference only)', kind: 'bundle', flags: [...base, '--lite-mode'] },
  );
}

const results: Array<{ variant: string; runs: Array<Record<string, number>> }> = [];
for (const v of variants) {
  const rs: Array<Record<string, number>> = [];
  for (let i = 0; i < runs; i++) rs.push(await measure(v));
  results.push({ variant: v.name, runs: rs });
  const med = (k: string): number => [...rs.map((r) => r[k] ?? NaN)].sort((a, b) => a - b)[Math.floor(rs.length / 2)] ?? NaN;
  const v8 = v.kind === 'bundle' ? `; V8 heap used ${mb(med('heapUsed'))} of ${mb(med('heapTotal'))}, external ${mb(med('external'))}` : '';
  process.stdout.write(`${v.name.padEnd(48)} RSS ${mb(med('rss'))} MiB (anon ${mb(med('anon'))}, file ${mb(med('file'))})${v8}  [median of ${runs}]\n`);
}
process.stdout.write(`${JSON.stringify({ seconds, results })}\n`);
rmSync(work, { recursive: true, force: true });
