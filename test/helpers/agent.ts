// Starts the real Branchline agent (`node agent/cli.ts start`) on loopback ports with
// a generated config, for integration tests and the benchmark, and reads its state
// back through the public `status` command, as an operator would.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { MALLOC_ENV, V8_MEMORY_FLAGS } from '../../agent/runtime/memory-flags.ts';
import { freeUdpTcpPort } from './ports.ts';
import { isRunning, killNow, stopProcess, track } from './proc.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(REPO_ROOT, 'agent', 'cli.ts');

export const DEFAULT_DOMAIN = 'branchline.test';

export interface ExtensionSpec {
  number: string;
  name?: string;
  password: string;
}

export interface RegistrarSettings {
  min_expires?: number;
  max_expires?: number;
  default_expires?: number;
  max_contacts?: number;
}

/** One pino line from the agent's stdout. */
export type LogLine = Record<string, unknown>;

export interface StartAgentOptions {
  extensions: ExtensionSpec[];
  registrar?: RegistrarSettings;
  /** Deep-merged over the generated config (objects merge, other values replace). */
  extraConfig?: Record<string, unknown>;
  /** Extra environment for the agent process (e.g. NOTIFY_SOCKET, WATCHDOG_USEC). */
  env?: NodeJS.ProcessEnv;
  /** Reuse a state directory (restart tests). The caller owns it: cleanup() keeps it. */
  stateDir?: string;
  /** Listen on these ports instead of fresh ones (a restart on the same address). */
  udpPort?: number;
  tcpPort?: number;
  domain?: string;
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readyTimeoutMs?: number;
  /** Pin the agent to this CPU with taskset (the benchmark). */
  cpu?: number;
  /** Run the agent inside this network namespace (`ip netns exec`; the three-host test). */
  netns?: string;
  /**
   * Send the agent's stdout to /dev/null instead of parsing it (the benchmark: at
   * thousands of log lines a second the parsing would compete for CPU). logs() is
   * then empty and readiness is detected by connecting to the TCP port.
   */
  discardStdout?: boolean;
  /** Keep at most this many log lines in memory (oldest dropped); default 50,000. */
  maxLogLines?: number;
  /**
   * Node's options before the script. Default: the memory flags, as the installed
   * `branchline`, scripts/start.sh and the service give them (no relaunch); `[]`
   * starts it bare, as `node agent/cli.ts start` (it relaunches itself with them).
   */
  nodeFlags?: readonly string[];
}

export interface AgentHandle {
  configPath: string;
  stateDir: string;
  domain: string;
  udpPort: number;
  tcpPort: number;
  /** The embedded MQTT broker's port (undefined when the config names a broker URL). */
  mqttPort: number | undefined;
  pid: number;
  /** performance.now() when the process was spawned: the origin of cold-start times. */
  spawnedAt: number;
  /** The agent.ready line ({ event, detectedBy: 'tcp-connect' } at a log level above info). */
  ready: LogLine;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code (128+n for a signal). */
  stop(): Promise<number>;
  /** SIGKILL, no wait: a crash or power loss. */
  kill(): void;
  running(): boolean;
  logs(): LogLine[];
  stderr(): string;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
  /** Stops the agent if it runs and deletes the temp folders this helper created. */
  cleanup(): Promise<void>;
}

