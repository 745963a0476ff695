// Call-setup benchmark: SIPp callers → server → a SIPp callee registered as an
// extension, INVITE/180/200/ACK, a hold time, BYE/200, direct media (SDP passed
// through). For
// the Branchline agent (a B2BUA) and Kamailio 5.6 as a transaction-stateful proxy
// (tm, t_relay, record-routing) side by side in the same run:
//   - the highest rate with zero failed calls (and < 1 % retransmissions), stepped up;
//   - the post-dial delay (the caller's INVITE to its 180) p50/p99 at that rate;
//   - a fixed-rate run (100 calls/s, 2 s calls: ~200 calls up at once) for the p99
//     post-dial delay target and the agent's RSS with those calls up.
//
//   node bench/call-setup.ts                               # both targets, ~5-8 minutes
//   node bench/call-setup.ts --targets kamailio --trial-seconds 3 --final-seconds 4 --fixed-seconds 5
//
// It prints figures, never pass/fail. See bench/README.md for what each one means.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startAgent, REPO_ROOT, type AgentHandle, type ExtensionSpec } from '../test/helpers/agent.ts';
import { kamailioPassword, processGroupPids, startKamailio, type KamailioHandle } from '../test/helpers/kamailio.ts';
import { freeUdpTcpPort } from '../test/helpers/ports.ts';
import { describeSipp, percentile, runSipp, unexpectedResponses, writeUsersFile, type SippResult } from '../test/helpers/sipp.ts';
import { sampleProcessCpu, sampleUsage, waitIdle, type Sampled, type Usage } from './lib/process-usage.ts';

const DOMAIN = 'branchline.test';
const TARGET_NAMES = ['agent', 'kamailio'] as const;
type TargetName = (typeof TARGET_NAMES)[number];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const { values: args } = parseArgs({
  options: {
    targets: { type: 'string', default: TARGET_NAMES.join(',') },
    callers: { type: 'string', default: '100' },
    'hold-ms': { type: 'string', default: '1000' },
    'trial-seconds': { type: 'string', default: '10' },
    'final-seconds': { type: 'string', default: '20' },
    'start-rate': { type: 'string', default: '100' },
    'max-rate': { type: 'string', default: '8000' },
    'fixed-rate': { type: 'string', default: '100' },
    'fixed-seconds': { type: 'string', default: '30' },
    'fixed-hold-ms': { type: 'string', default: '2000' },
    'invite-auth': { type: 'string', default: 'auto' },
    'agent-log-level': { type: 'string', default: 'info' },
    // Node options for the agent process only (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
    'agent-node-options': { type: 'string', default: '' },
    // Node's command-line options for the agent in place of the launchers' V8 memory
    // flags ("" for none); V8 flags cannot go through NODE_OPTIONS.
    'agent-node-flags': { type: 'string' },
    // Skip the search for the maximum rate: only the fixed run (CPU per call, PDD).
    'fixed-only': { type: 'boolean', default: false },
  },
});

