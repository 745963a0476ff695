// SIPp phones making calls through a server (the agent, or Kamailio as a proxy to
// prove the scenarios): callees register from their own port and then run a
// server-mode scenario there; a caller scenario then calls them. Each run gets a
// temp folder for its injection files and leaves nothing behind.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freeUdpTcpPort } from './ports.ts';
import { describeSipp, runSipp, writeUsersFile, type SippResult } from './sipp.ts';

export interface SippPhone {
  user: string;
  password: string;
}

export class SippCallError extends Error {
  readonly code = 'ESIPPCALL';
}

/**
 * Registers `phone` from SIPp's `port` (a free one when absent) and returns the
 * port: the callee scenario must then listen there, where the binding points.
 */
export async function registerSippPhone(server: string, domain: string, phone: SippPhone, port?: number, netns?: string): Promise<number> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-sipp-phone-'));
  try {
    const localPort = port ?? (await freeUdpTcpPort());
    const r = await runSipp({
      scenario: 'register-auth',
      remote: server,
      usersFile: await writeUsersFile(path.join(dir, 'phone.csv'), [phone]),
      localPort,
      calls: 1,
      authUri: domain,
      set: { domain, expires: 600 },
      timeoutMs: 15_000,
      ...(netns !== undefined ? { netns } : {}),
    });
    if (r.successful !== 1) throw new SippCallError(`registering ${phone.user} from port ${localPort} failed: ${describeSipp(r)}`);
    return localPort;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface CalleeRun {
  /** A fixture name (a server-mode scenario) or a path. */
  scenario: string;
  /** The port its phone registered from. */
  port: number;
  /** Calls it takes before it exits (default: the caller's number of calls). */
  calls?: number;
  extraArgs?: string[];
  /** The network namespace its phone is in (the three-host test). */
  netns?: string;
}

export interface CallRunOptions {
  /** The server, "host:port". */
  server: string;
  domain: string;
  caller: SippPhone;
  /** The number dialled (the Request-URI user). */
  callee: string;
  callerScenario: string;
  callees: CalleeRun[];
  /** Calls the caller makes, one after the other unless `rate` says otherwise (default 1). */
  calls?: number;
  rate?: number;
  /** Extra injection fields per call (field3, field4...): one array per call, used in turn. */
  extraFields?: string[][];
  /** How long the callees may take to finish once the caller is done (default 6 s). */
  calleeGraceMs?: number;
  timeoutMs?: number;
  traceMessages?: boolean;
  callerExtraArgs?: string[];
  /** The network namespace the caller's phone is in. */
  callerNetns?: string;
}

export interface CallRunResult {
  caller: SippResult;
  callees: SippResult[];
}

/** Writes the caller's injection file: caller;credentials;callee[;extra fields] per line. */
async function writeCallsFile(file: string, opts: CallRunOptions): Promise<string> {
  const { caller, callee } = opts;
  for (const value of [caller.user, caller.password, callee, ...(opts.extraFields ?? []).flat()]) {
    if (/[;\n\r]/.test(value)) throw new SippCallError(`${JSON.stringify(value)} cannot be written into a SIPp injection file`);
  }
  const base = `${caller.user};[authentication username=${caller.user} password=${caller.password}];${callee}`;
  const rows = opts.extraFields?.length ? opts.extraFields.map((fields) => [base, ...fields].join(';')) : [base];
  await writeFile(file, ['SEQUENTIAL', ...rows].join('\n') + '\n');
  return file;
}

/**
 * Starts every callee scenario, then the caller's; once the caller is done the
 * callees get `calleeGraceMs` to finish (their time-waits) before they are stopped.
 */
export async function runCall(opts: CallRunOptions): Promise<CallRunResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'branchline-sipp-call-'));
  const calls = opts.calls ?? 1;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const stopCallees = new AbortController();
  try {
    const callsFile = await writeCallsFile(path.join(dir, 'calls.csv'), opts);
    const callees = opts.callees.map((c) =>
      runSipp({
        scenario: c.scenario,
        localPort: c.port,
        calls: c.calls ?? calls,
        timeoutMs: timeoutMs + 10_000,
        abort: stopCallees.signal,
        ...(opts.traceMessages ? { traceMessages: true } : {}),
        ...(c.extraArgs ? { extraArgs: c.extraArgs } : {}),
        ...(c.netns !== undefined ? { netns: c.netns } : {}),
      }),
    );
    // A callee's SIPp must be listening before the first INVITE reaches it.
    await new Promise((r) => setTimeout(r, 300));
    const caller = await runSipp({
      scenario: opts.callerScenario,
      remote: opts.server,
      usersFile: callsFile,
      calls,
      ...(opts.rate !== undefined ? { rate: opts.rate } : {}),
      limit: opts.rate === undefined ? 1 : calls,
      // The agent checks that the digest uri is the Request-URI (SIPp cannot derive it).
      authUri: `${opts.callee}@${opts.domain}`,
      set: { domain: opts.domain },
      timeoutMs,
      ...(opts.traceMessages ? { traceMessages: true } : {}),
      ...(opts.callerExtraArgs ? { extraArgs: opts.callerExtraArgs } : {}),
      ...(opts.callerNetns !== undefined ? { netns: opts.callerNetns } : {}),
    });
    const grace = setTimeout(() => stopCallees.abort(), opts.calleeGraceMs ?? 6000);
    const results = await Promise.all(callees);
    clearTimeout(grace);
    return { caller, callees: results };
  } finally {
    stopCallees.abort();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every side of a call run in one line each, for assertion messages. */
export function describeCall(r: CallRunResult): string {
  return [`caller: ${describeSipp(r.caller)}`, ...r.callees.map((c, i) => `callee ${i + 1}: ${describeSipp(c)}`)].join('\n');
}
