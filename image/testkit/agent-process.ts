// Runs a built branchline executable as the service manager would (`start --config`),
// reads its JSON log lines, and stops it by its own process id. For the integration
// tests and the bench; every process started here is killed if the runner exits.
import { spawn, type ChildProcess } from 'node:child_process';

export type LogLine = Record<string, unknown>;

export interface AgentProcess {
  pid: number;
  /** When the process was spawned (performance.now()). */
  spawnedAt: number;
  lines(): LogLine[];
  stderr(): string;
  waitFor(predicate: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine>;
  running(): boolean;
  /** SIGTERM, SIGKILL after `graceMs`; resolves with the exit code or signal name. */
  stop(graceMs?: number): Promise<number | string>;
}

const live = new Set<ChildProcess>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

export function spawnAgent(binary: string, args: readonly string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): AgentProcess {
  hookExit();
  const spawnedAt = performance.now();
  const child = spawn(binary, args, { cwd: opts.cwd, env: opts.env ?? { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve(code ?? signal ?? -1);
    });
  });
  const lines: LogLine[] = [];
  const waiters = new Set<(line: LogLine) => void>();
  let partial = '';
  let stderr = '';
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
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { raw: text };
      }
      lines.push(line);
      for (const w of [...waiters]) w(line);
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-50_000);
  });
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    pid: child.pid ?? -1,
    spawnedAt,
    lines: () => lines.slice(),
    stderr: () => stderr,
    running,
    waitFor(predicate, timeoutMs) {
      const seen = lines.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(waiter);
        };
        const waiter = (line: LogLine): void => {
          if (predicate(line)) {
            done();
            resolve(line);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no matching log line from ${binary} within ${timeoutMs} ms; last lines:\n${lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}\nstderr: ${stderr.slice(-2000)}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then((code) => {
          if (!waiters.has(waiter)) return;
          done();
          reject(new Error(`${binary} exited (${code}) before the awaited log line; stderr: ${stderr.slice(-2000)}`));
        });
      });
    },
    async stop(graceMs = 10_000) {
      if (!running()) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