export class AgentStartError extends Error {
  readonly code = 'EAGENTSTART';
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(message: string, exitCode: number | null, stderr: string) {
    super(`${message}\n--- agent stderr ---\n${stderr}`);
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? os.constants.signals[signal] : undefined;
  return 128 + (n ?? 0);
}

// Levels at which the agent.ready line (info) is not logged: readiness is then its
// TCP listener accepting a connection.
const QUIET_LEVELS = new Set(['warn', 'error', 'fatal', 'silent']);

async function waitForListening(port: number, timeoutMs: number, alive: () => boolean, stderr: () => string): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return { event: 'agent.ready', detectedBy: 'tcp-connect' };
    if (!alive()) throw new AgentStartError('agent exited before listening', null, stderr());
    if (Date.now() > deadline) throw new Error(`agent not listening on tcp ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Writes the config YAML and starts the agent; resolves once it logged agent.ready
 * (or, when its stdout is discarded or the level hides info lines, once its TCP port
 * accepts a connection). Rejects with AgentStartError, carrying stderr, if it exits first.
 */
export async function startAgent(opts: StartAgentOptions): Promise<AgentHandle> {
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'branchline-agent-'));
  const stateDir = opts.stateDir ?? path.join(workDir, 'state');
  await mkdir(stateDir, { recursive: true });
  const domain = opts.domain ?? DEFAULT_DOMAIN;
  const udpPort = opts.udpPort ?? (await freeUdpTcpPort());
  const tcpPort = opts.tcpPort ?? udpPort;

  const sip: Record<string, unknown> = {
    domain,
    udp: `127.0.0.1:${udpPort}`,
    tcp: `127.0.0.1:${tcpPort}`,
  };
  if (opts.registrar) sip['registrar'] = opts.registrar;
  let config: Record<string, unknown> = {
    site: { id: 'test-site' },
    state_dir: stateDir,
    sip,
    log: { level: opts.logLevel ?? 'info' },
    extensions: opts.extensions,
  };
  if (opts.extraConfig) config = deepMerge(config, opts.extraConfig);
  // Without mqtt.url the agent runs an embedded broker, on 127.0.0.1:1883 by default:
  // two agents on one machine (parallel test files, a restart) would fight for it.
  let mqttPort: number | undefined;
  const mqtt = isPlainObject(config['mqtt']) ? config['mqtt'] : {};
  const embedded = isPlainObject(mqtt['embedded']) ? mqtt['embedded'] : {};
  if (mqtt['url'] === undefined && embedded['listen'] === undefined) {
    mqttPort = await freeUdpTcpPort();
    config = deepMerge(config, { mqtt: { embedded: { listen: `127.0.0.1:${mqttPort}` } } });
  } else if (typeof embedded['listen'] === 'string') {
    mqttPort = Number(embedded['listen'].split(':').pop());
  }
  const configPath = path.join(workDir, 'config.yaml');
  await writeFile(configPath, YAML.stringify(config));

  const nodeFlags = opts.nodeFlags ?? V8_MEMORY_FLAGS;
  const args = [...nodeFlags, CLI, 'start', '--config', configPath];
  // With the flags given, the malloc setting too, as the service unit sets it.
  const env = { ...process.env, ...(nodeFlags.length > 0 ? MALLOC_ENV : {}), ...opts.env };
  const spawnedAt = performance.now();
  const stdio: ['ignore', 'pipe' | 'ignore', 'pipe'] = ['ignore', opts.discardStdout ? 'ignore' : 'pipe', 'pipe'];
  const child =
    opts.netns !== undefined
      ? spawn('ip', ['netns', 'exec', opts.netns, process.execPath, ...args], { cwd: REPO_ROOT, stdio, env })
      : opts.cpu === undefined
      ? spawn(process.execPath, args, { cwd: REPO_ROOT, stdio, env })
      : spawn('taskset', ['-c', String(opts.cpu), process.execPath, ...args], { cwd: REPO_ROOT, stdio, env });
  track(child);

  const maxLines = opts.maxLogLines ?? 50_000;
  const lines: LogLine[] = [];
  const listeners = new Set<(line: LogLine) => void>();
  let stderrText = '';
  let partial = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      const text = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      if (!text.trim()) continue;
      let line: LogLine;
      try {
        const parsed: unknown = JSON.parse(text);
        line = isPlainObject(parsed) ? parsed : { raw: text };
      } catch {
        // Not JSON: kept so that a stray console.log is visible, never silently lost.
        line = { raw: text };
      }
      lines.push(line);
      if (lines.length > maxLines) lines.splice(0, lines.length - maxLines);
      for (const listener of [...listeners]) listener(line);
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    // Keep the tail: a crash loop must not fill the test's memory.
    stderrText = (stderrText + chunk).slice(-200_000);
  });

  function waitForLog(predicate: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
    const seen = lines.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        done();
        // The agent's own last words are in its log (stdout) as well as on stderr.
        const last = lines.slice(-5).map((l) => JSON.stringify(l)).join('\n');
        reject(new AgentStartError(`agent exited (${exitCodeOf(code, signal)}) before the awaited log line; last log lines:\n${last}`, code, stderrText));
      };
      const listener = (line: LogLine): void => {
        if (!predicate(line)) return;
        done();
        resolve(line);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching agent log line within ${timeoutMs} ms; last lines:\n${lines.slice(-10).map((l) => JSON.stringify(l)).join('\n')}\n--- stderr ---\n${stderrText}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
        child.off('exit', onExit);
      };
      listeners.add(listener);
      child.once('exit', onExit);
    });
  }

  // A caller's stateDir lies outside workDir, so removing workDir never touches it.
  const cleanupDirs = (): Promise<void> => rm(workDir, { recursive: true, force: true });

  let ready: LogLine;
  try {
    const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
    ready = opts.discardStdout || QUIET_LEVELS.has(opts.logLevel ?? 'info')
      ? await waitForListening(tcpPort, readyTimeoutMs, () => isRunning(child), () => stderrText)
      : await waitForLog((l) => l['event'] === 'agent.ready', readyTimeoutMs);
  } catch (err) {
    await stopProcess(child, { signal: 'SIGKILL', graceMs: 2000 });
    await cleanupDirs();
    if (err instanceof AgentStartError) throw err;
    throw new AgentStartError(err instanceof Error ? err.message : String(err), child.exitCode, stderrText);
  }

  const stop = async (): Promise<number> => {
    const status = await stopProcess(child, { signal: 'SIGTERM', graceMs: 10_000 });
    return exitCodeOf(status.code, status.signal);
  };

  return {
    configPath,
    stateDir,
    domain,
    udpPort,
    tcpPort,
    mqttPort,
    pid: child.pid ?? -1,
    spawnedAt,
    ready,
    stop,
    kill: () => killNow(child),
    running: () => isRunning(child),
    logs: () => lines.slice(),
    stderr: () => stderrText,
    waitForLog,
    cleanup: async () => {
      await stopProcess(child, { signal: 'SIGTERM', graceMs: 5000 });
      await cleanupDirs();
    },
  };
}

export interface RegistrationStatus {
  extension: string;
  contact: string;
  expires_in: number;
  user_agent?: string;
  source?: string;
  transport?: string;
}

export interface AgentStatus {
  site: string;
  registrations: RegistrationStatus[];
}

export class AgentStatusError extends Error {
  readonly code = 'EAGENTSTATUS';
}

/** Runs `agent/cli.ts status --config FILE --json` and returns its parsed answer. */
export function agentStatus(configPath: string, timeoutMs = 15_000): Promise<AgentStatus> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, 'status', '--config', configPath, '--json'],
      { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new AgentStatusError(`status command failed: ${err.message}\n${stderr}`));
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(stdout);
        } catch {
          reject(new AgentStatusError(`status printed no JSON: ${stdout.slice(0, 500)}\n${stderr}`));
          return;
        }
        if (!isPlainObject(parsed) || !Array.isArray(parsed['registrations'])) {
          reject(new AgentStatusError(`status JSON has no registrations array: ${stdout.slice(0, 500)}`));
          return;
        }
        resolve(parsed as unknown as AgentStatus);
      },
    );
  });
}

/** The registrations of one extension in a status answer. */
export function bindingsOf(status: AgentStatus, extension: string): RegistrationStatus[] {
  return status.registrations.filter((r) => r.extension === extension);
}
