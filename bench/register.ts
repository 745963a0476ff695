// Registration benchmark: the highest sustained rate of authenticated REGISTERs
// (REGISTER → 401 → REGISTER with MD5 digest → 200, 10,000 distinct users) that a
// registrar answers with no failed registration and under 1 % retransmissions, for
// Branchline and for Kamailio 5.6 side by side on the same machine.
//
//   node bench/register.ts                       # all targets and phases, ~8-11 minutes
//   node bench/register.ts --quick               # shorter trials and phases, ~4 minutes
//   node bench/register.ts --targets agent --phases memory,cold-start
//   node bench/register.ts --soak 300 --rate 1000   # memory over a long run (agent)
//
// Phases (--phases): rate (the search above, per target), memory (agent RSS with all
// users bound while sustaining --memory-rate), overload (the agent offered twice its
// rate: load shedding), cold-start (spawn to first 401, median of runs).
//
// It prints figures, never pass/fail. See bench/README.md for what each one means.
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startAgent, type AgentHandle, type ExtensionSpec } from '../test/helpers/agent.ts';
import { kamailioPassword, processGroupPids, startKamailio, type KamailioHandle } from '../test/helpers/kamailio.ts';
import { freeUdpTcpPort } from '../test/helpers/ports.ts';
import { registerRequest, UdpPeer } from '../test/helpers/sip-client.ts';
import { percentile, runSipp, unexpectedResponses, writeUsersFile, type SippResult } from '../test/helpers/sipp.ts';
import { memKb, sampleProcessCpu, sampleUsage, waitIdle, type Sampled, type Usage } from './lib/process-usage.ts';

const DOMAIN = 'branchline.test';
const TARGET_NAMES = ['agent', 'kamailio1', 'kamailio-per-core'] as const;
type TargetName = (typeof TARGET_NAMES)[number];

const { values: args } = parseArgs({
  options: {
    targets: { type: 'string', default: TARGET_NAMES.join(',') },
    users: { type: 'string', default: '10000' },
    'trial-seconds': { type: 'string', default: '10' },
    'final-seconds': { type: 'string', default: '20' },
    'start-rate': { type: 'string', default: '1000' },
    // Rate of the uncounted pass that binds every user before the search; 0 = none.
    'warm-up-rate': { type: 'string', default: '1000' },
    'max-rate': { type: 'string', default: '64000' },
    soak: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    'no-cold-start': { type: 'boolean', default: false },
    'agent-log-level': { type: 'string', default: 'info' },
    phases: { type: 'string', default: 'rate,memory,overload,cold-start' },
    quick: { type: 'boolean', default: false },
    'memory-rate': { type: 'string', default: '3000' },
    'memory-seconds': { type: 'string' },
    'overload-rate': { type: 'string' },
    'overload-seconds': { type: 'string', default: '10' },
    'cold-start-runs': { type: 'string' },
    // Node's options for the agent in place of the launchers' memory flags ("" for
    // none): what the heap flags cost in CPU per registration.
    'agent-node-flags': { type: 'string' },
  },
});

