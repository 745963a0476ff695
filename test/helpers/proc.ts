// Lifecycle of the real processes the tests and the bench start (agent, SIPp,
// Kamailio, baresip): each is tracked so that whatever happens to the test, no
// process outlives the runner, and each is stopped by its own id.
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
const groupLeaders = new WeakSet<ChildProcess>();
let exitHookInstalled = false;

function killTree(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    // A detached child leads its own process group (Kamailio forks workers):
    // signal the group we created, by its id.
    if (groupLeaders.has(child)) process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    // Already gone.
  }
}

/**
 * Registers a spawned child: it is SIGKILLed when this Node process exits if it is
 * still running. `group` says the child was spawned `detached` and its whole process
 * group belongs to us.
 */
export function track(child: ChildProcess, opts: { group?: boolean } = {}): ChildProcess {
  if (opts.group) groupLeaders.add(child);
  live.add(child);
  child.once('exit', () => {
    live.delete(child);
    // The leader's children may still run (a Kamailio worker after its main died).
    if (opts.group) killTree(child, 'SIGKILL');
  });
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) killTree(c, 'SIGKILL');
    });
  }
  return child;
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves when the child has exited (at once if it already has). */
export function waitExit(child: ChildProcess): Promise<ExitStatus> {
  if (!isRunning(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/**
 * Sends `signal` (SIGTERM by default) and waits up to `graceMs`; then SIGKILL.
 * Returns how the process ended, with `killed` true when SIGKILL was needed.
 */
export async function stopProcess(
  child: ChildProcess,
  opts: { signal?: NodeJS.Signals; graceMs?: number } = {},
): Promise<ExitStatus & { killed: boolean }> {
  if (!isRunning(child)) return { code: child.exitCode, signal: child.signalCode, killed: false };
  const exited = waitExit(child);
  killTree(child, opts.signal ?? 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), opts.graceMs ?? 5000);
  });
  const first = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (first !== 'timeout') return { ...first, killed: false };
  killTree(child, 'SIGKILL');
  return { ...(await exited), killed: true };
}

/** SIGKILL now, without waiting. */
export function killNow(child: ChildProcess): void {
  if (isRunning(child)) killTree(child, 'SIGKILL');
}
