// How the agent's process is tuned for memory, and how those settings reach it
// whichever way it was started (bin/branchline.mjs, scripts/start.sh, the test
// helpers, a service unit). Figures and the measurements behind each value:
// docs/decisions/0010-registrar-memory-start-and-load-shedding.md.
//
// V8 reads its heap sizing flags when the heap is created, and
// v8.setFlagsFromString() from inside the process does not change them afterwards
// (measured: the same RSS with and without it, for the young generation's size and
// for the old generation's growth factor alike). They must be on the command line,
// and every launcher puts them there: the installed `branchline` (its shebang runs
// `env -S node <flags>`), scripts/start.sh, the test and benchmark helpers, the
// single executable (its execArgv). Only a bare `node agent/cli.ts start` lacks
// them: the entry point then replaces the process with itself plus the flags
// (process.execve keeps the PID, stdio and arguments; one more Node start, ~40 ms,
// before any module of ours is loaded).
//
// MALLOC_ARENA_MAX is read by glibc when the process starts, so it too only works
// from outside; it is worth ~10 MB, less than a relaunch is worth at start, so it
// never causes one: the service unit and scripts/start.sh set it, and a relaunch
// made for the V8 flags adds it.

import { isSea } from 'node:sea';

/**
 * - a 4 MB cap on each young-generation semi-space: V8 otherwise grows the young
 *   generation to tens of MB under load and keeps it;
 * - the old generation may grow to 1.2x its live size before a full collection,
 *   instead of up to 4x: at 2,000 registrations/s V8 let ~35 MB of live data grow to
 *   ~150 MB of heap between collections (RSS 228 -> 180 MB). The price is more full
 *   collections while the heap builds up at start (~200-300 ms more CPU with 10,000
 *   extensions, partly on V8's helper threads).
 * - one V8 helper thread instead of four: the agent's JavaScript runs on one thread,
 *   and on a box whose cores are taken (the call-setup and registration benches pin
 *   the agent to one core) four concurrent-marking helpers starve that thread for
 *   60-110 ms at every full collection. Measured at 100 calls/s: post-dial delay p99
 *   48-64 ms -> 12 ms, max 100-136 -> 16 ms (docs/decisions/0011). A Node option, not
 *   a V8 flag, but read at start all the same.
 */
export const V8_MEMORY_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--heap-growing-percent=20', '--v8-pool-size=1'];

/**
 * glibc gives each thread that allocates (SQLite's and V8's worker threads) its own
 * malloc arena, each of which keeps its freed memory; two arenas are enough for a
 * process whose JavaScript runs on one thread.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/** Set in the relaunched process so that it never relaunches again. */
const RELAUNCHED_ENV = 'BRANCHLINE_RUNTIME_TUNED';

function flagName(flag: string): string {
  return flag.split('=')[0] ?? flag;
}

/** The flags from V8_MEMORY_FLAGS not already given (a flag given with another value wins). */
export function missingFlags(execArgv: readonly string[]): string[] {
  const given = new Set(execArgv.map(flagName).map((f) => f.replace(/_/g, '-')));
  return V8_MEMORY_FLAGS.filter((f) => !given.has(flagName(f)));
}

/**
 * The command line and environment to relaunch with, or undefined when the V8 flags
 * are all there already (whatever MALLOC_ARENA_MAX is: alone it is not worth a
 * second process start).
 */
export function relaunchPlan(execArgv: readonly string[], env: NodeJS.ProcessEnv): { flags: string[]; env: Record<string, string | undefined> } | undefined {
  const flags = missingFlags(execArgv);
  if (flags.length === 0) return undefined;
  const relaunchEnv: Record<string, string | undefined> = { ...env, [RELAUNCHED_ENV]: '1' };
  for (const [key, value] of Object.entries(MALLOC_ENV)) relaunchEnv[key] ??= value;
  return { flags, env: relaunchEnv };
}

/**
 * Replaces the current process with the same command plus the memory flags and
 * malloc settings, when V8 flags are missing. Returns only when nothing needs doing,
 * or when the process cannot be replaced here (a single executable carries the flags
 * in its own execArgv; a platform without execve runs untuned rather than not at
 * all). Call before loading anything else.
 */
export function relaunchWithMemoryFlags(): void {
  if (process.env[RELAUNCHED_ENV] === '1') {
    // Not inherited: an agent this one starts (an update, a restart) checks afresh.
    delete process.env[RELAUNCHED_ENV];
    return;
  }
  if (isSea() || typeof process.execve !== 'function') return;
  const plan = relaunchPlan(process.execArgv, process.env);
  if (plan === undefined) return;
  const args = [process.execPath, ...process.execArgv, ...plan.flags, ...process.argv.slice(1)];
  process.execve(process.execPath, args, plan.env);
}