function intArg(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, not ${JSON.stringify(text)}`);
  return n;
}

const QUICK = args.quick === true;
const USERS = intArg('users', args.users);
// --quick shortens what was not given explicitly.
const TRIAL_SECONDS = intArg('trial-seconds', QUICK && process.argv.every((a) => !a.startsWith('--trial-seconds')) ? '3' : args['trial-seconds']);
const FINAL_SECONDS = intArg('final-seconds', QUICK && process.argv.every((a) => !a.startsWith('--final-seconds')) ? '6' : args['final-seconds']);
const MEMORY_RATE = intArg('memory-rate', args['memory-rate']);
const MEMORY_SECONDS = intArg('memory-seconds', args['memory-seconds'] ?? (QUICK ? '15' : '30'));
const OVERLOAD_SECONDS = intArg('overload-seconds', args['overload-seconds']);
const COLD_START_RUNS = intArg('cold-start-runs', args['cold-start-runs'] ?? (QUICK ? '3' : '5'));
const PHASE_NAMES = ['rate', 'memory', 'overload', 'cold-start'] as const;
type PhaseName = (typeof PHASE_NAMES)[number];
const PHASES = new Set((args.phases ?? '').split(',').map((p) => p.trim()).filter(Boolean));
for (const p of PHASES) if (!(PHASE_NAMES as readonly string[]).includes(p)) throw new Error(`unknown phase ${p}; known: ${PHASE_NAMES.join(', ')}`);
if (args['no-cold-start']) PHASES.delete('cold-start');
const phase = (p: PhaseName): boolean => PHASES.has(p);
const START_RATE = intArg('start-rate', args['start-rate']);
const WARM_UP_RATE = args['warm-up-rate'] === '0' ? 0 : intArg('warm-up-rate', args['warm-up-rate']);
const MAX_RATE = intArg('max-rate', args['max-rate']);
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const AGENT_LOG_LEVEL = LOG_LEVELS.find((l) => l === args['agent-log-level']);
const AGENT_NODE_FLAGS = args['agent-node-flags'] === undefined ? undefined : args['agent-node-flags'].split(/\s+/).filter((f) => f !== '');
if (!AGENT_LOG_LEVEL) throw new Error(`--agent-log-level must be one of ${LOG_LEVELS.join(', ')}`);
const CPUS = os.availableParallelism();
// SIPp on core 0, the server on core 1 (when there are two cores to split).
const SIPP_CPU = CPUS >= 2 ? 0 : undefined;
const SERVER_CPU = CPUS >= 2 ? 1 : undefined;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface Target extends Sampled {
  name: TargetName;
  label: string;
  port: number;
  stop(): Promise<void>;
}

// ---------------------------------------------------------------- targets

function extensions(): ExtensionSpec[] {
  return Array.from({ length: USERS }, (_, i) => {
    const number = String(10000 + i);
    // The same derived password as Kamailio's script: one injection file for all.
    return { number, password: kamailioPassword(number) };
  });
}

const AGENT_BENCH_CONFIG = {
  sip: {
    // SIPp 3.6.1 answers MD5 challenges only (test/helpers/sipp.ts).
    auth: { algorithms: ['MD5'] },
    // One load generator on one address: exempt from per-source rate limits.
    security: { trusted_networks: ['127.0.0.0/8'] },
  },
};

async function startTarget(name: TargetName, port?: number, stateDir?: string): Promise<Target & { spawnedAt: number }> {
  if (name === 'agent') {
    const agent: AgentHandle = await startAgent({
      ...(stateDir !== undefined ? { stateDir } : {}),
      extensions: extensions(),
      extraConfig: AGENT_BENCH_CONFIG,
      // The shipped level (info) logs a line per registration; Kamailio at debug=1
      // logs none. --agent-log-level warn shows what the logging costs.
      logLevel: AGENT_LOG_LEVEL,
      discardStdout: true,
      readyTimeoutMs: 120_000,
      ...(AGENT_NODE_FLAGS !== undefined ? { nodeFlags: AGENT_NODE_FLAGS } : {}),
      ...(SERVER_CPU !== undefined ? { cpu: SERVER_CPU } : {}),
      ...(port !== undefined ? { udpPort: port, tcpPort: port } : {}),
    });
    return {
      name,
      label: `Branchline agent (1 process, SQLite, log ${AGENT_LOG_LEVEL})`,
      port: agent.udpPort,
      pids: async () => (agent.running() ? [agent.pid] : []),
      pss: false,
      spawnedAt: agent.spawnedAt,
      stop: async () => {
        await agent.cleanup();
      },
    };
  }
  const perCore = name === 'kamailio-per-core';
  const k: KamailioHandle = await startKamailio({
    workers: perCore ? CPUS : 1,
    domain: DOMAIN,
    sharedMemoryMb: 512,
    ...(!perCore && SERVER_CPU !== undefined ? { cpus: String(SERVER_CPU) } : {}),
    ...(port !== undefined ? { port } : {}),
  });
  return {
    name,
    label: perCore ? `Kamailio 5.6, ${CPUS} UDP workers (all cores)` : 'Kamailio 5.6, 1 UDP worker',
    port: k.port,
    pids: () => processGroupPids(k.pid),
    pss: true,
    spawnedAt: k.spawnedAt,
    stop: () => k.stop(),
  };
}

// ---------------------------------------------------------------- trials

interface Trial {
  rate: number;
  seconds: number;
  achievedRate: number;
  successful: number;
  failed: number;
  retransmissionPercent: number;
  passed: boolean;
  /** SIPp could not generate the rate asked for: the client, not the server, was the limit. */
  clientLimited: boolean;
  usage: Usage;
  /** SIPp's own CPU, % of its core: near 100 means the load generator is the limit. */
  sippCpuPercent: number;
  failures: Record<string, number>;
  /** What SIPp got instead of what it expected, e.g. { "expected 200, got 500": 3 }. */
  unexpected: Record<string, number>;
  /** Seconds the server then took to go idle (backlog drained), or -1 if it did not within 30 s. */
  drainSeconds: number;
  challengeP50Ms?: number;
  challengeP99Ms?: number;
  registerP50Ms?: number;
  registerP99Ms?: number;
}

async function trial(target: Target, usersFile: string, rate: number, seconds: number, rtt: boolean): Promise<Trial> {
  // A fresh port per trial: SIPp's [branch] is the call number and message index, the
  // same in every SIPp process, so a trial from the previous trial's address:port
  // would send REGISTERs whose branch the agent still holds a completed transaction
  // for (Timer J, 32 s) and be answered the old 200 without any work.
  const sippPort = await freeUdpTcpPort();
  const calls = Math.round(rate * seconds);
  const sampler = sampleUsage(target);
  const sippCpu = sampleProcessCpu();
  const r: SippResult = await runSipp({
    onSpawn: (pid) => sippCpu.onSpawn(pid),
    scenario: 'register-auth',
    remote: `127.0.0.1:${target.port}`,
    usersFile,
    localPort: sippPort,
    calls,
    rate,
    // Room for calls in flight when the server lags (the lag then shows as retransmissions).
    limit: Math.min(10_000, Math.max(2000, rate * 2)),
    authUri: DOMAIN,
    set: { domain: DOMAIN, expires: 3600 },
    timeoutMs: (seconds + 40) * 1000,
    traceRtt: rtt,
    ...(SIPP_CPU !== undefined ? { cpu: SIPP_CPU } : {}),
    extraArgs: ['-max_recv_loops', '10000', '-max_sched_loops', '10000', '-buff_size', String(4 << 20)],
  });
  const usage = await sampler.stop();
  const sippCpuPercent = sippCpu.stop();
  // Two requests per registration: the first REGISTER and the one with credentials.
  const retransmissionPercent = r.totalCalls > 0 ? (r.retransmissions / (2 * r.totalCalls)) * 100 : 0;
  const t: Trial = {
    rate,
    seconds,
    achievedRate: r.callRate,
    successful: r.successful,
    failed: r.failed,
    retransmissionPercent,
    passed: r.exitCode === 0 && r.failed === 0 && r.successful === calls && retransmissionPercent < 1,
    clientLimited: r.callRate < rate * 0.95 && sippCpuPercent > 90,
    usage,
    sippCpuPercent,
    failures: r.failures,
    unexpected: unexpectedResponses(r),
    drainSeconds: await waitIdle(target),
  };
  if (rtt) {
    const challenge = r.responseTimes.filter((x) => x.rtd === 1).map((x) => x.ms);
    const register = r.responseTimes.filter((x) => x.rtd === 2).map((x) => x.ms);
    t.challengeP50Ms = percentile(challenge, 50);
    t.challengeP99Ms = percentile(challenge, 99);
    t.registerP50Ms = percentile(register, 50);
    t.registerP99Ms = percentile(register, 99);
  }
  log(
    `  ${target.name} @ ${rate}/s for ${seconds}s: ${t.passed ? 'ok ' : 'NO '} achieved ${t.achievedRate.toFixed(0)}/s, ` +
      `${t.successful} ok, ${t.failed} failed, ${t.retransmissionPercent.toFixed(2)} % retrans, ` +
      `cpu ${t.usage.cpuPercent.toFixed(0)} % (SIPp ${t.sippCpuPercent.toFixed(0)} %), mem ${t.usage.memMb.toFixed(0)} MB${t.clientLimited ? ' (SIPp at its ceiling)' : ''}` +
      (Object.keys(t.unexpected).length ? ` ${JSON.stringify(t.unexpected)}` : Object.keys(t.failures).length ? ` ${JSON.stringify(t.failures)}` : '') +
      (t.drainSeconds > 1.5 ? `; idle again after ${t.drainSeconds.toFixed(0)} s` : t.drainSeconds < 0 ? '; still busy 30 s later' : ''),
  );
  return t;
}

interface TargetResult {
  name: TargetName;
  label: string;
  maxRate: number;
  final?: Trial;
  trials: Trial[];
  /** True when the search stopped because SIPp, not the server, hit its ceiling. */
  clientLimited: boolean;
  error?: string;
}

/** Doubles the rate until a trial fails, then bisects to within 15 %; confirms with a longer run. */
async function findMaxRate(target: Target, usersFile: string): Promise<TargetResult> {
  const trials: Trial[] = [];
  let good = 0;
  let bad = 0;
  let clientLimited = false;
  // Warm-up, not counted: every user binds once. The trials then measure what the
  // issue asks for, a sustained rate with 10,000 bindings (refreshes). Without it the
  // first trial also carries the agent's start-up (subsystems that start after SIP
  // listens) and the first binding of each user (an event forwarded to the
  // controller), and one unlucky first trial sent the whole search down.
  if (WARM_UP_RATE > 0) {
    log(`  ${target.name}: warm-up, every user binds once at ${WARM_UP_RATE}/s (not counted)`);
    await trial(target, usersFile, WARM_UP_RATE, Math.ceil(USERS / WARM_UP_RATE), false);
  }
  // Up by doubling from the start rate; down by halving if even that fails.
  for (let rate = START_RATE; rate <= MAX_RATE && rate >= 50; ) {
    const t = await trial(target, usersFile, rate, TRIAL_SECONDS, false);
    trials.push(t);
    if (t.passed) {
      good = rate;
      if (t.clientLimited || bad > 0) {
        clientLimited = t.clientLimited;
        break;
      }
      rate *= 2;
    } else {
      bad = rate;
      if (good > 0) break;
      rate = Math.floor(rate / 2);
    }
  }
  while (bad > 0 && good > 0 && bad - good > good * 0.15 && !clientLimited) {
    const rate = Math.round((good + bad) / 2 / 100) * 100;
    if (rate <= good || rate >= bad) break;
    const t = await trial(target, usersFile, rate, TRIAL_SECONDS, false);
    trials.push(t);
    if (t.passed) {
      good = rate;
      clientLimited = t.clientLimited;
    } else bad = rate;
  }
  // Confirm for longer, with response times; step down 15 % at a time if it fails.
  let final: Trial | undefined;
  for (let rate = good, attempts = 0; rate >= 50 && attempts < 5; rate = Math.round((rate * 0.85) / 50) * 50, attempts++) {
    final = await trial(target, usersFile, rate, FINAL_SECONDS, true);
    trials.push(final);
    if (final.passed) break;
  }
  // A failure while SIPp fell short of its rate with its own core saturated is
  // SIPp's ceiling, not the server's: the rate found is then a lower bound.
  clientLimited ||= trials.some((t) => !t.passed && t.clientLimited);
  const result: TargetResult = { name: target.name, label: target.label, maxRate: final?.passed ? final.rate : 0, trials, clientLimited };
  if (final) result.final = final;
  return result;
}

// ---------------------------------------------------------------- cold start

interface ColdStart {
  name: string;
  /** Spawn to the first 401 seen by a client sending a REGISTER every 5 ms: the median of the runs. */
  firstAnswerMs: number;
  runsMs: number[];
}

/** Cold start `runs` times (a fresh state each time, or the given state directory); the median. */
async function coldStarts(name: TargetName, label: string, runs: number, stateDir?: string): Promise<ColdStart> {
  const runsMs: number[] = [];
  for (let i = 0; i < runs; i++) runsMs.push(await coldStart(name, label, stateDir));
  log(`  cold start ${label}: ${runsMs.map((ms) => ms.toFixed(0)).join(', ')} ms`);
  return { name: label, firstAnswerMs: median(runsMs), runsMs };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

async function coldStart(name: TargetName, label: string, stateDir?: string): Promise<number> {
  const port = await freeUdpTcpPort();
  const peer = await UdpPeer.open();
  let firstAt = 0;
  const probe = registerRequest({ user: '10000', domain: DOMAIN, localPort: peer.port, callId: 'cold-start-probe' });
  const timer = setInterval(() => peer.send(probe, port), 5);
  const answered = (async () => {
    for (;;) {
      const m = await peer.next(200_000);
      if (m === undefined) return;
      if (/^SIP\/2\.0 401 /.test(m)) {
        firstAt = performance.now();
        return;
      }
    }
  })();
  let target: (Target & { spawnedAt: number }) | undefined;
  try {
    target = await startTarget(name, port, stateDir);
    await Promise.race([answered, new Promise((r) => setTimeout(r, 10_000))]);
    if (firstAt === 0) throw new Error(`${label}: no 401 within 10 s of starting`);
    return firstAt - target.spawnedAt;
  } finally {
    clearInterval(timer);
    peer.close();
    await target?.stop();
  }
}

// ---------------------------------------------------------------- memory and overload

interface LoadRun {
  rate: number;
  seconds: number;
  successful: number;
  failed: number;
  /** Calls answered 503 (load shedding) instead of 401 or 200. */
  shed: number;
  retransmissionPercent: number;
  /** Completed registrations per second over the run. */
  servedPerSecond: number;
  cpuPercent: number;
  rssIdleMb: number;
  /** Median RSS over the second half of the run (the first holds the first pass over the users). */
  rssMedianMb: number;
  rssMaxMb: number;
  survived: boolean;
  unexpected: Record<string, number>;
}

/** SIPp at `rate` against a fresh agent (on `stateDir` if given), RSS every second. */
async function loadRun(usersFile: string, rate: number, seconds: number, stateDir?: string): Promise<LoadRun> {
  const target = await startTarget('agent', undefined, stateDir);
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const rssIdleMb = (await memKb(target)) / 1024;
    const samples: Array<{ t: number; mb: number }> = [];
    const sampler = sampleUsage(target, (t, mb) => samples.push({ t, mb }));
    const r = await runSipp({
      scenario: 'register-auth',
      remote: `127.0.0.1:${target.port}`,
      usersFile,
      calls: rate * seconds,
      rate,
      limit: Math.min(10_000, Math.max(2000, rate * 2)),
      authUri: DOMAIN,
      set: { domain: DOMAIN, expires: 3600 },
      timeoutMs: (seconds + 60) * 1000,
      ...(SIPP_CPU !== undefined ? { cpu: SIPP_CPU } : {}),
      extraArgs: ['-max_recv_loops', '10000', '-max_sched_loops', '10000', '-buff_size', String(4 << 20)],
    });
    const usage = await sampler.stop();
    const secondHalf = samples.filter((x) => x.t >= seconds / 2 && x.t <= seconds).map((x) => x.mb);
    const unexpected = unexpectedResponses(r);
    const shed = Object.entries(unexpected).filter(([k]) => k.endsWith('got 503')).reduce((a, [, n]) => a + n, 0);
    return {
      rate,
      seconds,
      successful: r.successful,
      failed: r.failed,
      shed,
      retransmissionPercent: r.totalCalls > 0 ? (r.retransmissions / (2 * r.totalCalls)) * 100 : 0,
      servedPerSecond: r.elapsedSeconds > 0 ? r.successful / r.elapsedSeconds : 0,
      cpuPercent: usage.cpuPercent,
      rssIdleMb,
      rssMedianMb: secondHalf.length > 0 ? median(secondHalf) : usage.memMb,
      rssMaxMb: usage.memMaxMb,
      survived: (await target.pids()).length > 0,
      unexpected,
    };
  } finally {
    await target.stop();
  }
}

function describeLoadRun(r: LoadRun): string {
  return (
    `${r.successful} registered, ${r.failed} failed (${r.shed} of them answered 503), ${r.retransmissionPercent.toFixed(2)} % retrans, ` +
    `${r.servedPerSecond.toFixed(0)} registrations/s served, agent CPU ${r.cpuPercent.toFixed(0)} %, ` +
    `RSS idle ${r.rssIdleMb.toFixed(0)} MB, median of the second half ${r.rssMedianMb.toFixed(0)} MB, max ${r.rssMaxMb.toFixed(0)} MB` +
    (r.survived ? '' : '; THE AGENT EXITED')
  );
}

// ---------------------------------------------------------------- soak

/** Least-squares slope of RSS over time, in MB per minute (0 with under two samples). */
function driftMbPerMinute(samples: Array<{ t: number; rssMb: number }>): number {
  if (samples.length < 2) return 0;
  const n = samples.length;
  const meanT = samples.reduce((a, s) => a + s.t, 0) / n;
  const meanM = samples.reduce((a, s) => a + s.rssMb, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.t - meanT) * (s.rssMb - meanM);
    den += (s.t - meanT) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}

async function soak(seconds: number, rate: number, usersFile: string): Promise<void> {
  const target = await startTarget('agent');
  const samples: Array<{ t: number; rssMb: number }> = [];
  try {
    log(`soak: agent at ${rate}/s for ${seconds}s, RSS every 10 s`);
    const sampler = sampleUsage(target, (t, mb) => {
      if (samples.length === 0 || t - (samples[samples.length - 1]?.t ?? 0) >= 10) {
        samples.push({ t: Math.round(t), rssMb: Number(mb.toFixed(1)) });
        log(`  t=${Math.round(t)}s rss=${mb.toFixed(1)} MB`);
      }
    });
    const r = await runSipp({
      scenario: 'register-auth',
      remote: `127.0.0.1:${target.port}`,
      usersFile,
      calls: rate * seconds,
      rate,
      limit: Math.min(10_000, Math.max(2000, rate * 2)),
      authUri: DOMAIN,
      set: { domain: DOMAIN, expires: 3600 },
      timeoutMs: (seconds + 60) * 1000,
      ...(SIPP_CPU !== undefined ? { cpu: SIPP_CPU } : {}),
      extraArgs: ['-max_recv_loops', '10000', '-max_sched_loops', '10000', '-buff_size', String(4 << 20)],
    });
    const usage = await sampler.stop();
    // The first part holds start-up, the first pass over the users and the heap
    // growing to its working size; the drift is the least-squares slope of the second half.
    const steady = samples.filter((s) => s.t >= seconds / 2);
    const slope = driftMbPerMinute(steady);
    const first = steady[0];
    const last = steady[steady.length - 1];
    const unexpected = unexpectedResponses(r);
    process.stdout.write(
      `\nSoak: ${r.successful} registrations ok, ${r.failed} failed${Object.keys(unexpected).length ? ` ${JSON.stringify(unexpected)}` : ''}, ${r.retransmissions} retransmissions, ` +
        `achieved ${r.callRate.toFixed(0)}/s, agent cpu ${usage.cpuPercent.toFixed(0)} %\n` +
        `RSS (MB) every 10 s: ${samples.map((s) => s.rssMb).join(' ')}\n` +
        `drift over the second half: ${slope.toFixed(2)} MB/min (t=${first?.t ?? 0}s to t=${last?.t ?? 0}s)\n`,
    );
    process.stdout.write(
      JSON.stringify({ bench: 'register-soak', seconds, rate, successful: r.successful, failed: r.failed, unexpected, retransmissions: r.retransmissions, cpuPercent: usage.cpuPercent, rssMb: samples, driftMbPerMin: slope }) + '\n',
    );
  } finally {
    await target.stop();
  }
}

// ---------------------------------------------------------------- main

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  // SIPp times have 1 ms resolution: 0 means under a millisecond.
  return n === 0 && digits === 0 ? '<1' : n.toFixed(digits);
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-bench-'));
  try {
    const usersFile = await writeUsersFile(
      path.join(dir, 'users.csv'),
      Array.from({ length: USERS }, (_, i) => {
        const user = String(10000 + i);
        return { user, password: kamailioPassword(user) };
      }),
    );
    if (args.soak !== undefined) {
      await soak(intArg('soak', args.soak), intArg('rate', args.rate), usersFile);
      return;
    }
    const names = (args.targets ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const n of names) if (!(TARGET_NAMES as readonly string[]).includes(n)) throw new Error(`unknown target ${n}; known: ${TARGET_NAMES.join(', ')}`);
    const [load1 = 0] = os.loadavg();
    if (load1 > 0.5) log(`warning: load average ${load1.toFixed(2)} before the bench: other work on this machine will lower and scatter the figures`);
    log(`register bench: ${USERS} users, ${CPUS} CPUs (SIPp on ${SIPP_CPU ?? 'any'}, server on ${SERVER_CPU ?? 'any'}), trials ${TRIAL_SECONDS}s, final ${FINAL_SECONDS}s`);

    const results: TargetResult[] = [];
    for (const name of phase('rate') ? (names as TargetName[]) : []) {
      log(`${name}: starting`);
      let target: Target | undefined;
      try {
        target = await startTarget(name);
        results.push(await findMaxRate(target, usersFile));
      } catch (err) {
        log(`${name}: ${(err as Error).message.split('\n').slice(0, 6).join('\n')}`);
        results.push({ name, label: name, maxRate: 0, trials: [], clientLimited: false, error: (err as Error).message.split('\n')[0] ?? 'failed' });
      } finally {
        await target?.stop();
      }
    }

    const ours = results.find((r) => r.name === 'agent');
    const withAgent = names.includes('agent');

    // Memory with every user bound while sustaining a fixed rate (the target: < 150 MB
    // with 10,000 bindings at 3,000/s). Its store is kept for the restart below.
    const memoryState = path.join(dir, 'memory-state');
    let memory: LoadRun | undefined;
    if (withAgent && phase('memory')) {
      log(`memory: agent at ${MEMORY_RATE}/s for ${MEMORY_SECONDS}s`);
      memory = await loadRun(usersFile, MEMORY_RATE, MEMORY_SECONDS, memoryState);
      log(`  ${describeLoadRun(memory)}`);
    }

    // Twice what the agent sustains: it should shed with 503 and keep serving.
    let overload: LoadRun | undefined;
    if (withAgent && phase('overload')) {
      const rate = args['overload-rate'] !== undefined ? intArg('overload-rate', args['overload-rate']) : 2 * (ours?.maxRate || MEMORY_RATE);
      log(`overload: agent offered ${rate}/s for ${OVERLOAD_SECONDS}s`);
      overload = await loadRun(usersFile, rate, OVERLOAD_SECONDS);
      log(`  ${describeLoadRun(overload)}`);
    }

    const colds: ColdStart[] = [];
    if (phase('cold-start')) {
      const runs: Array<[TargetName, string, string | undefined]> = [];
      if (withAgent) {
        runs.push(['agent', `Branchline agent, ${USERS} extensions, empty store`, undefined]);
        if (memory) runs.push(['agent', `Branchline agent, ${USERS} extensions, restart with ${USERS} bindings`, memoryState]);
      }
      if (names.includes('kamailio1')) runs.push(['kamailio1', 'Kamailio 5.6, 1 worker', undefined]);
      for (const [name, label, stateDir] of runs) {
        try {
          colds.push(await coldStarts(name, label, COLD_START_RUNS, stateDir));
        } catch (err) {
          log(`cold start ${label}: ${(err as Error).message.split('\n')[0]}`);
        }
      }
    }

    const ratio = (other: TargetName): number | undefined => {
      const o = results.find((r) => r.name === other);
      return ours && o && o.maxRate > 0 ? ours.maxRate / o.maxRate : undefined;
    };

    const rows = [['target', 'max rate/s', 'failed', 'retrans %', '401 p50/p99 ms', '200 p50/p99 ms', 'server CPU %', 'mem MB', 'note']];
    for (const r of results) {
      const f = r.final;
      rows.push([
        r.label,
        r.error ? 'error' : String(r.maxRate),
        f ? String(f.failed) : '-',
        f ? f.retransmissionPercent.toFixed(2) : '-',
        f ? `${fmt(f.challengeP50Ms)}/${fmt(f.challengeP99Ms)}` : '-',
        f ? `${fmt(f.registerP50Ms)}/${fmt(f.registerP99Ms)}` : '-',
        f ? f.usage.cpuPercent.toFixed(0) : '-',
        f ? f.usage.memMb.toFixed(0) : '-',
        r.error ?? (r.clientLimited ? 'lower bound: SIPp (1 core) hit its ceiling first' : ''),
      ]);
    }
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
    let out = '';
    if (results.length > 0) {
      out += `\nAuthenticated REGISTER, ${USERS} users, zero failures and < 1 % retransmissions, final run ${FINAL_SECONDS}s\n`;
      for (const row of rows) out += row.map((c, i) => pad(c, widths[i] ?? 0)).join('  ') + '\n';
    }
    const r1 = ratio('kamailio1');
    const rN = ratio('kamailio-per-core');
    if (r1 !== undefined) out += `Branchline / Kamailio (1 worker): ${r1.toFixed(2)}\n`;
    if (rN !== undefined) out += `Branchline / Kamailio (${CPUS} workers): ${rN.toFixed(2)}\n`;
    if (memory) out += `agent with ${USERS} bindings at ${memory.rate}/s for ${memory.seconds}s: ${describeLoadRun(memory)}\n`;
    if (overload) out += `agent offered ${overload.rate}/s for ${overload.seconds}s (overload): ${describeLoadRun(overload)}\n`;
    for (const c of colds) {
      out += `cold start to first 401, ${c.name}: median ${c.firstAnswerMs.toFixed(0)} ms of ${c.runsMs.length} (${c.runsMs.map((ms) => ms.toFixed(0)).join(', ')})\n`;
    }
    if (results.length > 0) out += 'Memory: agent RSS; Kamailio PSS summed over its processes (its shared memory counted once).\n';
    process.stdout.write(out);
    process.stdout.write(
      JSON.stringify({
        bench: 'register',
        users: USERS,
        cpus: CPUS,
        loadAverageAtStart: load1,
        trialSeconds: TRIAL_SECONDS,
        finalSeconds: FINAL_SECONDS,
        targets: results,
        ratioVsKamailio1: r1 ?? null,
        ratioVsKamailioPerCore: rN ?? null,
        coldStart: colds,
        memory: memory ?? null,
        overload: overload ?? null,
      }) + '\n',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    log(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