function intArg(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, not ${JSON.stringify(text)}`);
  return n;
}

const CALLERS = intArg('callers', args.callers);
const HOLD_MS = intArg('hold-ms', args['hold-ms']);
const TRIAL_SECONDS = intArg('trial-seconds', args['trial-seconds']);
const FINAL_SECONDS = intArg('final-seconds', args['final-seconds']);
const START_RATE = intArg('start-rate', args['start-rate']);
const MAX_RATE = intArg('max-rate', args['max-rate']);
const FIXED_RATE = intArg('fixed-rate', args['fixed-rate']);
const FIXED_SECONDS = intArg('fixed-seconds', args['fixed-seconds']);
const FIXED_HOLD_MS = intArg('fixed-hold-ms', args['fixed-hold-ms']);
const INVITE_AUTH = args['invite-auth'];
if (INVITE_AUTH !== 'auto' && INVITE_AUTH !== 'yes' && INVITE_AUTH !== 'no') throw new Error('--invite-auth must be auto, yes or no');
const AGENT_LOG_LEVEL = LOG_LEVELS.find((l) => l === args['agent-log-level']);
if (!AGENT_LOG_LEVEL) throw new Error(`--agent-log-level must be one of ${LOG_LEVELS.join(', ')}`);
const AGENT_NODE_OPTIONS = args['agent-node-options'] ?? '';
const AGENT_NODE_FLAGS = args['agent-node-flags'] === undefined ? undefined : args['agent-node-flags'].split(/\s+/).filter((f) => f !== '');
const FIXED_ONLY = args['fixed-only'] ?? false;
const CPUS = os.availableParallelism();
// Both SIPp processes (callers and callees) on core 0, the server on core 1.
const SIPP_CPU = CPUS >= 2 ? 0 : undefined;
const SERVER_CPU = CPUS >= 2 ? 1 : undefined;
const SIPP_TUNING = ['-max_recv_loops', '10000', '-max_sched_loops', '10000', '-buff_size', String(4 << 20)];
const PROXY_CFG = path.join(REPO_ROOT, 'bench', 'kamailio', 'proxy.cfg');

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

const callerNumber = (i: number): string => String(10000 + i);
// One callee, which takes every call (call waiting is on by default). The callers
// answer the agent's 407 challenge, and SIPp 3.6.1 puts one fixed digest uri
// (-auth_uri) in every answer: it must be the Request-URI, so all calls go to one
// number. One contact, so no forking either.
const CALLEE = '20000';

// ---------------------------------------------------------------- targets

interface Target extends Sampled {
  name: TargetName;
  label: string;
  port: number;
  stop(): Promise<void>;
}

function extensions(): ExtensionSpec[] {
  const numbers = [...Array.from({ length: CALLERS }, (_, i) => callerNumber(i)), CALLEE];
  // Kamailio's derived password for everyone: one set of injection files for both.
  return numbers.map((number) => ({ number, password: kamailioPassword(number) }));
}

const AGENT_BENCH_CONFIG = {
  sip: {
    // SIPp 3.6.1 answers MD5 challenges only (test/helpers/sipp.ts).
    auth: { algorithms: ['MD5'] },
    // One load generator on one address: exempt from per-source rate limits.
    security: { trusted_networks: ['127.0.0.0/8'] },
  },
  // The phones exchange RTP directly; the agent only passes the SDP through.
  media: { policy: 'direct' },
  // The shipped limit (500 calls up at once, then 503) would cap the rate at about
  // 500 / hold time: the bench measures the call engine, not the limit.
  calls: { max_concurrent: 20_000 },
};

async function startTarget(name: TargetName, inviteAuth: boolean): Promise<Target> {
  if (name === 'agent') {
    const agent: AgentHandle = await startAgent({
      extensions: extensions(),
      extraConfig: AGENT_BENCH_CONFIG,
      logLevel: AGENT_LOG_LEVEL,
      discardStdout: true,
      readyTimeoutMs: 120_000,
      ...(AGENT_NODE_FLAGS !== undefined ? { nodeFlags: AGENT_NODE_FLAGS } : {}),
      ...(AGENT_NODE_OPTIONS ? { env: { NODE_OPTIONS: [process.env.NODE_OPTIONS, AGENT_NODE_OPTIONS].filter(Boolean).join(' ') } } : {}),
      ...(SERVER_CPU !== undefined ? { cpu: SERVER_CPU } : {}),
    });
    return {
      name,
      label: `Branchline agent (B2BUA, log ${AGENT_LOG_LEVEL})`,
      port: agent.udpPort,
      pids: async () => (agent.running() ? [agent.pid] : []),
      pss: false,
      stop: () => agent.cleanup(),
    };
  }
  const k: KamailioHandle = await startKamailio({
    template: PROXY_CFG,
    workers: 1,
    domain: DOMAIN,
    sharedMemoryMb: 512,
    ...(inviteAuth ? { defines: ['AUTH_INVITE'] } : {}),
    ...(SERVER_CPU !== undefined ? { cpus: String(SERVER_CPU) } : {}),
  });
  return {
    name,
    label: `Kamailio 5.6 stateful proxy (tm), 1 UDP worker${inviteAuth ? ', INVITEs challenged' : ''}`,
    port: k.port,
    pids: () => processGroupPids(k.pid),
    pss: true,
    stop: () => k.stop(),
  };
}

// ---------------------------------------------------------------- workload

interface Workload {
  /** The callee: field0 user, field1 credentials (register-auth.xml). */
  calleeFile: string;
  /** Callers in turn: field0 caller, field1 credentials (for a 407), field2 the callee (call-uac.xml). */
  callsFile: string;
}

async function writeWorkload(dir: string): Promise<Workload> {
  const calleeFile = await writeUsersFile(path.join(dir, 'callee.csv'), [{ user: CALLEE, password: kamailioPassword(CALLEE) }]);
  const lines = ['SEQUENTIAL'];
  for (let i = 0; i < CALLERS; i++) {
    const caller = callerNumber(i);
    lines.push(`${caller};[authentication username=${caller} password=${kamailioPassword(caller)}];${CALLEE}`);
  }
  const callsFile = path.join(dir, 'calls.csv');
  await writeFile(callsFile, lines.join('\n') + '\n');
  return { calleeFile, callsFile };
}

/** Registers the callee from SIPp's `port`, where the callee scenario then listens. */
async function registerCallee(target: Target, work: Workload, port: number): Promise<void> {
  const r = await runSipp({
    scenario: 'register-auth',
    remote: `127.0.0.1:${target.port}`,
    usersFile: work.calleeFile,
    localPort: port,
    calls: 1,
    authUri: DOMAIN,
    set: { domain: DOMAIN, expires: 3600 },
    timeoutMs: 15_000,
  });
  if (r.successful !== 1) throw new Error(`${target.name}: registering the callee failed: ${describeSipp(r)}`);
}

interface CallRun {
  caller: SippResult;
  callee: SippResult;
  usage: Usage;
  /** CPU of the two SIPp processes together, % of one core. */
  sippCpuPercent: number;
  /** Seconds over which the callers placed their calls: their run less the last call's hold time and teardown. */
  callerSeconds: number;
}

/** One fixed-rate run: the callee scenario on `calleePort` and the callers against the target. */
async function runCalls(target: Target, work: Workload, calleePort: number, rate: number, seconds: number, holdMs: number, rtt: boolean): Promise<CallRun> {
  const calls = Math.round(rate * seconds);
  const timeoutMs = (seconds + holdMs / 1000 + 40) * 1000;
  const sampler = sampleUsage(target);
  const callerCpu = sampleProcessCpu();
  const calleeCpu = sampleProcessCpu();
  const calleesDone = new AbortController();
  const callee = runSipp({
    scenario: 'call-uas',
    localPort: calleePort,
    calls,
    timeoutMs: timeoutMs + 15_000,
    abort: calleesDone.signal,
    onSpawn: (pid) => calleeCpu.onSpawn(pid),
    ...(SIPP_CPU !== undefined ? { cpu: SIPP_CPU } : {}),
    extraArgs: SIPP_TUNING,
  });
  // The callee's SIPp must be listening before the first INVITE arrives.
  await new Promise((r) => setTimeout(r, 300));
  const callerStarted = performance.now();
  const caller = await runSipp({
    scenario: 'call-uac',
    remote: `127.0.0.1:${target.port}`,
    // A fresh port per run: SIPp's [branch] is the call number and message index, not
    // unique across processes, so callers on the same address:port as the previous
    // run would send branches the server still holds transactions for (after an
    // overloaded run, for tens of seconds) and get that old call's responses.
    localPort: await freeUdpTcpPort(),
    usersFile: work.callsFile,
    calls,
    rate,
    // Room for the calls up at once (rate × hold) and a lagging server.
    limit: Math.max(1000, Math.ceil(rate * (holdMs / 1000 + 5))),
    // The digest uri must be the Request-URI (the agent checks it).
    authUri: `${CALLEE}@${DOMAIN}`,
    set: { domain: DOMAIN },
    timeoutMs,
    traceRtt: rtt,
    onSpawn: (pid) => callerCpu.onSpawn(pid),
    ...(SIPP_CPU !== undefined ? { cpu: SIPP_CPU } : {}),
    extraArgs: [...SIPP_TUNING, '-d', String(holdMs)],
  });
  const callerSeconds = (performance.now() - callerStarted) / 1000 - holdMs / 1000;
  // Every call the callee took has ended (or failed) by now, bar its 4 s time-wait.
  const stopCallee = setTimeout(() => calleesDone.abort(), 8000);
  const calleeResult = await callee;
  clearTimeout(stopCallee);
  const usage = await sampler.stop();
  return { caller, callee: calleeResult, usage, sippCpuPercent: callerCpu.stop() + calleeCpu.stop(), callerSeconds };
}

// ---------------------------------------------------------------- trials

interface Trial {
  rate: number;
  seconds: number;
  holdMs: number;
  achievedRate: number;
  successful: number;
  failed: number;
  calleeFailed: number;
  /** Retransmissions by either SIPp, % of the INVITEs, BYEs and 200s to INVITE sent. */
  retransmissionPercent: number;
  passed: boolean;
  clientLimited: boolean;
  usage: Usage;
  /**
   * Server CPU (user + system, from /proc) per call completed, ms: independent of the
   * machine's load, unlike the maximum rate.
   */
  cpuMsPerCall: number;
  sippCpuPercent: number;
  failures: Record<string, number>;
  unexpected: Record<string, number>;
  drainSeconds: number;
  pddP50Ms?: number;
  pddP99Ms?: number;
  pddMaxMs?: number;
  pddSamples?: number;
  pddSlow?: { over20Ms: number; inSeconds: number };
}

async function trial(target: Target, work: Workload, calleePort: number, rate: number, seconds: number, holdMs: number, rtt: boolean): Promise<Trial> {
  const calls = Math.round(rate * seconds);
  const run = await runCalls(target, work, calleePort, rate, seconds, holdMs, rtt);
  const { caller, callee } = run;
  const retransmissionPercent = caller.totalCalls > 0 ? ((caller.retransmissions + callee.retransmissions) / (3 * caller.totalCalls)) * 100 : 0;
  const t: Trial = {
    rate,
    seconds,
    holdMs,
    achievedRate: run.callerSeconds > 0 ? caller.totalCalls / run.callerSeconds : caller.callRate,
    successful: caller.successful,
    failed: caller.failed,
    calleeFailed: callee.failed,
    retransmissionPercent,
    passed: caller.exitCode === 0 && caller.failed === 0 && caller.successful === calls && callee.failed === 0 && retransmissionPercent < 1,
    // Two SIPp processes share one core: near 100 % they, not the server, are the limit.
    clientLimited: caller.callRate < rate * 0.95 && run.sippCpuPercent > 90,
    usage: run.usage,
    cpuMsPerCall: caller.successful > 0 ? (run.usage.cpuSeconds * 1000) / caller.successful : Number.NaN,
    sippCpuPercent: run.sippCpuPercent,
    failures: { ...caller.failures, ...Object.fromEntries(Object.entries(callee.failures).map(([k, v]) => [`callee ${k}`, v])) },
    unexpected: { ...unexpectedResponses(caller), ...Object.fromEntries(Object.entries(unexpectedResponses(callee)).map(([k, v]) => [`callee ${k}`, v])) },
    drainSeconds: await waitIdle(target),
  };
  if (rtt) {
    const pdd = caller.responseTimes.filter((x) => x.rtd === 1).map((x) => x.ms);
    t.pddP50Ms = percentile(pdd, 50);
    t.pddP99Ms = percentile(pdd, 99);
    t.pddMaxMs = pdd.length ? Math.max(...pdd) : Number.NaN;
    t.pddSamples = pdd.length;
    // Slow calls bunched in a few seconds point to stalls (a pause, a blocked loop);
    // spread over the run, to a steady queue.
    const slow = caller.responseTimes.filter((x) => x.rtd === 1 && x.ms > 20);
    t.pddSlow = { over20Ms: slow.length, inSeconds: new Set(slow.map((x) => Math.floor(x.at / 1000))).size };
  }
  log(
    `  ${target.name} @ ${rate}/s for ${seconds}s (hold ${holdMs} ms): ${t.passed ? 'ok ' : 'NO '} achieved ${t.achievedRate.toFixed(0)}/s, ` +
      `${t.successful} ok, ${t.failed} failed (callee side ${t.calleeFailed}), ${t.retransmissionPercent.toFixed(2)} % retrans, ` +
      `cpu ${t.usage.cpuPercent.toFixed(0)} % = ${t.cpuMsPerCall.toFixed(2)} ms/call (SIPp ${t.sippCpuPercent.toFixed(0)} %), mem ${t.usage.memMaxMb.toFixed(0)} MB` +
      (t.pddP99Ms !== undefined ? `, PDD p50 ${fmt(t.pddP50Ms)} p99 ${fmt(t.pddP99Ms)} max ${fmt(t.pddMaxMs)} ms` : '') +
      (t.pddSlow !== undefined ? ` (${t.pddSlow.over20Ms} over 20 ms, within ${t.pddSlow.inSeconds} distinct seconds)` : '') +
      (t.clientLimited ? ' (SIPp at its ceiling)' : '') +
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
  fixed?: Trial;
  trials: Trial[];
  clientLimited: boolean;
  error?: string;
}

/** Doubles the rate until a trial fails, then bisects to within 15 %; confirms with a longer run. */
async function findMaxRate(target: Target, work: Workload, calleePort: number): Promise<Omit<TargetResult, 'label'>> {
  const trials: Trial[] = [];
  let good = 0;
  let bad = 0;
  let clientLimited = false;
  for (let rate = START_RATE; rate <= MAX_RATE && rate >= 10; ) {
    const t = await trial(target, work, calleePort, rate, TRIAL_SECONDS, HOLD_MS, false);
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
    const rate = Math.round((good + bad) / 2 / 10) * 10;
    if (rate <= good || rate >= bad) break;
    const t = await trial(target, work, calleePort, rate, TRIAL_SECONDS, HOLD_MS, false);
    trials.push(t);
    if (t.passed) {
      good = rate;
      clientLimited = t.clientLimited;
    } else bad = rate;
  }
  let final: Trial | undefined;
  for (let rate = good, attempts = 0; rate >= 10 && attempts < 5; rate = Math.round((rate * 0.85) / 10) * 10, attempts++) {
    final = await trial(target, work, calleePort, rate, FINAL_SECONDS, HOLD_MS, true);
    trials.push(final);
    if (final.passed) break;
  }
  clientLimited ||= trials.some((t) => !t.passed && t.clientLimited);
  const result: Omit<TargetResult, 'label'> = { name: target.name, maxRate: final?.passed ? final.rate : 0, trials, clientLimited };
  if (final) result.final = final;
  return result;
}

/**
 * Whether the agent challenges a phone's INVITE (407): one call through it, traced.
 * Kamailio then challenges too, so that both do the same work per call.
 */
async function agentChallengesInvites(work: Workload): Promise<boolean> {
  const target = await startTarget('agent', false);
  try {
    const calleePort = await freeUdpTcpPort();
    await registerCallee(target, work, calleePort);
    const done = new AbortController();
    const callee = runSipp({ scenario: 'call-uas', localPort: calleePort, calls: 1, timeoutMs: 20_000, abort: done.signal });
    await new Promise((r) => setTimeout(r, 300));
    const caller = await runSipp({
      scenario: 'call-uac',
      remote: `127.0.0.1:${target.port}`,
      usersFile: work.callsFile,
      calls: 1,
      authUri: `${CALLEE}@${DOMAIN}`,
      set: { domain: DOMAIN },
      timeoutMs: 15_000,
      traceMessages: true,
      extraArgs: ['-d', '10'],
    });
    done.abort();
    await callee;
    if (caller.successful !== 1) throw new Error(`the probe call through the agent failed: ${describeSipp(caller)}`);
    return /^SIP\/2\.0 407 /m.test(caller.messages);
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

async function benchTarget(name: TargetName, work: Workload, inviteAuth: boolean): Promise<TargetResult> {
  log(`${name}: starting`);
  let target: Target | undefined;
  try {
    target = await startTarget(name, inviteAuth);
    const calleePort = await freeUdpTcpPort();
    await registerCallee(target, work, calleePort);
    const found: Omit<TargetResult, 'label'> = FIXED_ONLY ? { name, maxRate: 0, trials: [], clientLimited: false } : await findMaxRate(target, work, calleePort);
    log(`${name}: fixed run at ${FIXED_RATE}/s, calls of ${FIXED_HOLD_MS} ms`);
    const fixed = await trial(target, work, calleePort, FIXED_RATE, FIXED_SECONDS, FIXED_HOLD_MS, true);
    return { ...found, label: target.label, fixed };
  } catch (err) {
    log(`${name}: ${(err as Error).message.split('\n').slice(0, 8).join('\n')}`);
    return { name, label: target?.label ?? name, maxRate: 0, trials: [], clientLimited: false, error: (err as Error).message.split('\n')[0] ?? 'failed' };
  } finally {
    await target?.stop();
  }
}

async function main(): Promise<void> {
  const names = (args.targets ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!(TARGET_NAMES as readonly string[]).includes(n)) throw new Error(`unknown target ${n}; known: ${TARGET_NAMES.join(', ')}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-bench-calls-'));
  try {
    const work = await writeWorkload(dir);
    const [load1 = 0] = os.loadavg();
    if (load1 > 0.5) log(`warning: load average ${load1.toFixed(2)} before the bench: other work on this machine will lower and scatter the figures`);
    log(
      `call-setup bench: ${CALLERS} callers → 1 callee, hold ${HOLD_MS} ms, ${CPUS} CPUs (SIPp on ${SIPP_CPU ?? 'any'}, server on ${SERVER_CPU ?? 'any'}), ` +
        `trials ${TRIAL_SECONDS}s, final ${FINAL_SECONDS}s, fixed ${FIXED_RATE}/s for ${FIXED_SECONDS}s`,
    );
    let inviteAuth = INVITE_AUTH === 'yes';
    if (INVITE_AUTH === 'auto') {
      inviteAuth = names.includes('agent') ? await agentChallengesInvites(work) : true;
      log(`INVITEs challenged (407): ${inviteAuth ? 'yes' : 'no'}${names.includes('agent') ? ' (as the agent does)' : ''}`);
    }

    const results: TargetResult[] = [];
    for (const name of names as TargetName[]) results.push(await benchTarget(name, work, inviteAuth));

    const ours = results.find((r) => r.name === 'agent');
    const theirs = results.find((r) => r.name === 'kamailio');
    const rows = [['target', 'max calls/s', 'failed', 'retrans %', 'PDD p50/p99 ms', 'server CPU %', 'mem MB', `@${FIXED_RATE}/s PDD p50/p99 ms`, `@${FIXED_RATE}/s mem MB`, `@${FIXED_RATE}/s CPU ms/call`, 'note']];
    for (const r of results) {
      const f = r.final;
      const x = r.fixed;
      rows.push([
        r.label,
        r.error ? 'error' : String(r.maxRate),
        f ? String(f.failed + f.calleeFailed) : '-',
        f ? f.retransmissionPercent.toFixed(2) : '-',
        f ? `${fmt(f.pddP50Ms)}/${fmt(f.pddP99Ms)}` : '-',
        f ? f.usage.cpuPercent.toFixed(0) : '-',
        f ? f.usage.memMaxMb.toFixed(0) : '-',
        x ? `${fmt(x.pddP50Ms)}/${fmt(x.pddP99Ms)}${x.passed ? '' : ' (failures)'}` : '-',
        x ? x.usage.memMaxMb.toFixed(0) : '-',
        x ? x.cpuMsPerCall.toFixed(2) : '-',
        r.error ?? (r.clientLimited ? 'lower bound: SIPp (1 core) hit its ceiling first' : ''),
      ]);
    }
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
    let out =
      `\nCalls INVITE/180/200/ACK, ${HOLD_MS} ms, BYE/200, direct media; zero failures and < 1 % retransmissions, final run ${FINAL_SECONDS}s` +
      `${inviteAuth ? '; INVITEs challenged (407)' : ''}\n`;
    for (const row of rows) out += row.map((c, i) => pad(c, widths[i] ?? 0)).join('  ') + '\n';
    const ratio = ours && theirs && theirs.maxRate > 0 ? ours.maxRate / theirs.maxRate : undefined;
    if (ratio !== undefined) out += `Branchline / Kamailio (calls/s): ${ratio.toFixed(2)}\n`;
    out +=
      `PDD: the caller's first INVITE to its 180 (SIPp -trace_rtt, 1 ms resolution). The fixed run holds ${FIXED_RATE}/s with calls of ` +
      `${FIXED_HOLD_MS} ms: about ${Math.round((FIXED_RATE * FIXED_HOLD_MS) / 1000)} calls up at once; mem is the peak over that run.\n` +
      'Memory: agent RSS; Kamailio PSS summed over its processes (its shared memory counted once).\n';
    process.stdout.write(out);
    process.stdout.write(
      JSON.stringify({
        bench: 'call-setup',
        callers: CALLERS,
        holdMs: HOLD_MS,
        cpus: CPUS,
        loadAverageAtStart: load1,
        inviteAuth,
        trialSeconds: TRIAL_SECONDS,
        finalSeconds: FINAL_SECONDS,
        fixed: { rate: FIXED_RATE, seconds: FIXED_SECONDS, holdMs: FIXED_HOLD_MS },
        targets: results,
        ratioVsKamailio: ratio ?? null,
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
